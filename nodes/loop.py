"""Loops over frames that show ComfyUI's progress bar and stop when the user interrupts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import comfy.model_management
import comfy.utils

T = TypeVar("T")


def frames(items: Iterable[T], total: int) -> Iterator[T]:
    bar = comfy.utils.ProgressBar(total)
    for item in items:
        comfy.model_management.throw_exception_if_processing_interrupted()
        yield item
        bar.update(1)
