"""Validation grids: fixed samples, rows of images side by side, one PNG per step.

Both trainers draw their validation samples from a stream of their own (seed + VALIDATION_SEED_OFFSET),
the same at every validation, so grids of successive steps compare directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from ..images import to_uint8

VALIDATION_SEED_OFFSET = 1_000  # validation samples come from another seed than training's first samples


def validation_batch(stream: Dataset, count: int) -> dict:
    """The first `count` samples of a validation stream, collated."""
    return default_collate([stream[index] for index in range(count)])


def image_grid(columns: Sequence[torch.Tensor]) -> np.ndarray:
    """[N * S, len(columns) * S, 3] uint8 from columns of N images [N, S, S, 3] (0..1): row i
    holds image i of every column."""
    rows = torch.cat([column.float().cpu() for column in columns], dim=2)  # side by side
    return to_uint8(rows.reshape(1, -1, *rows.shape[2:]))[0]


def save_grid(grid: np.ndarray, folder: Path, step: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:07d}.png"
    Image.fromarray(grid).save(path)
    return path
