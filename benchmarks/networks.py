"""The random-weight networks the benchmarks time: full size, or tiny for a dry run.

Full size is what BENCHMARKS.md reports: the SD1.5 UNet (859.5M), CLIP ViT-L/14 and the
full FaceX network. `--tiny` swaps in the tests' small networks of the same architectures
(micro_sd15's one-level UNet, a 3-layer CLIP, a 32-wide FaceX) so that
`benchmarks/gpu_check.sh --dry-run` runs every benchmark end to end on a CPU in seconds;
its numbers say only that the scripts still work.
"""

from __future__ import annotations

import argparse

from diffusers import UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from facex_core.ford.region_features import default_clip_layers
from facex_core.model.config import FaceXConfig
from facex_core.model.diffusers_binding import block_specs
from facex_core.model.sd_checkpoint import build_unet
from facex_core.testing.checkpoints import TINY_CLIP_VISION, VIT_L14

TINY_BASE_CONFIG = "micro_sd15"
TINY_FACEX = {"width": 32, "region_dim": 16, "adapter_layers": 1, "adapter_heads": 2}


def add_tiny_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tiny", action="store_true",
                        help="tiny networks of the same architectures (a dry run: the numbers mean nothing)")


def clip_vision_config(tiny: bool) -> dict:
    return TINY_CLIP_VISION if tiny else VIT_L14


def clip_vision_model(tiny: bool) -> CLIPVisionModelWithProjection:
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_vision_config(tiny)))


def unet(tiny: bool) -> UNet2DConditionModel:
    return build_unet(TINY_BASE_CONFIG if tiny else "sd15")


def facex_config(unet: UNet2DConditionModel, tiny: bool, resolution: int | None = None) -> FaceXConfig:
    """The FaceX network for `unet`: the SD1.5 defaults, or tiny sizes reading the tiny CLIP."""
    if not tiny:
        return FaceXConfig.for_family("sd15", resolution=resolution)
    clip = clip_vision_config(tiny)
    return FaceXConfig("sd15", unet.config.cross_attention_dim, resolution or 256, block_specs(unet),
                       clip_dim=clip["hidden_size"], clip_layers=default_clip_layers(clip["num_hidden_layers"]),
                       **TINY_FACEX)
