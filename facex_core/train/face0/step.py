"""The maths of one Face0 training step: condition dropout, the face tokens in the prompt, the loss.

Each sample's caption encoding gets the projector's face tokens over its last positions
(face0/tokens.py), as the nodes and the face0 command give them at sampling time, and
the UNet (its LoRA, or all of it) learns to denoise the image's latents under it. The
guidance (face0/guidance.py) weighs four predictions, so training shows the model all
four conditions: per sample one uniform draw u (train/step.py's draw) decides

    u < both                              neither: the empty prompt, no face (unconditional)
    both <= u < both + face               the prompt without the face
    both + face <= u < both + face + text  the face with the empty prompt
    otherwise                             the prompt with the face
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from torch import nn

from ...face0.projector import Face0Projector
from ...face0.tokens import override_last_tokens
from ..step import PREDICTION_TARGETS, draw


@dataclass(frozen=True)
class ConditionDropout:
    face: float  # the face dropped, the prompt kept
    text: float  # the prompt dropped, the face kept
    both: float

    def split(self, chance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(face dropped, prompt dropped) [N] bool from each sample's uniform draw."""
        both = chance < self.both
        face_only = (chance >= self.both) & (chance < self.both + self.face)
        text_only = (chance >= self.both + self.face) & (chance < self.both + self.face + self.text)
        return both | face_only, both | text_only


class Face0TrainingModel(nn.Module):
    """What the engine wraps (DDP): the projector and the UNet, whose LoRA (or whole) trains.
    forward(batch) returns the batch's mean loss."""

    def __init__(self, projector: Face0Projector, unet: UNet2DConditionModel, empty_text: torch.Tensor,
                 scheduler_config: dict, seed: int, dropout: ConditionDropout) -> None:
        super().__init__()
        self.projector, self.unet, self.seed, self.dropout = projector, unet, seed, dropout
        self.scheduler = DDPMScheduler.from_config(scheduler_config)
        self.target = PREDICTION_TARGETS[self.scheduler.config.prediction_type]
        self.register_buffer("empty_text", empty_text, persistent=False)  # the encoding of "" [1, 77, C]

    def context(self, batch: dict, face_dropped: torch.Tensor, text_dropped: torch.Tensor) -> torch.Tensor:
        """The prompt encodings [N, 77, C] with the face tokens where the face is kept."""
        text = torch.where(text_dropped[:, None, None], self.empty_text, batch["text"])
        with_face = override_last_tokens(text, self.projector(batch["embedding"]))
        # where() keeps the projector in the graph of every batch (zero gradient where dropped), as DDP needs
        return torch.where(face_dropped[:, None, None], text, with_face)

    def forward(self, batch: dict) -> torch.Tensor:
        latents = batch["latents"]
        draws = draw(batch["sample"], self.seed, tuple(latents.shape[1:]), self.scheduler.config.num_train_timesteps,
                     dropout=0.0)
        face_dropped, text_dropped = (mask.to(latents.device) for mask in self.dropout.split(draws.chance))
        noise, timesteps = draws.noise.to(latents), draws.timesteps.to(latents.device)
        context = self.context(batch, face_dropped, text_dropped)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        dtype = self.unet.dtype
        prediction = self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=context.to(dtype)).sample
        return F.mse_loss(prediction.float(), self.target(self.scheduler, latents, noise, timesteps).float())
