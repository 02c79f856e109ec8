"""Face0's training images and the caption of each.

The images are every image file under the data folder (sub-folders too), in the order of
their paths relative to it. An image's caption comes from the first of:

1. a caption file (`--captions`): CSV with a header row, or JSON Lines (one object per
   line), naming each image by its path relative to the data folder (the file column) and
   giving its caption (the caption column). It then decides the data set: images it does
   not list are left out, and so are listed files that do not exist (both logged).
2. a sidecar text file beside the image: photo.jpg -> photo.txt, the convention of most
   LoRA trainers' data sets.
3. the template, for an image with neither: by default "a photo of a person" (the
   paper's captions came with its annotated data set; an image folder without captions
   has only this to say).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path, PurePath

from ...errors import UsageError
from ...image_files import IMAGE_SUFFIXES

DEFAULT_TEMPLATE = "a photo of a person"
CAPTION_FILE_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class CaptionSource:
    """Where captions come from (the prepare-face0 options)."""

    file: Path | None = None
    file_column: str = "file"
    caption_column: str = "caption"
    template: str = DEFAULT_TEMPLATE


@dataclass(frozen=True)
class CaptionedImage:
    path: Path
    name: str  # the path relative to the data folder, with "/": what the shard and the log call it
    caption: str
    source: str  # "file", "sidecar" or "template"


def find_images(data: Path) -> list[Path]:
    """Every image file under `data`, ordered by its path relative to it."""
    return sorted((path for path in data.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda path: path.relative_to(data).as_posix())


def read_caption_file(source: CaptionSource) -> dict[str, str]:
    """Image name (relative path, "/"-separated) -> caption, from a CSV or JSON Lines file."""
    path = source.file
    if path.suffix.lower() not in CAPTION_FILE_SUFFIXES:
        raise UsageError(f"--captions {path}: a caption file is a .csv (with a header row) or a .jsonl (one JSON "
                         f"object per line), not {path.suffix or 'a file without extension'}.")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    captions: dict[str, str] = {}
    for line, row in rows:
        missing = [column for column in (source.file_column, source.caption_column) if column not in row]
        if missing:
            raise UsageError(f"--captions {path}, line {line}: no {' or '.join(map(repr, missing))} "
                             f"(it has {', '.join(map(repr, row)) or 'nothing'}); name the columns with "
                             "--file-column and --caption-column.")
        name, caption = row[source.file_column], row[source.caption_column]
        if not isinstance(name, str) or not isinstance(caption, str):
            raise UsageError(f"--captions {path}, line {line}: the file and the caption must be text, not "
                             f"{name!r} and {caption!r}.")
        name = PurePath(name).as_posix()
        if name in captions:
            raise UsageError(f"--captions {path}, line {line}: {name} is listed twice; give each image one caption.")
        captions[name] = caption.strip()
    return captions


def _csv_rows(path: Path) -> list[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return [(reader.line_num, row) for row in reader]


def _jsonl_rows(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"--captions {path}, line {line}: not JSON ({error}); one object per line.") from None
        if not isinstance(row, dict):
            raise UsageError(f"--captions {path}, line {line}: a JSON {type(row).__name__}, not an object.")
        rows.append((line, row))
    return rows


def captioned_images(data: Path, source: CaptionSource) -> tuple[list[CaptionedImage], list[tuple[str, str]]]:
    """(the images with their captions, [(image name, why it is left out)])."""
    images = {path.relative_to(data).as_posix(): path for path in find_images(data)}
    if source.file is None:
        return [_uncaptioned(name, path, source.template) for name, path in images.items()], []
    captions = read_caption_file(source)
    chosen = [CaptionedImage(path, name, captions[name], "file") for name, path in images.items() if name in captions]
    left_out = [(name, f"not listed in {source.file.name}") for name in images if name not in captions]
    left_out += [(name, f"listed in {source.file.name} but no image file") for name in captions if name not in images]
    return chosen, left_out


def _uncaptioned(name: str, path: Path, template: str) -> CaptionedImage:
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        return CaptionedImage(path, name, sidecar.read_text(encoding="utf-8").strip(), "sidecar")
    return CaptionedImage(path, name, template, "template")
