"""Checks of command-line values and of the files they name, made before any model loads.

Each check raises a FaceXError whose message starts with the flag, says what is wrong and
what to do, so the runner (cli.py) can show it as one line. Only the standard library,
NumPy and Pillow are used: every check answers in milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from pathlib import Path

from .errors import ImageInputError, ModelFileMissingError, UsageError
from .image_files import read_image_file
from .models.locate import require_file

DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps|xpu)(:\d+)?")


def number_in_range(flag: str, value: float, low: float | None = None, high: float | None = None,
                    why: str = "") -> float:
    """`value` if it is finite and within [low, high]; `why` says where a bound comes from."""
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = " to ".join(str(bound) for bound in (low, high) if bound is not None)
        wanted = {(True, True): f"from {bounds}", (True, False): f"at least {low}", (False, True): f"at most {high}"}
        rule = wanted.get((low is not None, high is not None), "a finite number")
        raise UsageError(f"{flag} {value}: must be {rule}{f' ({why})' if why else ''}.")
    return value


def image_file_size(flag: str, path: Path) -> tuple[int, int]:
    """(width, height) of an image file, decoding all of it so a truncated file is caught here."""
    try:
        height, width = read_image_file(path).shape[:2]
    except ImageInputError as error:
        raise ImageInputError(f"{flag}: {error}") from None
    return width, height


def output_file(flag: str, path: Path, suffixes: Collection[str], what: str) -> Path:
    """A file the command will write: not a folder, with a suffix it writes, in a folder that exists."""
    choices = ", ".join(sorted(suffixes))
    example = sorted(suffixes)[0]
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory; give a file name in it, e.g. {path / ('result' + example)}.")
    if not path.suffix:
        raise UsageError(f"{flag} {path} has no extension; end the name with one of {choices} to say the {what} type.")
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: {path.suffix} is not a {what} type this command writes; "
                         f"use one of {choices}.")
    return output_folder_exists(flag, path)


def output_folder_exists(flag: str, path: Path) -> Path:
    parent = path.parent
    if not parent.is_dir():
        problem = "is a file" if parent.exists() else "does not exist"
        raise UsageError(f"{flag} {path}: the folder {parent} {problem}; create the folder first or write elsewhere.")
    return path


def output_folder(flag: str, path: Path) -> Path:
    """A folder the command writes files into: one that exists, or a new one in a folder that exists."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; give a folder to write into (a new one is created).")
    return output_folder_exists(flag, path)


def existing_folder(flag: str, path: Path, what: str) -> Path:
    if path.is_dir():
        return path
    problem = "is a file, not a folder" if path.exists() else "does not exist"
    raise UsageError(f"{flag} {path} {problem}; give the {what}.")


def model_file(flag: str, path: Path, what: str) -> Path:
    """A model file given by path (e.g. --detector): present, and a file."""
    try:
        return require_file(path, what)
    except ModelFileMissingError as error:
        raise ModelFileMissingError(f"{flag}: {error}") from None


def device_name(flag: str, text: str | None) -> str | None:
    """A torch device string (cpu, cuda, cuda:1, ...) that this machine has; None means the default."""
    if text is None:
        return None
    if not DEVICE_PATTERN.fullmatch(text):
        raise UsageError(f"{flag} {text}: not a device; use cpu, cuda or cuda:N (the N-th GPU).")
    if text.startswith("cuda"):
        import torch

        count = torch.cuda.device_count()
        index = int(text.partition(":")[2] or 0)
        if index >= count:
            seen = f"{count} CUDA GPU(s)" if count else f"no CUDA GPU (torch {torch.__version__})"
            raise UsageError(f"{flag} {text}: torch sees {seen}; use --device cpu or another GPU.")
    return text
