"""Module-level model cache: V3 nodes hold no state, and heavy models must load once."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_MODELS: dict[Hashable, object] = {}


def cached(key: Hashable, load: Callable[[], T]) -> T:
    """The object stored under `key`, loading it on first use. Keys include the file's
    modification time, so a replaced file is loaded again."""
    if key not in _MODELS:
        _MODELS[key] = load()
    return _MODELS[key]  # type: ignore[return-value]


def file_key(path: Path) -> tuple[str, float | None]:
    """Cache key part for a model file: its path and modification time (None if missing)."""
    return str(path), path.stat().st_mtime if path.is_file() else None
