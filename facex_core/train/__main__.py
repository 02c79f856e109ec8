"""`python -m facex_core.train <stage>`: the three stages that make a FaceX weight file.

prepare  face clips -> shards of aligned crops, FORD outputs and VAE latents
train    a run from a config (configs/generalist.json, reenactment.json, face_swap.json)
export   a training checkpoint -> the FaceX weight file the nodes and `edit` load

Many processes: `torchrun --nproc_per_node N -m facex_core.train prepare|train ...`
(or `accelerate launch -m facex_core.train train ...`). Bare model file names (the
checkpoint, clip_vision and init_from of a config) are looked up under --models-dir;
init_from may also be a run's checkpoints/step_* folder, which fine-tunes best.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .. import arguments
from ..cli import common_options, run
from ..errors import FaceXError, UsageError
from ..model.config import FaceXConfig
from ..model.kept_configs import config_dir
from ..models.locate import (
    ModelRoots,
    find_named_file,
    find_user_file,
    models_dir_in_effect,
    models_dir_of,
    roots_from_models_dir,
)
from ..models.manifest import entries_for_role
from .config import TrainConfig


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

    train = sub.add_parser("train", help="train (or resume) the run a config describes", parents=[models_dir])
    train.add_argument("--config", required=True, help="a config file, or generalist / reenactment / face_swap")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set output=runs/test --set steps=100 (repeatable)")
    train.set_defaults(command=_train)

    export = sub.add_parser("export", help="write the FaceX weight file of a checkpoint", parents=[models_dir])
    export.add_argument("--checkpoint", required=True, type=Path, help="a checkpoints/step_* folder of a run")
    export.add_argument("--out", type=Path,
                        help="the FaceX weight file (default: facex/facex_<family>.safetensors in the models folder)")
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


def _train(args: argparse.Namespace) -> int:
    if args.device is not None:
        raise UsageError(f"--device {args.device}: train runs where accelerate puts it; choose GPUs with "
                         "accelerate launch or CUDA_VISIBLE_DEVICES.")
    config = _with_model_files(TrainConfig.from_file(args.config, args.set), roots_from_models_dir(args.models_dir))
    config_dir(config.base_config)

    from .trainer import Trainer  # it reads the shard headers before it loads a model

    print(f"trained: {Trainer(config).run()}")
    return 0


def _with_model_files(config: TrainConfig, roots: ModelRoots) -> TrainConfig:
    """The config with its model files found: as written, or as names under the models folder."""
    clip = entries_for_role("clip_vision")[0]
    checkpoint = find_user_file(Path(config.checkpoint), roots, "checkpoint", "checkpoint (--set checkpoint=PATH)")
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
    out = args.out or _default_export_path(saved.state, models_dir_in_effect(args.models_dir))
    print(f"exported: {export(args.checkpoint, out)}")
    return 0


def _default_export_path(state: dict, models_dir: Path) -> Path:
    family = FaceXConfig.from_json(state["facex_config"]).family
    folder = arguments.existing_folder("--models-dir", models_dir, "models folder the weight file goes into") / "facex"
    folder.mkdir(exist_ok=True)
    return folder / f"facex_{family}.safetensors"


def main(argv: list[str] | None = None) -> int:
    return run(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
