"""Sizes of the FaceX network, and the transformer-block layout of each SD family.

The FRC adds one layer per UNet transformer block, in a canonical order: the forward order
of the blocks (input/down blocks, middle, output/up blocks; inside a spatial transformer
by depth). That order is the same in diffusers and ComfyUI, so one weight file drives
both. A UNet fits a config when its blocks have exactly the config's widths and heads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..errors import UnknownNameError
from ..ford.regions import REGION_NAMES


@dataclass(frozen=True)
class BlockSpec:
    """One transformer block: hidden width and the attention's heads."""

    dim: int
    heads: int
    dim_head: int


@dataclass(frozen=True)
class FamilyLayout:
    """Where a UNet family has transformer blocks (from its architecture parameters)."""

    context_dim: int
    channels: tuple[int, ...]  # per resolution level
    depths: tuple[int, ...]  # transformer depth per level, 0 = no attention
    middle_depth: int
    res_blocks: int = 2
    heads: int | None = None  # fixed head count (SD1.5) ...
    dim_head: int | None = None  # ... or fixed head width (SD2, SDXL)

    def block(self, dim: int) -> BlockSpec:
        heads = self.heads or dim // self.dim_head
        return BlockSpec(dim, heads, dim // heads)

    def blocks(self) -> tuple[BlockSpec, ...]:
        levels = list(zip(self.channels, self.depths, strict=True))
        down = [self.block(dim) for dim, depth in levels for _ in range(self.res_blocks * depth)]
        middle = [self.block(self.channels[-1])] * self.middle_depth
        up = [self.block(dim) for dim, depth in reversed(levels) for _ in range((self.res_blocks + 1) * depth)]
        return tuple(down + middle + up)


FAMILIES = {
    "sd15": FamilyLayout(768, (320, 640, 1280, 1280), (1, 1, 1, 0), middle_depth=1, heads=8),
    "sd2": FamilyLayout(1024, (320, 640, 1280, 1280), (1, 1, 1, 0), middle_depth=1, dim_head=64),
    "sdxl": FamilyLayout(2048, (320, 640, 1280), (0, 2, 10), middle_depth=10, dim_head=64),
}
FAMILY_BY_CONTEXT = {layout.context_dim: name for name, layout in FAMILIES.items()}


def family_of(specs: tuple[BlockSpec, ...], context_dim: int) -> str:
    """The SD family a UNet's block layout matches, or a description of it for errors."""
    for name, layout in FAMILIES.items():
        if layout.context_dim == context_dim and layout.blocks() == specs:
            return name
    return f"a UNet with {len(specs)} transformer blocks and context width {context_dim}"


def layout_mismatch(config: FaceXConfig, specs: tuple[BlockSpec, ...], context_dim: int) -> str | None:
    """Why a FaceX config cannot patch a UNet with these blocks, or None when it fits."""
    if specs == config.blocks and context_dim == config.context_dim:
        return None
    return (f"This FaceX model was trained for {config.family} ({len(config.blocks)} transformer blocks, "
            f"context width {config.context_dim}), but the UNet is {family_of(specs, context_dim)}; "
            "use FaceX weights made for that base model.")


DEFAULT_RESOLUTION = {"sd15": 256, "sd2": 512, "sdxl": 768}
VECTOR_PARTS = (("expression", 64), ("pose", 6), ("gaze", 2), ("texture", 80), ("lighting", 27))


@dataclass(frozen=True)
class FaceXConfig:
    family: str
    context_dim: int
    resolution: int
    blocks: tuple[BlockSpec, ...]
    width: int = 768  # common token width of the adapters
    identity_tokens: int = 49
    identity_dim: int = 512
    regions: tuple[str, ...] = REGION_NAMES
    region_dim: int = 256  # FPN adapter width
    clip_dim: int = 1024
    clip_layers: tuple[int, ...] = (8, 16, 23)
    vector_parts: tuple[tuple[str, int], ...] = VECTOR_PARTS
    inpaint_patch: int = 16
    adapter_layers: int = 2
    adapter_heads: int = 8
    null: str = "learned"  # "learned" or "zero" null context for classifier-free guidance

    @classmethod
    def for_family(cls, family: str, resolution: int | None = None, **sizes) -> FaceXConfig:
        if family not in FAMILIES:
            raise UnknownNameError(f"unknown base-model family {family!r}; families are {', '.join(FAMILIES)}")
        layout = FAMILIES[family]
        return cls(family, layout.context_dim, resolution or DEFAULT_RESOLUTION[family], layout.blocks(), **sizes)

    def token_layout(self) -> tuple[tuple[str, int], ...]:
        """The context tokens f_SD, in order: representation parts, then the I_R tokens."""
        grid = self.resolution // self.inpaint_patch
        return (("identity", self.identity_tokens), ("regions", len(self.regions)),
                *((name, 1) for name, _ in self.vector_parts), ("inpaint", grid * grid))

    @property
    def representation_tokens(self) -> int:
        return sum(count for name, count in self.token_layout() if name != "inpaint")

    @property
    def context_tokens(self) -> int:
        return sum(count for _, count in self.token_layout())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaceXConfig:
        data = json.loads(text)
        data["blocks"] = tuple(BlockSpec(**block) for block in data["blocks"])
        data["regions"] = tuple(data["regions"])
        data["clip_layers"] = tuple(data["clip_layers"])
        data["vector_parts"] = tuple((name, size) for name, size in data["vector_parts"])
        return cls(**data)
