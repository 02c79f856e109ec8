"""Validation image grids: what the model makes of fixed pairs as training goes on.

One row per pair: source | I_R | target (the ground truth) | generated. The pairs come from
clips held out of training (the config's validation_clips, the last clips by name) or,
with none held out, from the training clips under a seed of their own; they are the same
at every validation, so grids of successive steps compare directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image

from ..images import to_uint8
from ..model.sampling import SamplingSettings, sample_crops
from .dataset import PairStream
from .step import TrainingModel

VALIDATION_SEED_OFFSET = 1_000  # validation pairs come from another seed than training's first samples


def validation_batch(stream: PairStream, count: int) -> dict:
    """The first `count` samples of a validation stream, collated."""
    return torch.utils.data.default_collate([stream[index] for index in range(count)])


@torch.no_grad()
def validation_grid(model: TrainingModel, batch: dict, vae: AutoencoderKL, scheduler_config: dict,
                    settings: SamplingSettings) -> np.ndarray:
    """[rows * S, 4 * S, 3] uint8: source, I_R, target and generated crop of each pair."""
    context, reference, fusion = model.condition(batch)
    generated = sample_crops(model.binding.unet, vae, scheduler_config, model.binding, context,
                             model.text, batch["target"]["crops"], fusion, settings)
    columns = [batch["source"]["crops"], reference, batch["target"]["crops"], generated]
    rows = torch.cat([column.float().cpu() for column in columns], dim=2)  # side by side
    return to_uint8(rows.reshape(1, -1, *rows.shape[2:]))[0]


def save_grid(grid: np.ndarray, folder: Path, step: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:07d}.png"
    Image.fromarray(grid).save(path)
    return path
