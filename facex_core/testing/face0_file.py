"""A random-weight Face0 file for a diffusers UNet: the projector and a LoRA on every
attention projection, in the layout the Face0 exporter writes (tests, tier 2)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..face0.projector import Face0Config, Face0Projector
from ..face0.weights import peft_to_kohya, save_face0

ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


def attention_projections(unet: nn.Module) -> list[tuple[str, nn.Linear]]:
    """Every attention projection of a diffusers UNet's transformer blocks, by module path."""
    return [(name, module) for name, module in unet.named_modules()
            if isinstance(module, nn.Linear) and name.endswith(ATTENTION_PROJECTIONS) and ".attn" in name]


def write_face0_file(path: str | Path, unet: nn.Module, config: Face0Config, seed: int = 0,
                     scale: float = 0.05) -> Path:
    """A Face0 file whose projector and LoRA (rank config.lora_rank) are random: the LoRA's
    up matrices are not zero, so applying the file visibly changes the UNet."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    projector = Face0Projector(config)
    state = {}
    for name, module in attention_projections(unet):
        state[f"{name}.lora_A.weight"] = torch.randn(config.lora_rank, module.in_features, generator=generator) * scale
        state[f"{name}.lora_B.weight"] = torch.randn(module.out_features, config.lora_rank, generator=generator) * scale
    return save_face0(path, projector, config, peft_to_kohya(state, config.lora_alpha))
