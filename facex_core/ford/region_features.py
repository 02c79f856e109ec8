"""Region tokens: CLIP patch grids -> FPN adapter -> one pooled token per FaceX region.

ViT patch grids are coarse (16 x 16 for ViT-L/14 at 224), too coarse for eyes or lips. The
FPN adapter takes grids from several depths and rebuilds a finer map: the deepest grid is
kept at 1x, the middle one lifted to 2x and the earliest to 4x by transposed convolutions,
merged top-down. Mask pooling then averages that map inside each region mask. A region
with no pixels gets a zero token and present=False, so the model can tell "absent" from
"present but dark".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import weights_place

if TYPE_CHECKING:
    from .clip_vision import ClipVisionEncoder

# A region needs this fraction of the crop to count as present (a few pixels at 256).
MIN_REGION_FRACTION = 1e-4


def default_clip_layers(depth: int, levels: int = 3) -> tuple[int, ...]:
    """hidden_states indices spread over the tower, earliest first, ending at the penultimate
    layer (for ViT-L/14's 24 layers: 8, 16, 23)."""
    return tuple(max(1, round(depth * (i + 1) / levels)) for i in range(levels - 1)) + (depth - 1,)


@dataclass(frozen=True)
class FPNConfig:
    in_channels: int = 1024
    width: int = 256
    levels: int = 3


def _lift(width: int, times: int) -> nn.Sequential:
    """`times` doublings of resolution, each a stride-2 transposed convolution."""
    layers: list[nn.Module] = []
    for step in range(times):
        layers.append(nn.ConvTranspose2d(width, width, kernel_size=2, stride=2))
        if step < times - 1:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class FPNAdapter(nn.Module):
    """Grids of `levels` layers (earliest first), all [B, C, g, g], to one [B, width, g * 2^(levels-1)] map."""

    def __init__(self, config: FPNConfig = FPNConfig()) -> None:
        super().__init__()
        self.config = config
        self.lateral = nn.ModuleList(nn.Conv2d(config.in_channels, config.width, 1) for _ in range(config.levels))
        self.lift = nn.ModuleList(_lift(config.width, config.levels - 1 - i) for i in range(config.levels))
        self.smooth = nn.Conv2d(config.width, config.width, 3, padding=1)

    def forward(self, grids: list[torch.Tensor]) -> torch.Tensor:
        if len(grids) != self.config.levels:
            raise ValueError(f"the FPN adapter takes {self.config.levels} grids, got {len(grids)}")
        merged = None
        for level in reversed(range(self.config.levels)):
            feature = self.lift[level](self.lateral[level](grids[level]))
            if merged is not None:
                merged = F.interpolate(merged, size=feature.shape[2:], mode="nearest")
                feature = feature + merged
            merged = feature
        return self.smooth(merged)


@dataclass(frozen=True)
class RegionTokens:
    tokens: torch.Tensor  # [N, R, D]
    present: torch.Tensor  # [N, R] bool


def mask_pool(features: torch.Tensor, masks: torch.Tensor) -> RegionTokens:
    """Average [N, D, h, w] features inside each of [N, R, H, W] masks (0..1) -> [N, R, D].

    Masks are area-resized to the feature map. Regions covering less than
    MIN_REGION_FRACTION of the crop are absent: zero token, present False.
    """
    present = masks.flatten(2).mean(-1) >= MIN_REGION_FRACTION
    weights = F.adaptive_avg_pool2d(masks.to(features.dtype), features.shape[2:])
    # an absent region divides by 1: 0/0 there (fp16 has no room for a tiny clamp) would make its gradient NaN
    totals = torch.where(present, weights.flatten(2).sum(-1), 1)
    pooled = torch.einsum("nrhw,ndhw->nrd", weights, features) / totals[..., None]
    tokens = torch.where(present[..., None], pooled, torch.zeros_like(pooled))
    return RegionTokens(tokens=tokens, present=present)


def encode_regions(
    clip: ClipVisionEncoder,
    adapter: FPNAdapter,
    crops: torch.Tensor,
    masks: torch.Tensor,
    layers: tuple[int, ...] | None = None,
) -> RegionTokens:
    """Region tokens of [N, S, S, 3] crops for [N, R, S, S] region masks, computed where the
    adapter's weights are (the CLIP grids are moved there, and cast to their dtype)."""
    layers = layers or default_clip_layers(clip.depth, adapter.config.levels)
    return pool_grids(adapter, clip.patch_grids(crops, layers), masks)


def pool_grids(adapter: FPNAdapter, grids: list[torch.Tensor], masks: torch.Tensor) -> RegionTokens:
    """Region tokens from CLIP grids already at hand (computed now, or stored when CLIP is frozen)."""
    device, dtype = weights_place(adapter)
    return mask_pool(adapter([grid.to(device, dtype) for grid in grids]), masks.to(device))


@dataclass(frozen=True)
class FaceRegions:
    """Parsing labels [N, S, S], FaceX region masks [N, R, S, S] and pooled tokens of the same faces."""

    labels: torch.Tensor
    masks: torch.Tensor
    tokens: RegionTokens
