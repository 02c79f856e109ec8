"""The Face0 projector: a face embedding becomes a few token embeddings of the text encoder.

A 4-layer MLP maps the identity encoder's L2-normalised embedding to `tokens` vectors of
the text encoder's output width; tokens.py writes them over the last positions of the
prompt's encoding. Face0Config holds what a Face0 file was made with; weights.py stores it
as the file's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..model.config import FAMILIES

# The identity encoders a Face0 file may be trained with (encoders.py builds them).
ARCFACE = "arcface"
VGGFACE2 = "inception_resnet_v1_vggface2"
IDENTITY_ENCODER_NAMES = (ARCFACE, VGGFACE2)

# Scale of the last layer's random initial weights: see Face0Projector.
_OUTPUT_INIT_SCALE = 0.01


@dataclass(frozen=True)
class Face0Config:
    """What a Face0 model is: projector sizes, base model, identity encoder and UNet part."""

    embedding_dim: int = 512  # identity embedding width (both encoders give 512)
    context_dim: int = 768  # text encoder output width: 768 for SD1.5, 1024 for SD2
    tokens: int = 3  # prompt positions the face overwrites (the paper's 3)
    hidden: int = 1024  # width of the MLP's hidden layers
    identity_encoder: str = ARCFACE
    base_family: str = "sd15"
    resolution: int = 512  # training image size
    lora_rank: int = 64
    lora_alpha: float = 64.0  # ComfyUI scales a LoRA by alpha / rank, as peft does
    full_unet: bool = False  # True: the UNet was fine-tuned whole and ships as weight differences

    def __post_init__(self) -> None:
        if self.base_family not in FAMILIES:
            raise ConfigError(f"base_family {self.base_family!r} is not one of {', '.join(FAMILIES)}.")
        family_width = FAMILIES[self.base_family].context_dim
        if self.context_dim != family_width:
            raise ConfigError(f"context_dim {self.context_dim} does not fit base_family {self.base_family!r}, "
                              f"whose text encoder is {family_width} wide; set context_dim {family_width}.")
        if self.identity_encoder not in IDENTITY_ENCODER_NAMES:
            raise ConfigError(f"identity_encoder {self.identity_encoder!r} is not one of "
                              f"{', '.join(IDENTITY_ENCODER_NAMES)}.")
        for name in ("embedding_dim", "tokens", "hidden", "resolution", "lora_rank"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, not {getattr(self, name)}.")
        if self.lora_alpha <= 0:
            raise ConfigError(f"lora_alpha must be positive, not {self.lora_alpha}.")

    @property
    def unet(self) -> str:
        """How the file holds the UNet part: "lora" or "full" (weight differences)."""
        return "full" if self.full_unet else "lora"


class Face0Projector(nn.Module):
    """[B, embedding_dim] identity embeddings -> [B, tokens, context_dim] token embeddings.

    Four linear layers with GELU between them. The input is L2-normalised here, so an
    average of several embeddings of one person (several photos) lands on the same sphere
    as a single one. The last layer starts with weights 100 times smaller than PyTorch's
    default and a zero bias: the first face tokens are then near zero instead of random
    vectors as large as real token embeddings, so the fine-tuning starts close to the
    text-only model, while the gradients still reach every earlier layer (an exactly zero
    last layer would hold them at zero until it moved).
    """

    def __init__(self, config: Face0Config) -> None:
        super().__init__()
        self.config = config
        widths = (config.embedding_dim, config.hidden, config.hidden, config.hidden)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(c_in, c_out), nn.GELU()]
        output = nn.Linear(config.hidden, config.tokens * config.context_dim)
        with torch.no_grad():
            output.weight.mul_(_OUTPUT_INIT_SCALE)
            output.bias.zero_()
        self.mlp = nn.Sequential(*layers, output)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        if embedding.ndim != 2 or embedding.shape[1] != self.config.embedding_dim:
            raise ValueError(f"the face embedding must be [batch, {self.config.embedding_dim}], "
                             f"not {list(embedding.shape)}")
        tokens = self.mlp(F.normalize(embedding.to(self.mlp[0].weight.dtype), dim=-1))
        return tokens.reshape(embedding.shape[0], self.config.tokens, self.config.context_dim)
