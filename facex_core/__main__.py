"""`python -m facex_core <command>`: FaceX without ComfyUI.

doctor   check the installation and the model files, and say how to fix what is wrong
detect   print the faces the detector finds in an image: box, five points, score
extract  detect and align the faces of an image and write their FORD representations
analyze  FaceXFormer on every face of an image: head pose, age, gender, race, attributes,
         68 landmarks, occluded points, and parsing masks in the image's pixels
edit     run one FaceX task (face swap, reenactment, animation, ...) with an SD checkpoint
face0    an image of the person in --face photos as the prompt describes, with a Face0 file

Every command checks its arguments and input files before it loads a model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import arguments
from .cli import common_options, run
from .errors import ImageInputError, MissingInputError, UnknownNameError, UsageError
from .fors.tasks import TASKS, TaskRow, parse_picks, row_for
from .image_files import IMAGE_SUFFIXES
from .model.kept_configs import scheduler_config
from .models.edit_files import EDIT_ROLES, EditFiles, find_edit_files
from .models.face0_files import encoder_file
from .models.locate import find_user_file, locate_roles, roots_from_models_dir

if TYPE_CHECKING:
    from .edit import EditJob, FaceXEditor
    from .ford.face_analysis import FaceAnalysis
    from .model.sampling import SamplingSettings

COMMON = ("--models-dir", "--device")
DEFAULT_BASE_CONFIG = "sd15"  # every kept config that has a scheduler is SD1.5-family
FACE_INPUTS = {  # the images a task reads besides the target, by flag
    "--source": "the image of the face that gives identity",
    "--reference": "the image of the face the regions come from",
    "--hole": "a mask the size of the target image, white where to fill",
}
MOTION_FLAGS = ("--yaw", "--pitch", "--roll", "--gaze", "--relative", "--expression-scale")
DETECTOR_HELP = "a SCRFD .onnx file (default: the detector in the models folder)"
POINT_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """The networks and sampling settings of every command that generates faces (edit, eval)."""
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="Stable Diffusion single file: a path, or a name in models/checkpoints")
    parser.add_argument("--facex", required=True, type=Path,
                        help="FaceX weight file: a path, or a name in models/facex")
    parser.add_argument("--base-config", default=None,
                        help="kept diffusers config of the checkpoint (default: the FaceX file's family)")
    parser.add_argument("--steps", type=int, default=30, help="sampling steps")
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (0 or more)")
    parser.add_argument("--seed", type=int, default=0)


def check_sampling_arguments(args: argparse.Namespace) -> None:
    """Check the sampling numbers and the device of edit and eval."""
    config = args.base_config or DEFAULT_BASE_CONFIG
    limit = scheduler_config(config)["num_train_timesteps"]
    arguments.number_in_range("--steps", args.steps, 1, limit, why=f"the {config} noise schedule has {limit} steps")
    arguments.number_in_range("--guidance", args.guidance, 0)
    arguments.number_in_range("--seed", args.seed, 0)
    args.device = arguments.device_name("--device", args.device)


def find_model_files(args: argparse.Namespace) -> EditFiles:
    """Every model file of edit and eval, all missing ones in one error (bare checkpoint and
    FaceX names are looked up under the models folder). Checked after the inputs; nothing
    loads yet."""
    return find_edit_files(args.checkpoint, args.facex, roots_from_models_dir(args.models_dir),
                           {"checkpoint": "--checkpoint", "facex": "--facex"})


def editor_and_settings(args: argparse.Namespace, files: EditFiles) -> tuple[FaceXEditor, SamplingSettings]:
    """The editor of the files found and the checked sampling settings (loads every model)."""
    from .edit import FaceXEditor
    from .model.sampling import SamplingSettings
    from .runtime import default_device

    editor = FaceXEditor(files, args.base_config or files.metadata["family"], args.device or default_device())
    return editor, SamplingSettings(args.steps, args.guidance, args.seed)


def add_face_choice_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """Which detected faces a command takes (extract, analyze)."""
    parser.add_argument("--face", default=default, choices=("largest", "index", "all"))  # faces.detect's choices
    parser.add_argument("--index", type=int, default=0, help="face index, left to right, with --face index")
    parser.add_argument("--min-face", type=float, default=32.0, help="smallest face side in pixels")


def check_face_choice(args: argparse.Namespace) -> None:
    arguments.number_in_range("--min-face", args.min_face, 1)
    if args.face != "index" and args.index != 0:
        raise UsageError(f"--index {args.index} is read only with --face index (now --face {args.face}).")


def _parser() -> argparse.ArgumentParser:
    summary, details = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="python -m facex_core", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[common_options(*COMMON)])
    sub = parser.add_subparsers(dest="subcommand", required=True)
    after = [common_options(*COMMON, after_subcommand=True)]

    doctor = sub.add_parser("doctor", help="check the environment and the model files", parents=after)
    doctor.add_argument("--verify", action="store_true", help="also check SHA-256 of present files (slow)")
    doctor.set_defaults(command=_doctor)

    detect = sub.add_parser("detect", help="the faces the detector finds in an image", parents=after)
    detect.add_argument("--image", required=True, type=Path)
    detect.add_argument("--detector", type=Path, help=DETECTOR_HELP)
    detect.add_argument("--threshold", type=float, default=0.5, help="detection score threshold, 0 to 1")
    detect.add_argument("--json", action="store_true", help="print JSON instead of text")
    detect.set_defaults(command=_detect)

    extract = sub.add_parser("extract", help="write the FORD representations of the faces in an image", parents=after)
    extract.add_argument("--image", required=True, type=Path)
    extract.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    extract.add_argument("--size", type=int, default=512, choices=(256, 512, 768), help="aligned crop size")
    add_face_choice_arguments(extract, default="largest")
    extract.set_defaults(command=_extract)

    analyze = sub.add_parser("analyze", help="FaceXFormer's reading of every face in an image", parents=after)
    analyze.add_argument("--image", required=True, type=Path)
    analyze.add_argument("--facexformer", type=Path, metavar="FILE",
                         help="the authors' FaceXFormer model.pt (default: facex_extractors/facexformer.pt in the "
                              "models folder)")
    analyze.add_argument("--detector", type=Path, help=DETECTOR_HELP)
    add_face_choice_arguments(analyze, default="all")
    analyze.add_argument("--json", action="store_true", help="print JSON instead of text")
    analyze.add_argument("--masks", type=Path, metavar="DIR",
                         help="write a PNG mask per parsing class and a label map, in the image's pixels, into DIR")
    analyze.set_defaults(command=_analyze)

    edit = sub.add_parser("edit", help="one FaceX edit: target (and source/reference) image in, edited image out",
                          parents=after)
    edit.add_argument("--task", required=True, choices=tuple(TASKS))
    edit.add_argument("--target", required=True, type=Path,
                      help="the image whose face is edited (animation: a video or a folder of frames)")
    for flag, help_text in FACE_INPUTS.items():
        edit.add_argument(flag, type=Path, help=help_text)
    edit.add_argument("--regions", default=None,
                      help="attribute editing: regions from the reference, e.g. hair,eyebrows (default: hair); "
                           "mixture editing: region=input pairs, e.g. eyes=source,hair=reference")
    add_generation_arguments(edit)
    edit.add_argument("--out", required=True, type=Path,
                      help="output image (.png, .jpg, ...); animation: a .mp4 or .avi video, or a new folder for "
                           "its frames")
    for angle in ("yaw", "pitch", "roll"):
        edit.add_argument(f"--{angle}", type=float, help=f"motion editing: head {angle} in degrees")
    edit.add_argument("--relative", action="store_true", help="motion editing: add the angles to the target's")
    edit.add_argument("--gaze", type=float, nargs=2, metavar=("YAW", "PITCH"), help="motion editing: gaze in degrees")
    edit.add_argument("--expression-scale", type=float, default=1.0, help="motion editing: 0 neutral, >1 stronger")
    edit.set_defaults(command=_edit)

    face0 = sub.add_parser("face0", help="Face0: photos of a face and a prompt in, an image of that person out",
                           parents=after)
    face0.add_argument("--face", required=True, type=Path, action="append",
                       help="a photo of the person (its largest face); repeat for several, their embeddings are "
                            "averaged")
    face0.add_argument("--prompt", required=True, help="what the image shows, e.g. 'a portrait of a person'")
    face0.add_argument("--negative", default="", help="negative prompt (default: none)")
    face0.add_argument("--checkpoint", required=True, type=Path,
                       help="Stable Diffusion single file: a path, or a name in models/checkpoints")
    face0.add_argument("--face0", required=True, type=Path, help="Face0 weight file: a path, or a name in models/face0")
    face0.add_argument("--base-config", default=None,
                       help="kept diffusers config of the checkpoint (default: the Face0 file's family)")
    face0.add_argument("--encoder", default=None,
                       help="identity encoder; the Face0 file's own is used, another is refused")
    face0.add_argument("--encoder-file", type=Path, help="the encoder's model file (default: in the models folder)")
    face0.add_argument("--out", required=True, type=Path, help="output image (.png, .jpg, ...)")
    face0.add_argument("--steps", type=int, default=30, help="sampling steps")
    face0.add_argument("--seed", type=int, default=0)
    face0.add_argument("--guidance", type=float, default=7.5,
                       help="w_both: weight of the prompt with the face against the negative prompt (0 or more)")
    face0.add_argument("--text-weight", type=float, default=0.0, help="w_text: the prompt without the face (0 or more)")
    face0.add_argument("--face-weight", type=float, default=0.0,
                       help="w_face: the face with the empty prompt (0 or more)")
    face0.set_defaults(command=_face0)
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import format_findings, run_doctor

    findings = run_doctor(roots_from_models_dir(args.models_dir), args.verify)
    print(format_findings(findings))
    return 1 if any(f.status == "fail" for f in findings) else 0


def _detect(args: argparse.Namespace) -> int:
    arguments.image_file_size("--image", args.image)
    arguments.number_in_range("--threshold", args.threshold, 0, 1)
    device = arguments.device_name("--device", args.device)
    detector_file = (arguments.model_file("--detector", args.detector, "face detector") if args.detector
                     else locate_roles(("detection",), roots_from_models_dir(args.models_dir))["detection"])

    from .faces.detect import FaceDetector
    from .image_files import read_image_file

    faces = FaceDetector(detector_file, device, threshold=args.threshold).detect(read_image_file(args.image))
    faces = sorted(faces, key=lambda face: face.box[0])
    found = [{"box": [round(float(v), 1) for v in face.box],
              "points": {name: [round(float(x), 1), round(float(y), 1)]
                         for name, (x, y) in zip(POINT_NAMES, face.kps, strict=True)},
              "score": round(face.score, 4)} for face in faces]
    if args.json:
        print(json.dumps({"image": str(args.image), "detector": str(detector_file), "faces": found}, indent=2))
        return 0
    print(f"{len(found)} face(s) in {args.image} (detector {detector_file.name}, threshold {args.threshold}), left to "
          f"right:")
    for index, face in enumerate(found):
        points = ", ".join(f"{name} {x:.1f},{y:.1f}" for name, (x, y) in face["points"].items())
        print(f"  {index}: box {', '.join(f'{v:.1f}' for v in face['box'])}  score {face['score']:.3f}\n     {points}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    arguments.image_file_size("--image", args.image)
    arguments.output_file("--out", args.out, {".safetensors"}, "file")
    check_face_choice(args)
    device = arguments.device_name("--device", args.device)

    from safetensors.torch import save_file

    from .faces.crops import detect_and_align
    from .faces.detect import FaceDetector
    from .ford.extractors import FordExtractors, ford_tensors
    from .images import load_image_batch
    from .runtime import default_device

    device = device or default_device()
    files = locate_roles(EDIT_ROLES, roots_from_models_dir(args.models_dir))
    detector = FaceDetector(files["detection"], device)
    extractors = FordExtractors.from_files(files, device)
    images = load_image_batch(args.image)
    faces = detect_and_align(images, detector, args.size, args.face, args.index, args.min_face)
    tensors = ford_tensors(faces, extractors.run(faces))
    save_file(tensors, str(args.out), metadata={"source": str(args.image), "crop_size": str(args.size)})
    print(f"{len(faces)} face(s) from {args.image} -> {args.out}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    arguments.image_file_size("--image", args.image)
    check_face_choice(args)
    if args.masks is not None:
        arguments.output_folder("--masks", args.masks)
    device = arguments.device_name("--device", args.device)
    files = _analysis_files(args)

    import torch

    from .faces.detect import FaceDetector, choose_faces
    from .ford.face_analysis import FaceAnalyzer
    from .images import load_image_batch, to_uint8
    from .runtime import default_device

    device = device or default_device()
    images = load_image_batch(args.image)
    detector = FaceDetector(files["detection"], device)
    faces = choose_faces(detector.detect(to_uint8(images)[0]), args.face, args.index, args.min_face)
    analyzer = FaceAnalyzer.from_file(files["analysis"], device)  # after the faces: no face, no long load
    boxes = torch.tensor(np.stack([face.box for face in faces]), dtype=torch.float32)
    analysis = analyzer.analyze(images, boxes, [0] * len(faces))
    written = _write_masks(analysis, args.masks, args.image.stem) if args.masks is not None else []
    if args.json:
        print(json.dumps({"image": str(args.image), "facexformer": str(files["analysis"]),
                          "detector": str(files["detection"]), **analysis.as_json(),
                          "masks": [str(path) for path in written]}, indent=2))
        return 0
    print(f"{len(analysis)} face(s) in {args.image} (FaceXFormer {files['analysis'].name}), left to right:")
    print(analysis.as_text())
    if written:
        print(f"masks: {len(written)} PNG files in {args.masks} (labels: the class index of each pixel)")
    return 0


def _analysis_files(args: argparse.Namespace) -> dict[str, Path]:
    """The detector and FaceXFormer files: the ones given, the rest from the models folder (all
    missing ones in one error)."""
    given = {"detection": ("--detector", args.detector, "face detector"),
             "analysis": ("--facexformer", args.facexformer, "FaceXFormer")}
    files = {role: arguments.model_file(flag, path, what) for role, (flag, path, what) in given.items() if path}
    missing = tuple(role for role in given if role not in files)
    return files | locate_roles(missing, roots_from_models_dir(args.models_dir))


def _write_masks(analysis: FaceAnalysis, folder: Path, stem: str) -> list[Path]:
    """<stem>_<class>.png (white where a face's parsing gives the class) and <stem>_labels.png
    (the class index of each pixel, PARSING_CLASSES order) for the first image."""
    from PIL import Image

    from .ford.analysis_labels import PARSING_CLASSES

    folder.mkdir(exist_ok=True)
    labels = analysis.label_map()[0].numpy()
    paths = [folder / f"{stem}_labels.png"]
    Image.fromarray(labels).save(paths[0])
    for index, name in enumerate(PARSING_CLASSES):
        paths.append(folder / f"{stem}_{name}.png")
        Image.fromarray(((labels == index) * 255).astype(np.uint8)).save(paths[-1])
    return paths


def _picks(task: str, text: str | None) -> dict[str, str]:
    """--regions as region -> input; attribute editing takes hair by default."""
    if text is None and task == "mixture_editing":
        raise UsageError("mixture_editing needs --regions: region=input pairs, e.g. eyes=source,hair=reference.")
    if text is None:
        return {"hair": "reference"} if task == "attribute_editing" else {}
    if task not in ("attribute_editing", "mixture_editing"):
        raise UsageError(f"--regions is read only by attribute_editing and mixture_editing; remove it for {task}.")
    picks = parse_picks(text)
    if not picks:
        raise UsageError(f"--regions {text!r} names no region; e.g. --regions hair,eyebrows.")
    if task == "attribute_editing" and set(picks.values()) != {"reference"}:
        raise UsageError(f"--regions {text}: attribute editing takes regions from --reference only; list region names, "
                         "e.g. hair,eyebrows (mixture_editing picks an input per region).")
    return picks


def _row(args: argparse.Namespace, picks: dict[str, str]) -> TaskRow:
    """The task's row with the picks; the task table's own checks name unknown regions and inputs."""
    try:
        return row_for(args.task, picks, identity="source" if args.source is not None else "target")
    except (UnknownNameError, MissingInputError) as error:
        raise UnknownNameError(f"--regions {args.regions}: {error}") from None


def _motion_flags(args: argparse.Namespace) -> list[str]:
    given = {"--yaw": args.yaw is not None, "--pitch": args.pitch is not None, "--roll": args.roll is not None,
             "--gaze": args.gaze is not None, "--relative": args.relative,
             "--expression-scale": args.expression_scale != 1}
    return [flag for flag in MOTION_FLAGS if given[flag]]


def _edit_job(args: argparse.Namespace) -> tuple[EditJob, EditFiles]:
    """The edit the arguments describe and the model files it needs, every value and input file
    checked, in that order, before anything heavy is imported."""
    picks = _picks(args.task, args.regions)
    row = _row(args, picks)
    needed = {f"--{name}" for name in row.inputs() if f"--{name}" in FACE_INPUTS}
    needed |= {"--hole"} if row.reference == "hole_blanked" else set()
    given = {flag for flag in FACE_INPUTS if getattr(args, flag[2:]) is not None}
    missing, unused = sorted(needed - given), sorted(given - needed)
    if missing:
        raise UsageError(f"{args.task} needs " + " and ".join(f"{flag}, {FACE_INPUTS[flag]}" for flag in missing) + ".")
    if unused:
        raise UsageError(f"{' and '.join(unused)}: not read by {args.task}; remove it.")
    motion = _motion_flags(args)
    if motion and args.task != "motion_editing":
        raise UsageError(f"{', '.join(motion)}: only motion_editing reads them; remove them for {args.task}.")
    if args.task == "motion_editing" and not motion:
        raise UsageError("motion_editing needs a change: give --yaw, --pitch, --roll, --gaze or --expression-scale.")
    for flag in ("--yaw", "--pitch", "--roll"):
        if getattr(args, flag[2:]) is not None:
            arguments.number_in_range(flag, getattr(args, flag[2:]), -180, 180, why="degrees")
    for value in args.gaze or ():
        arguments.number_in_range("--gaze", value, -90, 90, why="degrees")
    arguments.number_in_range("--expression-scale", args.expression_scale, 0)
    check_sampling_arguments(args)
    _check_edit_files(args)
    files = find_model_files(args)
    from .edit import EditJob, MotionEdit

    motion_edit = MotionEdit(args.pitch, args.yaw, args.roll, args.relative, tuple(args.gaze) if args.gaze else None,
                             args.expression_scale)
    return EditJob(task=args.task, target=args.target, source=args.source, reference=args.reference, hole=args.hole,
                   regions=picks, motion=motion_edit), files


def _check_edit_files(args: argparse.Namespace) -> None:
    if args.task == "animation":
        _check_animation_files(args)
    else:
        size = arguments.image_file_size("--target", args.target)
        hole = arguments.image_file_size("--hole", args.hole) if args.hole is not None else size
        if hole != size:
            raise UsageError(f"--hole {args.hole} is {hole[0]}x{hole[1]} pixels but --target is {size[0]}x{size[1]}; "
                             "draw the mask at the target image's size.")
        arguments.output_file("--out", args.out, IMAGE_SUFFIXES, "image")
    for flag in ("--source", "--reference"):
        if getattr(args, flag[2:]) is not None:
            arguments.image_file_size(flag, getattr(args, flag[2:]))


def _check_animation_files(args: argparse.Namespace) -> None:
    from .frames import VIDEO_WRITERS, first_frame

    if args.target.is_file() and args.target.suffix.lower() in IMAGE_SUFFIXES:
        raise UsageError(f"--target {args.target}: animation is driven by a video or a folder of frames; "
                         "for one image use --task reenactment.")
    try:
        first_frame(args.target)
    except ImageInputError as error:
        raise ImageInputError(f"--target: {error}") from None
    if args.out.suffix:
        arguments.output_file("--out", args.out, set(VIDEO_WRITERS), "video")
    elif args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise UsageError(f"--out {args.out} already exists and is not an empty folder; give a new folder for the "
                         f"frames, or a {' or '.join(VIDEO_WRITERS)} video file.")
    else:
        arguments.output_folder_exists("--out", args.out)


def _edit(args: argparse.Namespace) -> int:
    job, files = _edit_job(args)
    editor, settings = editor_and_settings(args, files)
    if job.task == "animation":
        return _animate(editor, job, settings, args.out)
    from PIL import Image

    from .images import to_uint8

    Image.fromarray(to_uint8(editor.edit(job, settings))[0]).save(args.out)
    print(f"{job.task}: {job.target} -> {args.out}")
    return 0


def _animate(editor: FaceXEditor, job: EditJob, settings: SamplingSettings, out: Path) -> int:
    from tqdm import tqdm

    from .frames import BadFrame, FrameWriter, frame_rate, read_frames
    from .images import to_uint8

    unreadable: list[str] = []

    def frames():
        for frame in read_frames(job.target):
            if isinstance(frame, BadFrame):
                unreadable.append(frame.reason)
            else:
                yield f"{job.target.name} frame {frame.index}", frame.pixels

    without_face = []
    with FrameWriter(out, frame_rate(job.target)) as writer:
        for frame in tqdm(editor.animate(job, frames(), settings), desc="animation", unit="frame"):
            writer.write(to_uint8(frame.image)[0])
            if not frame.edited:
                without_face.append(frame.name)
    print(f"animation: {writer.count} frame(s) of {job.target} -> {out}")
    if without_face:
        print(f"  {len(without_face)} frame(s) without a face kept as they were: {', '.join(without_face)}")
    if unreadable:
        print(f"  {len(unreadable)} frame(s) could not be read and are left out: {'; '.join(unreadable)}")
    return 0


def _face0_job(args: argparse.Namespace) -> dict:
    """The model files of a face0 run, every value, input and file header checked first."""
    for path in args.face:
        arguments.image_file_size("--face", path)
    arguments.output_file("--out", args.out, IMAGE_SUFFIXES, "image")
    check_sampling_arguments(args)
    for flag in ("--text-weight", "--face-weight"):
        arguments.number_in_range(flag, getattr(args, flag[2:].replace("-", "_")), 0)
    roots = roots_from_models_dir(args.models_dir)
    face0_file = find_user_file(args.face0, roots, "face0", "--face0")

    from .face0.encoders import check_encoder
    from .face0.weights import read_face0_config

    config = read_face0_config(face0_file)  # the header: a file of another format is named before anything loads
    if args.encoder is not None:
        check_encoder(config, args.encoder)
    files = {"checkpoint": find_user_file(args.checkpoint, roots, "checkpoint", "--checkpoint"), "face0": face0_file,
             "detector": locate_roles(("detection",), roots)["detection"],
             "encoder": encoder_file(config.identity_encoder, roots, args.encoder_file)}

    from .model.prompts import prompt_tokens
    from .model.sampling import PROMPT_LENGTH

    for flag in ("--prompt", "--negative"):
        count = len(prompt_tokens(getattr(args, flag[2:])))
        if count > PROMPT_LENGTH - 2:
            raise UsageError(f"{flag} is {count} tokens long; the text encoder reads {PROMPT_LENGTH - 2}, so the rest "
                             "would be cut off. Shorten it.")
    return files


def _face0(args: argparse.Namespace) -> int:
    files = _face0_job(args)
    from PIL import Image

    from .face0.generate import Face0Generator, Face0Sampling
    from .images import to_uint8
    from .runtime import default_device

    generator = Face0Generator(files["checkpoint"], files["face0"], files["detector"], files["encoder"],
                               args.base_config, args.device or default_device())
    embedding = generator.face_embedding(args.face)
    settings = Face0Sampling(args.steps, args.seed, args.guidance, args.text_weight, args.face_weight, args.negative)
    Image.fromarray(to_uint8(generator.generate(embedding, args.prompt, settings))[0]).save(args.out)
    print(f"face0: {len(args.face)} photo(s) + {args.prompt!r} -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
