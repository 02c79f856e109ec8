"""Validation image grids: what the model makes of fixed pairs as training goes on.

One row per pair: source | I_R | target (the ground truth) | generated. The pairs come from
clips held out of training (the config's validation_clips, the last clips by name) or,
with none held out, from the training clips under a seed of their own (grids.py).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL

from ..model.sampling import SamplingSettings, sample_crops
from .grids import image_grid
from .step import TrainingModel


@torch.no_grad()
def validation_grid(model: TrainingModel, batch: dict, vae: AutoencoderKL, scheduler_config: dict,
                    settings: SamplingSettings) -> np.ndarray:
    """[rows * S, 4 * S, 3] uint8: source, I_R, target and generated crop of each pair."""
    context, reference, fusion = model.condition(batch)
    generated = sample_crops(model.binding.unet, vae, scheduler_config, model.binding, context,
                             model.text, batch["target"]["crops"], fusion, settings)
    return image_grid([batch["source"]["crops"], reference, batch["target"]["crops"], generated])
