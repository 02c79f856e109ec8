"""Is each model file present and intact? Size is always compared; SHA-256 when asked,
because hashing the 1.7 GB CLIP file takes a while."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .locate import ModelRoots, candidate_paths, find_model
from .manifest import MODEL_FILES, ROLES, ModelFile

_CHUNK = 1 << 20


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


def all_status(roots: ModelRoots, verify_hash: bool = False) -> list[FileStatus]:
    return [file_status(entry, roots, verify_hash) for entry in MODEL_FILES]


def missing_roles(statuses: list[FileStatus]) -> list[str]:
    """Roles none of whose alternatives is present and intact."""
    return [role for role in ROLES if not any(s.ok for s in statuses if s.entry.role == role)]


def report(statuses: list[FileStatus], roots: ModelRoots) -> str:
    """A table of every file, then for each unsatisfied role where to put which file."""
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
    for role in missing_roles(statuses):
        lines.append(f"\nNo usable {ROLES[role]}. Any one of:")
        for status in statuses:
            if status.entry.role == role:
                target = (candidate_paths(status.entry, roots) or [status.entry.relative_path])[0]
                lines.append(f"  - {status.entry.filename} -> {target}\n    {status.entry.how_to_get()}")
    return "\n".join(lines)
