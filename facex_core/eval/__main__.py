"""`python -m facex_core.eval <protocol>`: the paper's evaluation tables on your image pairs.

reenactment     Table 1: identity, expression, pose and gaze error, FID
face_swap       Table 2: the same columns for face swapping
reconstruction  Table 3: SSIM, PSNR and RMSE against the target (same person as the source)

The pairs file is a CSV with the columns source,target; paths are relative to its folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..edit import FaceXEditor
from ..errors import FaceXError
from ..model.sampling import SamplingSettings
from ..models.locate import default_models_dir, roots_from_models_dir
from ..runtime import default_device
from .inception import WEIGHTS_FILE
from .protocols import DEFAULT_METHOD, FID_NETWORKS, PROTOCOLS, evaluate, format_table, read_pairs, write_json


def _parser() -> argparse.ArgumentParser:
    summary, details = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="python -m facex_core.eval", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocol", choices=tuple(PROTOCOLS))
    parser.add_argument("--pairs", required=True, type=Path, help="CSV file with the columns source,target")
    parser.add_argument("--checkpoint", required=True, type=Path, help="Stable Diffusion single-file checkpoint")
    parser.add_argument("--facex", required=True, type=Path, help="FaceX weight file (.safetensors)")
    parser.add_argument("--models-dir", default=None,
                        help=f"ComfyUI models folder (default: {default_models_dir()})")
    parser.add_argument("--base-config", default=None,
                        help="diffusers config of the checkpoint (default: the FaceX file's family)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: the GPU if present)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default=DEFAULT_METHOD, help="the method's name in the table")
    parser.add_argument("--fid-network", default="clip", choices=tuple(FID_NETWORKS),
                        help="FID features: CLIP ViT-L/14 (the clip_vision file) or Inception-v3 "
                        "(needs --inception-weights)")
    parser.add_argument("--inception-weights", type=Path, help=f"pytorch-fid's {WEIGHTS_FILE}")
    parser.add_argument("--out", type=Path, help="also write the per-pair results and the summary to this JSON file")
    return parser


def _run(args: argparse.Namespace) -> int:
    protocol = PROTOCOLS[args.protocol]
    pairs = read_pairs(args.pairs)
    roots = roots_from_models_dir(args.models_dir)
    editor = FaceXEditor(args.checkpoint, args.facex, roots, args.base_config, args.device or default_device())
    fid_network = FID_NETWORKS[args.fid_network](editor, roots, args.inception_weights) if protocol.fid else None
    report = evaluate(editor, protocol, pairs, SamplingSettings(args.steps, args.guidance, args.seed), fid_network,
                      args.method, progress=lambda line: print(line, file=sys.stderr))
    print(format_table(report))
    if args.out:
        write_json(report, args.out)
        print(f"results -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.fid_network == "inception" and args.inception_weights is None:
        parser.error(f"--fid-network inception needs --inception-weights PATH ({WEIGHTS_FILE} from pytorch-fid)")
    try:
        return _run(args)
    except (FaceXError, ValueError, KeyError) as exc:  # user input errors carry their own explanation
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
