"""Face0 validation grids: what the model makes of fixed training samples' captions and faces.

One row per sample: the image | the caption alone | the face alone | the caption and the face.
Each generated column is DDIM from the same seeded noise with one of the guidance's weights
at 7.5 and the others at 0 (face0/guidance.py), against the empty prompt: the caption
column shows the base model's drift, the face column what the face tokens carry, the last
column what the face0 command makes. Face0 holds no images out of training (its data has
no clips to hold out), so the samples are training images drawn under a seed of their own.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL

from ...face0.generate import Face0Sampling, face0_contexts, sample_face0
from ...model.sampling import decode
from ..grids import image_grid
from .step import Face0TrainingModel

VALIDATION_WEIGHT = 7.5  # the face0 command's default guidance
COLUMN_WEIGHTS = (  # the generated columns, left to right
    {"guidance": 0.0, "text_weight": VALIDATION_WEIGHT, "face_weight": 0.0},
    {"guidance": 0.0, "text_weight": 0.0, "face_weight": VALIDATION_WEIGHT},
    {"guidance": VALIDATION_WEIGHT, "text_weight": 0.0, "face_weight": 0.0},
)


@torch.no_grad()
def face0_validation_grid(model: Face0TrainingModel, batch: dict, vae: AutoencoderKL, steps: int,
                          seed: int) -> np.ndarray:
    """[N * S, 4 * S, 3] uint8 from N samples of a Face0Stream (on the model's device)."""
    latents = batch["latents"]
    empty = model.empty_text.expand_as(batch["text"])
    contexts = face0_contexts(empty, batch["text"], empty, model.projector(batch["embedding"]))
    columns = [decode(vae, latents.to(vae.dtype))]
    for weights in COLUMN_WEIGHTS:
        generated = sample_face0(model.unet, model.scheduler.config, contexts, tuple(latents.shape),
                                 Face0Sampling(steps=steps, seed=seed, **weights))
        columns.append(decode(vae, generated.to(vae.dtype)))
    return image_grid(columns)
