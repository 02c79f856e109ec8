"""`python -m facex_core.train <stage>`: the stages that make a FaceX or a Face0 weight file.

prepare        face clips -> shards of aligned crops, FORD outputs and VAE latents
prepare-face0  captioned images -> shards of latents, face embeddings and caption encodings
train          a run from a config (configs/generalist.json, reenactment.json, face_swap.json;
               face0.json, or any config with "stage": "face0", trains Face0)
export         a training checkpoint -> the FaceX (or Face0) weight file the nodes load

Many processes: `torchrun --nproc_per_node N -m facex_core.train prepare|train ...`
(or `accelerate launch -m facex_core.train train ...`). Bare model file names (the
checkpoint, clip_vision and init_from of a config) are looked up under --models-dir;
init_from may also be a run's checkpoints/step_* folder, which fine-tunes best.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from .. import arguments
from ..cli import common_options, run
from ..errors import FaceXError, UsageError
from ..model.config import FaceXConfig
from ..model.kept_configs import config_dir
from ..models.face0_files import encoder_file
from ..models.locate import (
    ModelRoots,
    find_named_file,
    find_user_file,
    locate_roles,
    models_dir_in_effect,
    models_dir_of,
    roots_from_models_dir,
)
from ..models.manifest import entries_for_role
from .config import RunSettings, TrainConfig, recipe_path
from .face0.captions import DEFAULT_TEMPLATE, CaptionSource
from .face0.config import STAGE as FACE0_STAGE
from .face0.config import Face0TrainConfig


def _parser() -> argparse.ArgumentParser:
    summary, details = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="python -m facex_core.train", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[common_options("--models-dir", "--device")])
    sub = parser.add_subparsers(dest="stage", required=True)
    models_dir = common_options("--models-dir", after_subcommand=True)

    prepare = sub.add_parser("prepare", help="clips to training shards (resumable; split over processes by rank)",
                             parents=[common_options("--models-dir", "--device", after_subcommand=True)])
    prepare.add_argument("--data", required=True, type=Path, help="folder of videos / frame folders, or CelebV-HQ")
    prepare.add_argument("--out", required=True, type=Path, help="prepared-data folder (shards/, log/)")
    prepare.add_argument("--checkpoint", required=True, type=Path,
                         help="SD single file whose VAE encodes the latents: a path, or a name in models/checkpoints")
    prepare.add_argument("--base-config", default="sd15", help="kept config of the checkpoint (sd15, sd2, ...)")
    prepare.add_argument("--size", type=int, default=256, choices=(256, 512, 768), help="aligned crop size")
    prepare.add_argument("--every", type=int, default=1, help="keep every n-th frame")
    prepare.add_argument("--max-frames", type=int, default=None, help="at most this many frames per clip")
    prepare.add_argument("--min-face", type=float, default=64.0, help="smallest face side in pixels")
    prepare.add_argument("--batch", type=int, default=16, help="frames per extractor pass")
    prepare.add_argument("--clip-tokens", action="store_true",
                         help="also store the frozen CLIP's grids the region encoder reads, so training with "
                              "finetune_clip false skips CLIP (1.5 MiB per frame for ViT-L/14)")
    prepare.add_argument("--rank", type=int, default=None, help="this process's share (default: $RANK or 0)")
    prepare.add_argument("--world-size", type=int, default=None, help="number of shares (default: $WORLD_SIZE or 1)")
    prepare.set_defaults(command=_prepare)

    face0 = sub.add_parser("prepare-face0", help="captioned images to Face0 training shards (resumable; split by rank)",
                           parents=[common_options("--models-dir", "--device", after_subcommand=True)])
    face0.add_argument("--data", required=True, type=Path, help="folder of images (sub-folders too)")
    face0.add_argument("--out", required=True, type=Path, help="prepared-data folder (shards/, log/)")
    face0.add_argument("--checkpoint", required=True, type=Path,
                       help="SD single file whose VAE and text encoder make the latents and caption encodings (train "
                            "on the same one): a path, or a name in models/checkpoints")
    face0.add_argument("--base-config", default="sd15", help="kept config of the checkpoint (sd15, sd2, ...)")
    face0.add_argument("--size", type=int, default=512, help="training image size, a multiple of 8 (default 512)")
    face0.add_argument("--captions", type=Path, metavar="FILE",
                       help="a .csv (header row) or .jsonl caption file naming each image by its path in --data; "
                            "without it a photo.txt beside photo.jpg, else --template")
    face0.add_argument("--file-column", default="file", help="the caption file's image column (default: file)")
    face0.add_argument("--caption-column", default="caption", help="its caption column (default: caption)")
    face0.add_argument("--template", default=DEFAULT_TEMPLATE,
                       help=f"caption of an image without one (default: {DEFAULT_TEMPLATE!r})")
    face0.add_argument("--encoder", default="arcface",
                       help="identity encoder: arcface (default) or inception_resnet_v1_vggface2 (the paper's)")
    face0.add_argument("--encoder-file", type=Path, help="its model file (default: found in the models folder)")
    face0.add_argument("--min-face", type=float, default=20.0,
                       help="smallest face side in pixels of the training image (default 20, as the paper)")
    face0.add_argument("--batch", type=int, default=8, help="images per VAE and text encoder pass")
    face0.add_argument("--shard-size", type=int, default=500, help="images per shard")
    face0.add_argument("--rank", type=int, default=None, help="this process's share (default: $RANK or 0)")
    face0.add_argument("--world-size", type=int, default=None, help="number of shares (default: $WORLD_SIZE or 1)")
    face0.set_defaults(command=_prepare_face0)

    train = sub.add_parser("train", help="train (or resume) the run a config describes", parents=[models_dir])
    train.add_argument("--config", required=True, help="a config file, or generalist / reenactment / face_swap / face0")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set output=runs/test --set steps=100 (repeatable)")
    train.set_defaults(command=_train)

    export = sub.add_parser("export", help="write the FaceX or Face0 weight file of a checkpoint", parents=[models_dir])
    export.add_argument("--checkpoint", required=True, type=Path, help="a checkpoints/step_* folder of a run")
    export.add_argument("--out", type=Path,
                        help="the weight file (default: facex/facex_<family>.safetensors, or face0/face0_<family>"
                             ".safetensors, in the models folder)")
    export.set_defaults(command=_export)
    return parser


def _prepare(args: argparse.Namespace) -> int:
    for flag, value in (("--every", args.every), ("--max-frames", args.max_frames), ("--min-face", args.min_face),
                        ("--batch", args.batch), ("--world-size", args.world_size)):
        if value is not None:
            arguments.number_in_range(flag, value, 1)
    config_dir(args.base_config)
    arguments.existing_folder("--data", args.data, "folder of videos and frame folders (or a CelebV-HQ download)")
    arguments.output_folder_exists("--out", args.out)
    checkpoint = find_user_file(args.checkpoint, roots_from_models_dir(args.models_dir), "checkpoint", "--checkpoint")
    device = arguments.device_name("--device", args.device)

    from .prepare import Preparer, PrepareSettings, Slot, prepare

    slot = Slot.from_environment(args.rank, args.world_size, device)
    settings = PrepareSettings(args.size, args.every, args.max_frames, args.min_face, args.batch, args.clip_tokens)
    preparer = Preparer(checkpoint, roots_from_models_dir(args.models_dir), args.base_config, settings, slot.device)
    counts = prepare(args.data, args.out, preparer, slot)
    print(f"rank {slot.rank}: {counts['written']} shard(s) with {counts['frames']} frames written, "
          f"{counts['already_done']} already done, {counts['skipped']} clip(s) without a usable face "
          f"(details in {args.out / 'log'})")
    return 0


def _prepare_face0(args: argparse.Namespace) -> int:
    for flag, value in (("--min-face", args.min_face), ("--batch", args.batch), ("--shard-size", args.shard_size),
                        ("--world-size", args.world_size)):
        if value is not None:
            arguments.number_in_range(flag, value, 1)
    arguments.number_in_range("--size", args.size, 64, 2048)
    if args.size % 8:
        raise UsageError(f"--size {args.size}: the VAE works in steps of 8 pixels; use a multiple of 8, e.g. 512.")
    config_dir(args.base_config)
    arguments.existing_folder("--data", args.data, "folder of training images")
    if args.captions is not None and not args.captions.is_file():
        raise UsageError(f"--captions {args.captions}: no such file; give the .csv or .jsonl caption file.")
    arguments.output_folder_exists("--out", args.out)
    roots = roots_from_models_dir(args.models_dir)
    checkpoint = find_user_file(args.checkpoint, roots, "checkpoint", "--checkpoint")
    detector = locate_roles(("detection",), roots)["detection"]
    encoder = encoder_file(args.encoder, roots, args.encoder_file)
    source = CaptionSource(args.captions, args.file_column, args.caption_column, args.template)
    from .face0.captions import captioned_images

    images, left_out = captioned_images(args.data, source)  # a malformed caption file is named before models load
    if not images:
        raise UsageError(f"--data {args.data}: no image to prepare ({len(left_out)} left out; see the caption file).")
    device = arguments.device_name("--device", args.device)

    from .face0.prepare import Face0Preparer, Face0PrepareSettings, prepare_face0
    from .prepare import Slot

    slot = Slot.from_environment(args.rank, args.world_size, device)
    settings = Face0PrepareSettings(args.size, args.encoder, args.min_face, args.batch, args.shard_size)
    preparer = Face0Preparer(checkpoint, args.base_config, detector, encoder, settings, slot.device)
    counts = prepare_face0(images, left_out, args.out, preparer, slot)
    print(f"rank {slot.rank}: {counts['written']} shard(s) with {counts['images']} images written, "
          f"{counts['already_done']} already done, {counts['skipped_images']} image(s) without a usable face, "
          f"{len(left_out)} left out by the caption file (details in {args.out / 'log'})")
    return 0


def run_config(path: str, overrides: list[str]) -> RunSettings:
    """The settings of a config file: a Face0 run's when it says "stage": "face0", else a FaceX run's."""
    try:
        stage = json.loads(recipe_path(path).read_text()).get("stage")
    except (json.JSONDecodeError, AttributeError):
        stage = None  # from_file says what is wrong with the file
    kind = Face0TrainConfig if stage == FACE0_STAGE else TrainConfig
    return kind.from_file(path, overrides)


def _train(args: argparse.Namespace) -> int:
    if args.device is not None:
        raise UsageError(f"--device {args.device}: train runs where accelerate puts it; choose GPUs with "
                         "accelerate launch or CUDA_VISIBLE_DEVICES.")
    config = _with_model_files(run_config(args.config, args.set), roots_from_models_dir(args.models_dir))
    config_dir(config.base_config)

    if isinstance(config, Face0TrainConfig):
        from .face0.trainer import Face0Trainer as Run  # it reads the shard headers before it loads a model
    else:
        from .trainer import Trainer as Run

    print(f"trained: {Run(config).run()}")
    return 0


def _with_model_files(config: RunSettings, roots: ModelRoots) -> RunSettings:
    """The config with its model files found: as written, or as names under the models folder."""
    checkpoint = find_user_file(Path(config.checkpoint), roots, "checkpoint", "checkpoint (--set checkpoint=PATH)")
    if isinstance(config, Face0TrainConfig):
        return replace(config, checkpoint=str(checkpoint))
    clip = entries_for_role("clip_vision")[0]
    clip_vision = find_named_file(Path(config.clip_vision), roots[clip.folder_key], "CLIP ViT-L/14 file",
                                  clip.how_to_get(models_dir_of(roots, clip.folder_key)),
                                  "clip_vision (--set clip_vision=PATH)")
    return replace(config, checkpoint=str(checkpoint), clip_vision=str(clip_vision),
                   init_from=_fine_tune_start(config.init_from, roots))


def _fine_tune_start(init_from: str | None, roots: ModelRoots) -> str | None:
    """init_from checked: a training checkpoint's folder, or a .safetensors file (a FaceX weight
    file, found as a path or under the models folder, or a checkpoint's trainable.safetensors)."""
    if init_from is None:
        return None
    if Path(init_from).suffix != ".safetensors":
        from .checkpoints import read_checkpoint

        try:
            return str(read_checkpoint(init_from).folder)
        except FaceXError as error:
            raise UsageError(f"init_from (--set init_from=PATH): {error}") from None
    return str(find_user_file(Path(init_from), roots, "facex", "init_from (--set init_from=PATH)"))


def _export(args: argparse.Namespace) -> int:
    if args.out is not None:
        arguments.output_file("--out", args.out, {".safetensors"}, "weight file")
    from .checkpoints import export, read_checkpoint

    saved = read_checkpoint(args.checkpoint)
    face0 = saved.state["config"].get("stage") == FACE0_STAGE
    out = args.out or _default_export_path(saved.state, face0, models_dir_in_effect(args.models_dir))
    if face0:
        from .face0.trainer import export_face0 as export
    print(f"exported: {export(args.checkpoint, out)}")
    return 0


def _default_export_path(state: dict, face0: bool, models_dir: Path) -> Path:
    """<models>/facex/facex_<family>.safetensors, or <models>/face0/face0_<family>.safetensors."""
    family = state["face0_config"]["base_family"] if face0 else FaceXConfig.from_json(state["facex_config"]).family
    kind = FACE0_STAGE if face0 else "facex"
    folder = arguments.existing_folder("--models-dir", models_dir, "models folder the weight file goes into") / kind
    folder.mkdir(exist_ok=True)
    return folder / f"{kind}_{family}.safetensors"


def main(argv: list[str] | None = None) -> int:
    return run(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
