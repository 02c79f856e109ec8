"""`python -m facex_core <command>`: FaceX without ComfyUI.

doctor   check the installation and the model files, and say how to fix what is wrong
extract  detect and align the faces of an image and write their FORD representations
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors.torch import save_file

from .errors import FaceXError
from .models.locate import default_models_dir, locate_roles, roots_from_models_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facex_core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", default=None, help=f"ComfyUI models folder (default: {default_models_dir()})")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: the GPU if present)")
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
    detector_file = locate_roles(("detection",) + EXTRACTOR_ROLES, roots)["detection"]
    detector = FaceDetector(detector_file, device)
    extractors = FordExtractors.from_roots(roots, device)
    images = load_image_batch(args.image)
    faces = detect_and_align(images, detector, args.size, args.face, args.index, args.min_face)
    tensors = ford_tensors(faces, extractors.run(faces))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata={"source": str(args.image), "crop_size": str(args.size)})
    print(f"{len(faces)} face(s) from {args.image} -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"doctor": _doctor, "extract": _extract}
    try:
        return commands[args.command](args)
    except FaceXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
