"""The adapters between the omni-representation and the UNet.

- RepresentationAdapter (phi_R): one linear map per representation part into a common
  width, plus a learned embedding per token position so the network knows which token is
  which, and a learned token for each region that is absent from a face.
- InpaintEncoder (phi_Inp): I_R to one token per 16 x 16 patch.
- SDAdapter (phi_SD): a small transformer over the concatenated tokens, then a projection
  to the UNet's cross-attention width: the context f_SD the FRC attends to.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ImageInputError
from ..fors.representation import FaceRepresentation
from .config import FaceXConfig


def _embedding(count: int, width: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(count, width) * 0.02)


class RepresentationAdapter(nn.Module):
    def __init__(self, config: FaceXConfig) -> None:
        super().__init__()
        width = config.width
        self.identity = nn.Linear(config.identity_dim, width)
        self.regions = nn.Linear(config.region_dim, width)
        self.absent = _embedding(len(config.regions), width)
        self.vectors = nn.ModuleDict({name: nn.Linear(size, width) for name, size in config.vector_parts})
        self.position = _embedding(config.representation_tokens, width)

    def forward(self, rep: FaceRepresentation) -> torch.Tensor:
        """[N, representation_tokens, width] in the config's token layout."""
        regions = torch.where(rep.present[..., None], self.regions(rep.regions), self.absent)
        vectors = [layer(getattr(rep, name))[:, None] for name, layer in self.vectors.items()]
        tokens = torch.cat([self.identity(rep.identity), regions, *vectors], 1)
        return tokens + self.position


class InpaintEncoder(nn.Module):
    def __init__(self, config: FaceXConfig) -> None:
        super().__init__()
        grid = config.resolution // config.inpaint_patch
        self.resolution = config.resolution
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.GELU())
        self.patches = nn.Conv2d(64, config.width, config.inpaint_patch, stride=config.inpaint_patch)
        self.position = _embedding(grid * grid, config.width)
        self.norm = nn.LayerNorm(config.width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[N, S, S, 3] I_R in 0..1 (S = the config's resolution) to [N, (S / patch)^2, width]."""
        if images.shape[1:3] != (self.resolution, self.resolution):
            raise ImageInputError(f"I_R is {images.shape[2]}x{images.shape[1]}; this FaceX model works at "
                                  f"{self.resolution}: align the faces at crop size {self.resolution}.")
        x = self.patches(self.stem(images.permute(0, 3, 1, 2) * 2 - 1))
        return self.norm(x.flatten(2).transpose(1, 2) + self.position)


class SDAdapter(nn.Module):
    def __init__(self, config: FaceXConfig) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            config.width, config.adapter_heads, 4 * config.width, dropout=0.0,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.adapter_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.project = nn.Linear(config.width, config.context_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.project(self.norm(self.encoder(tokens)))
