"""Sampling FaceX crops with a diffusers UNet and VAE (the `edit` command and training previews).

Classifier-free guidance runs the null context and f_SD as one batch. Masked fusion keeps
the target where the fusion mask is 0: after every step those latents are replaced by the
target's, noised to the same timestep, and the final latents take the target's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from .config import FAMILY_BY_CONTEXT
from .diffusers_binding import DiffusersFRC

# CLIP tokenizer ids: start and end of text. An empty prompt is start, end, then padding.
START_OF_TEXT, END_OF_TEXT, PROMPT_LENGTH = 49406, 49407, 77
# What a prompt is padded with, by family: SD1.x repeats the end token; SD2.x's OpenCLIP
# tokenizer pads with id 0 ("!"), as diffusers' SD2 tokenizer and ComfyUI's SD2 CLIP do.
PROMPT_PADDING = {"sd15": END_OF_TEXT, "sd2": 0}


@dataclass(frozen=True)
class SamplingSettings:
    steps: int = 30
    guidance: float = 3.0
    seed: int = 0


DEFAULT_SAMPLING = SamplingSettings()


def padded_prompt(tokens: list[int], family: str) -> list[int]:
    """A prompt's 77 token ids: start, its tokens (at most 75), end, then the family's padding."""
    ids = [START_OF_TEXT, *tokens[:PROMPT_LENGTH - 2], END_OF_TEXT]
    return ids + [PROMPT_PADDING[family]] * (PROMPT_LENGTH - len(ids))


def empty_prompt(text_encoder: torch.nn.Module) -> torch.Tensor:
    """The text encoder's embedding of "", [1, 77, width]: FaceX steers through the FRC, not text.
    The family follows from the encoder's width, which is the UNet's context width."""
    ids = torch.tensor([padded_prompt([], FAMILY_BY_CONTEXT[text_encoder.config.hidden_size])],
                       device=text_encoder.device)
    with torch.no_grad():
        return text_encoder(input_ids=ids).last_hidden_state


def encode(vae: AutoencoderKL, crops: torch.Tensor) -> torch.Tensor:
    """[N, S, S, 3] in 0..1 to scaled latents (the distribution's mean: deterministic)."""
    pixels = crops.permute(0, 3, 1, 2).to(vae.device, vae.dtype) * 2 - 1
    return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


def decode(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    pixels = vae.decode(latents / vae.config.scaling_factor).sample
    return ((pixels.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)


@torch.no_grad()
def sample_crops(
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    scheduler_config: dict,
    binding: DiffusersFRC,
    context: torch.Tensor,
    text: torch.Tensor,
    target: torch.Tensor,
    fusion: torch.Tensor,
    settings: SamplingSettings = DEFAULT_SAMPLING,
) -> torch.Tensor:
    """Generate crops [N, S, S, 3] for f_SD `context` [N, T, C], keeping `target` crops where
    the fusion mask [N, S, S] is 0."""
    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(settings.steps)
    batch = context.shape[0]
    target_latents = encode(vae, target)
    keep = 1 - F.interpolate(fusion[:, None].to(target_latents), size=target_latents.shape[2:], mode="area")
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    noise = torch.randn(target_latents.shape, generator=generator).to(target_latents)
    latents = noise * scheduler.init_noise_sigma
    binding.set_context(torch.cat([binding.facex.null(batch).to(context), context]))
    text = text.expand(2 * batch, -1, -1)
    timesteps = scheduler.timesteps
    for index, timestep in enumerate(timesteps):
        model_input = scheduler.scale_model_input(torch.cat([latents, latents]), timestep)
        unconditional, conditional = unet(model_input, timestep, encoder_hidden_states=text).sample.chunk(2)
        guided = unconditional + settings.guidance * (conditional - unconditional)
        latents = scheduler.step(guided, timestep, latents).prev_sample
        if index + 1 < len(timesteps):
            kept = scheduler.add_noise(target_latents, noise, timesteps[index + 1:index + 2])
        else:
            kept = target_latents
        latents = latents * (1 - keep) + kept * keep
    return decode(vae, latents)
