"""What every command line of facex_core shares: the common options and the runner.

`python -m facex_core`, `facex_core.models`, `facex_core.train` and `facex_core.eval` all go
through `run`. A FaceXError is something the user can fix, so it becomes `error: <message>`
on stderr and exit code 2, as argparse does for a malformed command line; any other
exception is a bug and keeps its traceback. Commands check their arguments and input files
first (arguments.py) and load models only after, and the modules here import no torch, so
a typo is answered in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import FaceXError
from .models.locate import default_models_dir

Command = Callable[[argparse.Namespace], int]

COMMON_OPTIONS: dict[str, dict] = {
    "--models-dir": dict(type=Path, metavar="DIR",
                         help=f"ComfyUI models folder (default: $FACEX_MODELS_DIR, $COMFYUI_PATH/models or ./models; "
                              f"here {default_models_dir()})"),
    "--device": dict(help="torch device: cpu, cuda or cuda:N (default: the GPU if present)"),
}
INTERRUPTED = 130  # the shell's code for a process ended by Ctrl-C


def common_options(*flags: str, after_subcommand: bool = False) -> argparse.ArgumentParser:
    """A parent parser holding the common options `flags`. Give it to the command's parser and,
    with after_subcommand, to every subcommand's: there the default is SUPPRESS, so an option
    placed before the subcommand keeps its value unless it is given again after it."""
    parent = argparse.ArgumentParser(add_help=False)
    for flag in flags:
        parent.add_argument(flag, default=argparse.SUPPRESS if after_subcommand else None, **COMMON_OPTIONS[flag])
    return parent


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse `argv` and run the command the parser chose (set_defaults(command=...))."""
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except FaceXError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
