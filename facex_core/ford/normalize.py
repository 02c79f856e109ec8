"""Input normalisation constants of the networks FaceX runs, and a helper applying them."""

from __future__ import annotations

import torch

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


class Normalize:
    """(x - mean) / std for [B, 3, H, W] images in 0..1, computed on x's device and in its dtype."""

    def __init__(self, stats: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
        self.mean = torch.tensor(stats[0]).view(1, 3, 1, 1)
        self.std = torch.tensor(stats[1]).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)
