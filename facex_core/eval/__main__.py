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

from ..__main__ import add_generation_arguments, add_place_arguments, editor_and_settings
from ..errors import FaceXError
from ..models.locate import roots_from_models_dir
from .inception import WEIGHTS_FILE
from .protocols import DEFAULT_METHOD, FID_NETWORKS, PROTOCOLS, evaluate, format_table, read_pairs, write_json


def _parser() -> argparse.ArgumentParser:
    summary, details = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="python -m facex_core.eval", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocol", choices=tuple(PROTOCOLS))
    parser.add_argument("--pairs", required=True, type=Path, help="CSV file with the columns source,target")
    add_generation_arguments(parser)
    add_place_arguments(parser)
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
    editor, settings = editor_and_settings(args)
    roots = roots_from_models_dir(args.models_dir)
    fid_network = FID_NETWORKS[args.fid_network](editor, roots, args.inception_weights) if protocol.fid else None
    report = evaluate(editor, protocol, pairs, settings, fid_network, args.method,
                      progress=lambda line: print(line, file=sys.stderr))
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
