"""`python -m facex_core <command>`: FaceX without ComfyUI.

doctor   check the installation and the model files, and say how to fix what is wrong
extract  detect and align the faces of an image and write their FORD representations
edit     run one FaceX task (face swap, reenactment, ...) on images with an SD checkpoint
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from safetensors.torch import save_file

from .errors import FaceXError
from .fors.tasks import TASKS, parse_picks
from .models.locate import default_models_dir, locate_roles, roots_from_models_dir

if TYPE_CHECKING:
    from .edit import FaceXEditor
    from .model.sampling import SamplingSettings

TASK_NAMES = tuple(TASKS)


def add_place_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the model files are and where the networks run."""
    parser.add_argument("--models-dir", default=None, help=f"ComfyUI models folder (default: {default_models_dir()})")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: the GPU if present)")


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """The networks and sampling settings of every command that generates faces (edit, eval)."""
    parser.add_argument("--checkpoint", required=True, type=Path, help="Stable Diffusion single-file checkpoint")
    parser.add_argument("--facex", required=True, type=Path, help="FaceX weight file (.safetensors)")
    parser.add_argument("--base-config", default=None, help="diffusers config of the checkpoint (default: the FaceX file's family)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    parser.add_argument("--seed", type=int, default=0)


def editor_and_settings(args: argparse.Namespace) -> tuple[FaceXEditor, SamplingSettings]:
    """The editor and sampling settings that add_place_arguments and add_generation_arguments describe."""
    from .edit import FaceXEditor
    from .model.sampling import SamplingSettings
    from .runtime import default_device

    editor = FaceXEditor(args.checkpoint, args.facex, roots_from_models_dir(args.models_dir), args.base_config,
                         args.device or default_device())
    return editor, SamplingSettings(args.steps, args.guidance, args.seed)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facex_core", description=__doc__.split("\n\n")[0])
    add_place_arguments(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check the environment and the model files")
    doctor.add_argument("--verify", action="store_true", help="also check SHA-256 of present files (slow)")
    extract = sub.add_parser("extract", help="write the FORD representations of the faces in an image")
    extract.add_argument("--image", required=True, type=Path)
    extract.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    extract.add_argument("--size", type=int, default=512, choices=(256, 512, 768), help="aligned crop size")
    extract.add_argument("--face", default="largest", choices=("largest", "index", "all"))
    extract.add_argument("--index", type=int, default=0, help="face index, left to right, with --face index")
    extract.add_argument("--min-face", type=float, default=32.0, help="smallest face side in pixels")
    edit = sub.add_parser("edit", help="one FaceX edit: target (and source/reference) image in, edited image out")
    edit.add_argument("--task", required=True, choices=TASK_NAMES)
    edit.add_argument("--target", required=True, type=Path, help="the image whose face is edited")
    edit.add_argument("--source", type=Path, help="the face that gives identity (swaps, reenactment, animation)")
    edit.add_argument("--reference", type=Path, help="the face regions come from (attribute and mixture editing)")
    edit.add_argument("--hole", type=Path, help="inpainting: white where to fill, same size as the target image")
    edit.add_argument("--regions", default="", help="attribute editing: regions from the reference, e.g. hair,eyebrows; "
                      "mixture editing: region=input pairs, e.g. eyes=source,hair=reference")
    add_generation_arguments(edit)
    edit.add_argument("--out", required=True, type=Path, help="output image (.png)")
    for angle in ("yaw", "pitch", "roll"):
        edit.add_argument(f"--{angle}", type=float, help=f"motion editing: head {angle} in degrees")
    edit.add_argument("--relative", action="store_true", help="motion editing: add the angles to the target's")
    edit.add_argument("--gaze", type=float, nargs=2, metavar=("YAW", "PITCH"), help="motion editing: gaze in degrees")
    edit.add_argument("--expression-scale", type=float, default=1.0, help="motion editing: 0 neutral, >1 stronger")
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import format_findings, run_doctor

    findings = run_doctor(roots_from_models_dir(args.models_dir), args.verify)
    print(format_findings(findings))
    return 1 if any(f.status == "fail" for f in findings) else 0


def _extract(args: argparse.Namespace) -> int:
    from .faces.crops import detect_and_align
    from .faces.detect import FaceDetector
    from .ford.extractors import EXTRACTOR_ROLES, FordExtractors, ford_tensors
    from .images import load_image_batch
    from .runtime import default_device

    device = args.device or default_device()
    roots = roots_from_models_dir(args.models_dir)
    files = locate_roles(("detection",) + EXTRACTOR_ROLES, roots)
    detector = FaceDetector(files["detection"], device)
    extractors = FordExtractors.from_files(files, device)
    images = load_image_batch(args.image)
    faces = detect_and_align(images, detector, args.size, args.face, args.index, args.min_face)
    tensors = ford_tensors(faces, extractors.run(faces))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata={"source": str(args.image), "crop_size": str(args.size)})
    print(f"{len(faces)} face(s) from {args.image} -> {args.out}")
    return 0


def _edit(args: argparse.Namespace) -> int:
    from .edit import EditJob, MotionEdit
    from .images import to_uint8

    job = EditJob(
        task=args.task, target=args.target, source=args.source, reference=args.reference, hole=args.hole,
        regions=parse_picks(args.regions),
        motion=MotionEdit(args.pitch, args.yaw, args.roll, args.relative,
                          tuple(args.gaze) if args.gaze else None, args.expression_scale),
    )
    editor, settings = editor_and_settings(args)
    result = editor.edit(job, settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(result)[0]).save(args.out)
    print(f"{args.task}: {args.target} -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"doctor": _doctor, "extract": _extract, "edit": _edit}
    try:
        return commands[args.command](args)
    except (FaceXError, ValueError, KeyError) as exc:  # user input errors carry their own explanation
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
