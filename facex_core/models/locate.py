"""Finding model files on disk, with errors that say where each file belongs.

Search roots are given per ComfyUI folder key ("insightface", "clip_vision", ...): from a
plain models directory for scripts, or from ComfyUI's folder_paths (which honours
extra_model_paths.yaml) in the node layer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ModelFileMissingError
from .manifest import MODEL_FILES, ModelFile, entries_for_role, entry_for_filename

ModelRoots = Mapping[str, Sequence[Path]]
FOLDER_KEYS = tuple(dict.fromkeys(entry.folder_key for entry in MODEL_FILES))


def default_models_dir() -> Path:
    """$FACEX_MODELS_DIR, else $COMFYUI_PATH/models, else ./models."""
    if os.environ.get("FACEX_MODELS_DIR"):
        return Path(os.environ["FACEX_MODELS_DIR"]).expanduser()
    if os.environ.get("COMFYUI_PATH"):
        return Path(os.environ["COMFYUI_PATH"]).expanduser() / "models"
    return Path("models")


def roots_from_models_dir(models_dir: str | Path | None = None) -> dict[str, list[Path]]:
    """Search roots for a ComfyUI-style models directory (one subdirectory per folder key)."""
    base = Path(models_dir) if models_dir is not None else default_models_dir()
    return {key: [base / key] for key in FOLDER_KEYS}


def candidate_paths(entry: ModelFile, roots: ModelRoots) -> list[Path]:
    """Every place `entry` may be, in search order."""
    return [Path(root, entry.subfolder, entry.filename) for root in roots.get(entry.folder_key, ())]


def find_model(entry: ModelFile, roots: ModelRoots) -> Path | None:
    return next((path for path in candidate_paths(entry, roots) if path.is_file()), None)


def locate_roles(roles: tuple[str, ...], roots: ModelRoots) -> dict[str, Path]:
    """A file for every role, or one error that lists everything missing and where it goes."""
    found, missing = {}, []
    for role in roles:
        path = next(filter(None, (find_model(entry, roots) for entry in entries_for_role(role))), None)
        if path is None:
            missing.append(role)
        else:
            found[role] = path
    if missing:
        raise ModelFileMissingError("\n".join(_missing_role_message(role, roots) for role in missing))
    return found


def _missing_role_message(role: str, roots: ModelRoots) -> str:
    lines = [
        f"  - {entry.filename}: put it at {_first_candidate(entry, roots)}; {entry.how_to_get()}"
        for entry in entries_for_role(role)
    ]
    return f"No model file for the {role} step was found. Any one of these will do:\n" + "\n".join(lines)


def _first_candidate(entry: ModelFile, roots: ModelRoots) -> Path | str:
    paths = candidate_paths(entry, roots)
    return paths[0] if paths else f"<ComfyUI>/models/{entry.relative_path}"


def require_file(path: str | Path, what: str) -> Path:
    """Return `path` if it is a file; else say what it is for and, when the manifest knows the
    file, where to get it."""
    path = Path(path)
    if path.is_file():
        return path
    entry = entry_for_filename(path.name)
    hint = f"; {entry.how_to_get()}" if entry else ""
    raise ModelFileMissingError(f"The {what} file {path} was not found{hint}.")
