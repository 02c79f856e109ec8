"""`python -m facex_core.train <stage>`: the three stages that make a FaceX weight file.

prepare  face clips -> shards of aligned crops, FORD outputs and VAE latents
train    a run from a config (configs/generalist.json, reenactment.json, face_swap.json)
export   a training checkpoint -> the FaceX weight file the nodes and `edit` load

Many processes: `torchrun --nproc_per_node N -m facex_core.train prepare|train ...`
(or `accelerate launch -m facex_core.train train ...`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FaceXError
from ..models.locate import default_models_dir, roots_from_models_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facex_core.train", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    prepare = sub.add_parser("prepare", help="clips to training shards (resumable; split over processes by rank)")
    prepare.add_argument("--data", required=True, type=Path, help="folder of videos / frame folders, or CelebV-HQ")
    prepare.add_argument("--out", required=True, type=Path, help="prepared-data folder (shards/, log/)")
    prepare.add_argument("--checkpoint", required=True, type=Path, help="SD single file whose VAE encodes the latents")
    prepare.add_argument("--base-config", default="sd15", help="kept config of the checkpoint (sd15, sd2, ...)")
    prepare.add_argument("--models-dir", default=None, help=f"ComfyUI models folder (default: {default_models_dir()})")
    prepare.add_argument("--size", type=int, default=256, choices=(256, 512, 768), help="aligned crop size")
    prepare.add_argument("--every", type=int, default=1, help="keep every n-th frame")
    prepare.add_argument("--max-frames", type=int, default=None, help="at most this many frames per clip")
    prepare.add_argument("--min-face", type=float, default=64.0, help="smallest face side in pixels")
    prepare.add_argument("--batch", type=int, default=16, help="frames per extractor pass")
    prepare.add_argument("--rank", type=int, default=None, help="this process's share (default: $RANK or 0)")
    prepare.add_argument("--world-size", type=int, default=None, help="number of shares (default: $WORLD_SIZE or 1)")
    prepare.add_argument("--device", default=None, help="default: cuda:$LOCAL_RANK when a GPU is present")
    train = sub.add_parser("train", help="train (or resume) the run a config describes")
    train.add_argument("--config", required=True, help="a config file, or generalist / reenactment / face_swap")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set output=runs/test --set steps=100 (repeatable)")
    export = sub.add_parser("export", help="write the FaceX weight file of a checkpoint")
    export.add_argument("--checkpoint", required=True, type=Path, help="a checkpoints/step_* folder of a run")
    export.add_argument("--out", required=True, type=Path, help="the FaceX weight file (.safetensors)")
    return parser


def _prepare(args: argparse.Namespace) -> int:
    from .prepare import Preparer, PrepareSettings, Slot, prepare

    slot = Slot.from_environment(args.rank, args.world_size, args.device)
    settings = PrepareSettings(args.size, args.every, args.max_frames, args.min_face, args.batch)
    preparer = Preparer(args.checkpoint, roots_from_models_dir(args.models_dir), args.base_config, settings, slot.device)
    counts = prepare(args.data, args.out, preparer, slot)
    print(f"rank {slot.rank}: {counts['written']} shard(s) with {counts['frames']} frames written, "
          f"{counts['already_done']} already done, {counts['skipped']} clip(s) without a usable face "
          f"(details in {args.out / 'log'})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .trainer import Trainer

    out = Trainer(TrainConfig.from_file(args.config, args.set)).run()
    print(f"trained: {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .checkpoints import export

    print(f"exported: {export(args.checkpoint, args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stages = {"prepare": _prepare, "train": _train, "export": _export}
    try:
        return stages[args.stage](args)
    except (FaceXError, ValueError, FileNotFoundError) as exc:  # input errors carry their own explanation
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
