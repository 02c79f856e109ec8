"""CLIP vision tokens computed once in `prepare`, so a training step with frozen CLIP skips the ViT.

With CLIP frozen, the patch grids the region encoder reads (`FaceXConfig.clip_layers` of
the tower) depend only on the crop, so `prepare --clip-tokens` stores them in the shard as
one tensor per frame, [layers, C, g, g] in float16, computed from the stored (uint8) crop
exactly as training would. The trainer then feeds them to the FPN adapter directly. The
cost is disk: for ViT-L/14 at 224, 3 layers x 256 patches x 1024 channels x 2 bytes =
1.5 MiB per frame (`bytes_per_frame`), about 5 times a 256-px frame's other tensors.

Tokens are only valid for the CLIP they came from and the layers they hold, so a run whose
config fine-tunes CLIP, starts from a file with its own fine-tuned CLIP, names another
clip_vision file or reads other layers is refused, naming what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, FaceXError

TOKENS_KEY = "clip_tokens"  # the shard tensor, [frames, layers, C, g, g]
TOKENS_DTYPE = torch.float16
LAYERS_METADATA, FILE_METADATA = "clip_layers", "clip_vision"


@dataclass(frozen=True)
class StoredTokens:
    """Which CLIP file and layers a prepared folder's tokens come from."""

    clip_vision: str  # file name
    layers: tuple[int, ...]

    def metadata(self) -> dict[str, str]:
        return {FILE_METADATA: self.clip_vision, LAYERS_METADATA: ",".join(map(str, self.layers))}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> StoredTokens | None:
        """The tokens a shard's header announces, or None for a shard without them."""
        if LAYERS_METADATA not in metadata:
            return None
        return cls(metadata[FILE_METADATA], tuple(int(layer) for layer in metadata[LAYERS_METADATA].split(",")))


def bytes_per_frame(width: int, grid: int, layers: int, dtype: torch.dtype = TOKENS_DTYPE) -> int:
    """Shard bytes the tokens add per frame: layers x patches x channels x bytes per value."""
    return layers * grid * grid * width * dtype.itemsize


def as_grids(tokens: torch.Tensor) -> list[torch.Tensor]:
    """[N, layers, C, g, g] stored tokens -> the per-layer [N, C, g, g] grids the FPN adapter takes."""
    return list(tokens.unbind(1))


def check_run(stored: StoredTokens | None, prepared: str, finetune_clip: bool, clip_vision: str) -> None:
    """Before any model loads: a run on precomputed tokens keeps CLIP frozen and is the same file."""
    if stored is None:
        return
    if finetune_clip:
        raise ConfigError(f"{prepared} holds precomputed CLIP tokens (prepare --clip-tokens), but the config "
                          "fine-tunes CLIP (finetune_clip true), which changes them at every step. Set finetune_clip "
                          "false, or prepare the data again without --clip-tokens.")
    if Path(clip_vision).name != stored.clip_vision:
        raise ConfigError(f"{prepared} holds CLIP tokens of {stored.clip_vision}, but the config's clip_vision is "
                          f"{Path(clip_vision).name}. Use {stored.clip_vision}, or prepare the data again with "
                          f"{Path(clip_vision).name}.")


def check_network(stored: StoredTokens | None, prepared: str, clip_layers: tuple[int, ...], embedded_clip: bool,
                  init_from: str | None) -> None:
    """Once the FaceX network is built: it reads the stored layers of the stored CLIP."""
    if stored is None:
        return
    if embedded_clip:
        raise FaceXError(f"init_from {init_from} carries its own fine-tuned CLIP, but {prepared} holds tokens of "
                         f"{stored.clip_vision}. Prepare the data again without --clip-tokens for this stage.")
    if tuple(clip_layers) != stored.layers:
        raise FaceXError(f"The FaceX network reads CLIP layers {tuple(clip_layers)}, but {prepared} holds tokens of "
                         f"layers {stored.layers}. Prepare the data again, or set model.clip_layers to "
                         f"{list(stored.layers)}.")
