"""Is each model file present and intact? Size is always compared; SHA-256 when asked,
because hashing the 1.7 GB CLIP file takes a while."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .locate import ModelRoots, candidate_paths, find_model, models_dir_of
from .manifest import MODEL_FILES, OPTIONAL_ROLES, ROLES, USER_FILES, ModelFile, UserFile

_CHUNK = 1 << 20
_SHOWN_FILES = 3


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    entry: ModelFile
    path: Path | None  # where it was found, None if missing
    problem: str | None  # why a present file is unusable, None if fine

    @property
    def ok(self) -> bool:
        return self.path is not None and self.problem is None


def file_status(entry: ModelFile, roots: ModelRoots, verify_hash: bool = False) -> FileStatus:
    path = find_model(entry, roots)
    if path is None:
        return FileStatus(entry, None, None)
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return FileStatus(entry, path, f"size {size:,} bytes, expected {entry.size:,} (truncated or another file)")
    if verify_hash and entry.sha256 is not None and sha256_of(path) != entry.sha256:
        return FileStatus(entry, path, "SHA-256 differs from the published file (corrupt or another file)")
    return FileStatus(entry, path, None)


@dataclass(frozen=True)
class UserFileStatus:
    """The files of a kind the user brings (SD checkpoints, FaceX weights) found in its folders."""

    kind: UserFile
    folders: list[Path]
    found: list[Path]

    def describe(self) -> str:
        where = self.folders[0] if self.folders else self.kind.folder_key
        if self.found:
            names = ", ".join(path.name for path in self.found[:_SHOWN_FILES])
            more = f" and {len(self.found) - _SHOWN_FILES} more" if len(self.found) > _SHOWN_FILES else ""
            return f"{len(self.found)} in {where}: {names}{more}"
        return f"none in {where}: {self.kind.advice}"


def user_file_status(kind: UserFile, roots: ModelRoots) -> UserFileStatus:
    folders = [Path(folder) for folder in roots.get(kind.folder_key, ())]
    found = sorted(path for folder in folders if folder.is_dir() for path in folder.rglob("*")
                   if path.suffix.lower() in kind.suffixes and path.is_file())
    return UserFileStatus(kind, folders, found)


def all_status(roots: ModelRoots, verify_hash: bool = False) -> list[FileStatus]:
    return [file_status(entry, roots, verify_hash) for entry in MODEL_FILES]


def missing_roles(statuses: list[FileStatus], optional: bool = False) -> list[str]:
    """Roles none of whose alternatives is present and intact: of those FaceX needs, or with
    `optional` of those only other features need."""
    roles = OPTIONAL_ROLES if optional else ROLES
    return [role for role in roles if not any(s.ok for s in statuses if s.entry.role == role)]


def _alternatives(statuses: list[FileStatus], role: str, roots: ModelRoots) -> list[str]:
    """For each file of `role`: where it goes and how to get it."""
    lines = []
    for status in statuses:
        if status.entry.role == role:
            target = (candidate_paths(status.entry, roots) or [status.entry.relative_path])[0]
            advice = status.entry.how_to_get(models_dir_of(roots, status.entry.folder_key))
            lines.append(f"  - {status.entry.filename} -> {target}\n    {advice}")
    return lines


def report(statuses: list[FileStatus], roots: ModelRoots) -> str:
    """A table of every file, the files users bring (checkpoints, FaceX weights), then for
    each unsatisfied role, required ones first, where to put which file."""
    lines = []
    for status in statuses:
        entry = status.entry
        if status.path is None:
            state = "missing"
        elif status.problem:
            state = f"BAD: {status.problem}"
        else:
            state = "ok"
        where = status.path or (candidate_paths(entry, roots) or [entry.relative_path])[0]
        lines.append(f"{entry.role:12s} {entry.key:30s} {state:10s} {where}")
    for kind in USER_FILES.values():
        lines.append(f"{kind.role:12s} {kind.description}: {user_file_status(kind, roots).describe()}")
    for role in missing_roles(statuses):
        lines += [f"\nNo usable {ROLES[role]}. Any one of:", *_alternatives(statuses, role, roots)]
    for role in missing_roles(statuses, optional=True):
        lines += [f"\nOptional, not found: {OPTIONAL_ROLES[role]}; FaceX runs without it. To use it, any one of:",
                  *_alternatives(statuses, role, roots)]
    return "\n".join(lines)
