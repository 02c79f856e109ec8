"""The model files one FaceX edit needs, found together, so a user with several missing
learns about all of them at once: the checkpoint and the FaceX file (by path, or by name
in models/checkpoints and models/facex), the detector and extractors, and the region
encoder the FaceX file names. Reads only file headers: the command line runs it before any
model loads, and FaceXEditor runs it first too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileMissingError
from ..model.metadata import read_metadata, region_encoder_file
from .locate import ModelRoots, find_user_file, locate_roles, models_dir_of
from .manifest import EXTRACTOR_ROLES, entries_for_role

EDIT_ROLES = ("detection", *EXTRACTOR_ROLES)


@dataclass(frozen=True)
class EditFiles:
    checkpoint: Path
    facex: Path
    roles: dict[str, Path]  # the detector and extractor file of each of EDIT_ROLES
    metadata: dict[str, str]  # the FaceX file's header
    clip: Path | None  # the clip_vision file the FaceX file names; None when its CLIP is embedded


def find_edit_files(checkpoint: Path, facex: Path, roots: ModelRoots, labels: Mapping[str, str] = {}) -> EditFiles:
    """Every file an edit needs, or one error with a line per missing file; `labels` name the
    checkpoint's and FaceX file's arguments in it (e.g. {"checkpoint": "--checkpoint"})."""
    problems: list[str] = []

    def attempt(find, *values):
        try:
            return find(*values)
        except ModelFileMissingError as error:
            problems.append(str(error))
            return None

    found_checkpoint = attempt(find_user_file, checkpoint, roots, "checkpoint", labels.get("checkpoint", ""))
    found_facex = attempt(find_user_file, facex, roots, "facex", labels.get("facex", ""))
    roles = attempt(locate_roles, EDIT_ROLES, roots) or {}
    metadata = read_metadata(found_facex) if found_facex else {}
    clip = region_encoder_file(metadata, roots) if metadata else None
    if clip is not None and not clip.exists():
        entry = entries_for_role("clip_vision")[0]
        problems.append(f"The FaceX file's region encoder {clip} was not found; "
                        f"{entry.how_to_get(models_dir_of(roots, entry.folder_key))}.")
    if problems:
        raise ModelFileMissingError("\n".join(problems))
    return EditFiles(found_checkpoint, found_facex, roles, metadata, clip)
