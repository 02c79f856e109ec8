"""The maths of one training step: condition a batch of pairs, noise the target, the loss.

FaceX learns to denoise the target frame's latents given the context f_SD built from the
pair by the task's row: for the generalist, the head-swap assembly (the source's identity
and head regions, the target's motion and background, I_R a grayscale source head on the
target background). The UNet stays frozen; gradients reach the FRC layers through it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from ..ford.clip_vision import ClipVisionEncoder
from ..ford.identity import IdentityFeatures
from ..ford.motion import Motion3DMM
from ..ford.region_features import encode_regions, pool_grids
from ..ford.region_masks import region_masks
from ..fors.assemble import assemble
from ..fors.reference import FaceImages, compose_reference
from ..fors.representation import FaceMotion, FaceRepresentation
from ..fors.tasks import TaskRow
from ..model.diffusers_binding import DiffusersFRC
from ..model.facex import FaceXModel, drop_condition
from .clip_tokens import TOKENS_KEY, as_grids
from .dataset import sample_generator

# what the UNet learns to predict, by the checkpoint's prediction type
PREDICTION_TARGETS = {
    "epsilon": lambda scheduler, latents, noise, timesteps: noise,
    "v_prediction": lambda scheduler, latents, noise, timesteps: scheduler.get_velocity(latents, noise, timesteps),
}


@dataclass(frozen=True)
class Draws:
    """The random choices of a batch, each sample's from its own stream (dataset.sample_generator)."""

    noise: torch.Tensor  # like the latents
    timesteps: torch.Tensor  # [N] long
    chance: torch.Tensor  # [N] uniform in [0, 1): what condition dropout compares with its rate(s)
    dropped: torch.Tensor  # [N] bool: chance < dropout, the condition replaced by the null context


def draw(samples: torch.Tensor, seed: int, latent_shape: tuple[int, ...], train_timesteps: int,
         dropout: float) -> Draws:
    """Noise, timestep and dropout of each sample number: the same sample gets the same draws
    whichever process, micro-batch or resumed run computes it."""
    noises, timesteps, chances = [], [], []
    for sample in samples.tolist():
        generator = sample_generator(seed, sample, "diffusion")
        noises.append(torch.randn(latent_shape, generator=generator))
        timesteps.append(int(torch.randint(train_timesteps, (1,), generator=generator)))
        chances.append(float(torch.rand((), generator=generator)))
    chance = torch.tensor(chances, dtype=torch.float64)  # compared with the rates exactly as Python floats
    return Draws(torch.stack(noises), torch.tensor(timesteps), chance, chance < dropout)


def frame_representation(frame: dict[str, torch.Tensor], clip: ClipVisionEncoder, facex: FaceXModel,
                         masks: torch.Tensor) -> FaceRepresentation:
    """The representation of prepared frames: cached identity and motion, fresh region tokens
    (their FPN adapter, and CLIP when fine-tuned, are learning) from the stored CLIP grids
    when the data holds them."""
    motion = Motion3DMM(**{f.name: frame[f"3dmm_{f.name}"] for f in fields(Motion3DMM)})
    identity = IdentityFeatures(frame["identity_tokens"], frame["identity_embedding"])
    if TOKENS_KEY in frame:
        regions = pool_grids(facex.region_adapter, as_grids(frame[TOKENS_KEY]), masks)
    else:
        regions = encode_regions(clip, facex.region_adapter, frame["crops"], masks, facex.config.clip_layers)
    return FaceRepresentation.from_parts(identity, FaceMotion.from_extractors(motion, frame["gaze"]), regions)


class TrainingModel(nn.Module):
    """What the engine wraps (DDP): the trainable FaceX network, and CLIP when it is fine-tuned.
    forward(batch) returns the batch's mean loss. The frozen UNet is reached through the FRC
    binding and is no submodule, so the engine neither syncs nor saves it."""

    def __init__(self, facex: FaceXModel, clip: ClipVisionEncoder, binding: DiffusersFRC, text: torch.Tensor,
                 scheduler_config: dict, row: TaskRow, seed: int, dropout: float) -> None:
        super().__init__()
        self.facex = facex
        self.clip_model = clip.model  # a submodule so that, fine-tuned, its weights train and sync
        self.clip, self.binding, self.row, self.seed, self.dropout = clip, binding, row, seed, dropout
        self.scheduler = DDPMScheduler.from_config(scheduler_config)
        self.target = PREDICTION_TARGETS[self.scheduler.config.prediction_type]
        self.register_buffer("text", text, persistent=False)

    def condition(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """f_SD [N, T, C], I_R [N, S, S, 3] and the fusion mask [N, S, S] of a batch of pairs."""
        faces, reps = {}, {}
        for name in self.row.inputs():
            frame = batch[name]
            masks = region_masks(frame["parsing"])
            faces[name] = FaceImages(frame["crops"], masks)
            reps[name] = frame_representation(frame, self.clip, self.facex, masks)
        reference, fusion = compose_reference(self.row, **faces)
        return self.facex.context(assemble(self.row, **reps), reference), reference, fusion

    def forward(self, batch: dict) -> torch.Tensor:
        latents = batch["target"]["latents"]
        draws = draw(batch["sample"], self.seed, tuple(latents.shape[1:]), self.scheduler.config.num_train_timesteps,
                     self.dropout)
        noise, timesteps = draws.noise.to(latents), draws.timesteps.to(latents.device)
        context, _, _ = self.condition(batch)
        context = drop_condition(context, self.facex.null(len(context)), draws.dropped)
        self.binding.set_context(context, cache=False)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        unet = self.binding.unet
        prediction = unet(noisy.to(unet.dtype), timesteps,
                          encoder_hidden_states=self.text.expand(len(context), -1, -1)).sample
        return F.mse_loss(prediction.float(), self.target(self.scheduler, latents, noise, timesteps).float())
