"""The pairs file of an evaluation: a CSV with the columns source,target, image paths
relative to the file. Read and checked before any model loads."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import FaceXError

PAIR_COLUMNS = ("source", "target")


class PairsFileError(FaceXError):
    """A pairs file that cannot be used: missing, without the source,target columns, or
    naming images that do not exist."""


@dataclass(frozen=True)
class Pair:
    source: Path
    target: Path


def read_pairs(path: Path) -> list[Pair]:
    """The pairs of a CSV file with columns source,target; image paths are relative to the
    file's folder. Every problem is found before any model is loaded."""
    path = Path(path)
    if not path.is_file():
        raise PairsFileError(f"The pairs file {path} does not exist; write a CSV with a header line 'source,target' "
                             "and one pair of image paths per line, relative to the CSV's folder.")
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        missing = [name for name in PAIR_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise PairsFileError(f"The pairs file {path} has no column {' or '.join(missing)}; its header is "
                                 f"{','.join(reader.fieldnames or [])!r}, expected 'source,target'.")
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise PairsFileError(f"The pairs file {path} lists no pairs.")
    pairs, problems = [], []
    for line, row in rows:
        names = [(row[name] or "").strip() for name in PAIR_COLUMNS]
        if not all(names):
            problems.append(f"line {line}: a source and a target path are both needed")
            continue
        pair = Pair(*(Path(os.path.normpath(path.parent / name)) for name in names))
        problems += [f"line {line}: {image} does not exist" for image in (pair.source, pair.target)
                     if not image.is_file()]
        pairs.append(pair)
    if problems:
        raise PairsFileError(f"The pairs file {path} cannot be used:\n" + "\n".join(f"  - {p}" for p in problems))
    return pairs
