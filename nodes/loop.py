"""Loops over frames or faces that show ComfyUI's progress bar and stop when the user interrupts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import comfy.model_management
import comfy.utils

T = TypeVar("T")
CHUNK = 16  # faces per network call: batches help on a GPU, bound memory on long videos


def frames(items: Iterable[T], total: int) -> Iterator[T]:
    bar = comfy.utils.ProgressBar(total)
    for item in items:
        comfy.model_management.throw_exception_if_processing_interrupted()
        yield item
        bar.update(1)


def chunks(count: int, size: int = CHUNK) -> Iterator[list[int]]:
    """Index lists of at most `size` faces, with progress and interrupt between them."""
    starts = range(0, count, size)
    yield from frames((list(range(start, min(start + size, count))) for start in starts), len(starts))


def chunk_progress(total: int) -> Callable[[int, int], None]:
    """A facex_core `on_chunk` callback: ComfyUI's progress bar over `total` faces, and the
    user's interrupt honoured after each chunk."""
    bar = comfy.utils.ProgressBar(max(total, 1))

    def update(done: int, count: int) -> None:
        bar.update_absolute(done, count)
        comfy.model_management.throw_exception_if_processing_interrupted()

    return update
