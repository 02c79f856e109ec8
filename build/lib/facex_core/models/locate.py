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
from .manifest import MODEL_FILES, USER_FILES, ModelFile, entries_for_role, entry_for_filename

ModelRoots = Mapping[str, Sequence[Path]]
FOLDER_KEYS = tuple(dict.fromkeys([entry.folder_key for entry in MODEL_FILES]
                                  + [kind.folder_key for kind in USER_FILES.values()]))


def default_models_dir() -> Path:
    """$FACEX_MODELS_DIR, else $COMFYUI_PATH/models, else ./models."""
    if os.environ.get("FACEX_MODELS_DIR"):
        return Path(os.environ["FACEX_MODELS_DIR"]).expanduser()
    if os.environ.get("COMFYUI_PATH"):
        return Path(os.environ["COMFYUI_PATH"]).expanduser() / "models"
    return Path("models")


def models_dir_in_effect(models_dir: str | Path | None = None) -> Path:
    """The models folder a command uses: the one it was given, else default_models_dir()."""
    return Path(models_dir) if models_dir is not None else default_models_dir()


def roots_from_models_dir(models_dir: str | Path | None = None) -> dict[str, list[Path]]:
    """Search roots for a ComfyUI-style models directory (one subdirectory per folder key)."""
    base = models_dir_in_effect(models_dir)
    return {key: [base / key] for key in FOLDER_KEYS}


def models_dir_of(roots: ModelRoots, folder_key: str) -> Path | None:
    """The models folder holding the first search root of `folder_key` (roots are
    <models>/<folder_key>, from a models dir or from ComfyUI's folder_paths)."""
    folders = roots.get(folder_key, ())
    return Path(folders[0]).parent if folders else None


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
        f"  - {entry.filename}: put it at {_first_candidate(entry, roots)}; "
        f"{entry.how_to_get(models_dir_of(roots, entry.folder_key))}"
        for entry in entries_for_role(role)
    ]
    return f"No model file for the {role} step was found. Any one of these will do:\n" + "\n".join(lines)


def _first_candidate(entry: ModelFile, roots: ModelRoots) -> Path | str:
    paths = candidate_paths(entry, roots)
    return paths[0] if paths else f"<ComfyUI>/models/{entry.relative_path}"


def find_named_file(given: Path, folders: Sequence[Path], what: str, advice: str, label: str = "") -> Path:
    """`given` as a path, or a relative name found in one of `folders` (models/checkpoints, ...),
    as ComfyUI looks files up; else an error, prefixed with `label` (e.g. the flag), saying
    where it looked and `advice` on where such files come from."""
    prefix = f"{label}: " if label else ""
    inside = given.is_absolute() or any(given.is_relative_to(Path(folder).parent) for folder in folders)
    places = [given] if inside else [given, *(Path(folder) / given for folder in folders)]
    found = next((place for place in places if place.is_file()), None)
    if found is not None:
        return found
    if given.is_dir():
        raise ModelFileMissingError(f"{prefix}the {what} {given} is a directory; give the file itself.")
    looked = " or ".join(str(place) for place in places)
    raise ModelFileMissingError(f"{prefix}the {what} {given} was not found (looked at {looked}); {advice}.")


def find_user_file(given: Path, roots: ModelRoots, role: str, label: str = "") -> Path:
    """A Stable Diffusion checkpoint or FaceX file (manifest.USER_FILES) by path or by name."""
    kind = USER_FILES[role]
    return find_named_file(Path(given), roots.get(kind.folder_key, ()), kind.description, kind.advice, label)


def require_file(path: str | Path, what: str) -> Path:
    """Return `path` if it is a file; else say what it is for and, when the manifest knows the
    file, where to get it."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelFileMissingError(f"The {what} file {path} is a directory; give the file itself.")
    entry = entry_for_filename(path.name)
    hint = f"; {entry.how_to_get(_models_dir_holding(path, entry))}" if entry else ""
    raise ModelFileMissingError(f"The {what} file {path} was not found{hint}.")


def _models_dir_holding(path: Path, entry: ModelFile) -> Path | None:
    """The models folder `path` is in when it sits at the entry's place below one."""
    depth = len(Path(entry.relative_path).parts)
    return path.parents[depth - 1] if path.parts[-depth:] == Path(entry.relative_path).parts else None
