"""FaceX's model folders in ComfyUI's folder_paths, and the file choices offered in nodes.

Registering the folders lets extra_model_paths.yaml point them elsewhere, exactly like
checkpoints or loras. A combo lists the files found for a role and, when none is found,
the manifest's file names, so a graph still validates and the node then says where the
missing file goes.
"""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

from facex_core.models.manifest import CLIP_VISION, EXTRACTORS, FACE0, FACEX, INSIGHTFACE, entries_for_role

EXTENSIONS = {
    INSIGHTFACE: {".onnx"},
    EXTRACTORS: {".pth", ".pkl", ".pt", ".safetensors"},
    FACEX: {".safetensors"},
    FACE0: {".safetensors"},
}


def register_model_folders() -> None:
    """Add FaceX's folders under ComfyUI/models unless another pack already did."""
    for key, extensions in EXTENSIONS.items():
        if key in folder_paths.folder_names_and_paths:
            paths, known = folder_paths.folder_names_and_paths[key]
            folder_paths.folder_names_and_paths[key] = (paths, set(known) | extensions)  # another pack may use a list
        else:
            folder_paths.folder_names_and_paths[key] = ([os.path.join(folder_paths.models_dir, key)], set(extensions))


def model_roots() -> dict[str, list[Path]]:
    """facex_core search roots from folder_paths."""
    keys = (INSIGHTFACE, EXTRACTORS, CLIP_VISION, FACEX)
    return {key: [Path(p) for p in folder_paths.get_folder_paths(key)] for key in keys}


def role_choices(role: str) -> list[str]:
    """Files for `role` as paths relative to their folder, present ones first."""
    entries = entries_for_role(role)
    known = {entry.filename for entry in entries}
    present = [name for name in folder_paths.get_filename_list(entries[0].folder_key) if Path(name).name in known]
    defaults = ["/".join(p for p in (entry.subfolder, entry.filename) if p) for entry in entries]
    return list(dict.fromkeys(present + defaults))


def weight_choices(folder: str = FACEX) -> list[str]:
    """Weight files in models/facex or models/face0 (the usual name when there is none yet)."""
    return folder_paths.get_filename_list(folder) or [f"{folder}_sd15.safetensors"]


def resolve_file(folder: str, choice: str) -> Path:
    """The full path of a combo choice in a folder (it may not exist; loaders then say what to do)."""
    found = folder_paths.get_full_path(folder, choice)
    return Path(found) if found else Path(folder_paths.get_folder_paths(folder)[0], choice)


def resolve(role: str, choice: str) -> Path:
    return resolve_file(entries_for_role(role)[0].folder_key, choice)
