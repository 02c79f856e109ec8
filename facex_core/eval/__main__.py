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

from .. import arguments
from ..__main__ import add_generation_arguments, check_sampling_arguments, editor_and_settings, find_model_files
from ..cli import common_options, run
from ..errors import UsageError
from ..models.locate import roots_from_models_dir
from .pairs import read_pairs
from .tables import DEFAULT_METHOD, FID_NETWORK_NAMES, INCEPTION_WEIGHTS, PROTOCOLS


def _parser() -> argparse.ArgumentParser:
    summary, details = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="python -m facex_core.eval", description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[common_options("--models-dir", "--device")])
    parser.add_argument("protocol", choices=tuple(PROTOCOLS))
    parser.add_argument("--pairs", required=True, type=Path, help="CSV file with the columns source,target")
    add_generation_arguments(parser)
    parser.add_argument("--method", default=DEFAULT_METHOD, help="the method's name in the table")
    parser.add_argument("--fid-network", default="clip", choices=tuple(FID_NETWORK_NAMES),
                        help="; ".join(f"{name}: {what}" for name, what in FID_NETWORK_NAMES.items()))
    parser.add_argument("--inception-weights", type=Path, help=f"pytorch-fid's {INCEPTION_WEIGHTS}")
    parser.add_argument("--out", type=Path, help="also write the per-pair results and the summary to this JSON file")
    parser.set_defaults(command=_evaluate)
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    protocol = PROTOCOLS[args.protocol]
    check_sampling_arguments(args)
    if protocol.fid and args.fid_network == "inception":
        if args.inception_weights is None:
            raise UsageError(f"--fid-network inception needs --inception-weights PATH ({INCEPTION_WEIGHTS} "
                             "from pytorch-fid).")
        arguments.model_file("--inception-weights", args.inception_weights, "FID Inception")
    elif args.inception_weights is not None:
        raise UsageError("--inception-weights is read only with --fid-network inception by a protocol with FID.")
    pairs = read_pairs(args.pairs)
    if args.out is not None:
        arguments.output_file("--out", args.out, {".json"}, "results")
    files = find_model_files(args)

    from .protocols import FID_NETWORKS, evaluate, format_table, write_json

    editor, settings = editor_and_settings(args, files)
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
    return run(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
