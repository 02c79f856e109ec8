"""Face0 training samples read from prepared shards: one image's latents, face embedding and caption encoding.

As for FaceX (train/dataset.py), training draws an endless stream of samples numbered 0,
1, 2, ...: sample k is image perm_e[k mod n] of epoch e = k div n, so a resumed run and a
run split over any number of processes read exactly the same samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from ...errors import FaceXError
from ..dataset import EpochOrder
from ..prepare import shard_metadata
from .prepare import SHARD_KIND, SHARD_SUFFIX

SAMPLE_KEYS = ("latents", "embedding", "text")
# what every shard of one prepared folder must share, or the samples do not belong together
SHARED = ("resolution", "identity_encoder", "checkpoint", "base_config")


@dataclass(frozen=True)
class Face0Shard:
    path: Path
    images: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class Face0Data:
    """The shards of a prepared folder and what they were prepared with."""

    shards: list[Face0Shard]
    resolution: int
    identity_encoder: str
    checkpoint: str  # the file name whose VAE and text encoder made the latents and encodings
    base_config: str

    def empty_text(self) -> torch.Tensor:
        """The text encoder's encoding of the empty prompt [1, 77, C] (float32), stored with every shard."""
        with safe_open(str(self.shards[0].path), "pt") as handle:
            return handle.get_tensor("empty_text").float()


def read_face0_shards(prepared: str | Path) -> Face0Data:
    """Every shard of a prepare-face0 folder (headers only), checked to be prepared alike."""
    folder = Path(prepared, "shards")
    shards = []
    for path in sorted(folder.glob(f"*{SHARD_SUFFIX}")):
        metadata = shard_metadata(path, SHARD_KIND)
        shards.append(Face0Shard(path, int(metadata["images"]), metadata))
    if not shards:
        raise FaceXError(f"No Face0 shards in {folder}; run python -m facex_core.train prepare-face0 first.")
    settings = {key: sorted({shard.metadata[key] for shard in shards}) for key in SHARED}
    mixed = {key: values for key, values in settings.items() if len(values) > 1}
    if mixed:
        raise FaceXError(f"The shards in {folder} were prepared in different ways ({json.dumps(mixed)}); prepare one "
                         "way per folder.")
    first = shards[0].metadata
    return Face0Data(shards, int(first["resolution"]), first["identity_encoder"], first["checkpoint"],
                     first["base_config"])


class Face0Stream(Dataset):
    """Sample k -> {"sample": k, "latents": [4, S/8, S/8], "embedding": [512], "text": [77, C]} in float32."""

    def __init__(self, data: Face0Data, seed: int = 0) -> None:
        self.data, self.seed = data, seed
        self.starts = torch.tensor([0] + [shard.images for shard in data.shards]).cumsum(0)
        self._order = EpochOrder(seed, self.images)
        self._handles: dict[Path, object] = {}

    @property
    def images(self) -> int:
        """Samples per epoch: one per image (the stream itself never ends)."""
        return int(self.starts[-1])

    def __getitem__(self, sample: int) -> dict:
        image = self._order.item(sample)
        shard = int(torch.searchsorted(self.starts, image, right=True)) - 1
        path = self.data.shards[shard].path
        if path not in self._handles:  # opened lazily: each DataLoader worker opens its own
            self._handles[path] = safe_open(str(path), "pt")
        index = image - int(self.starts[shard])
        handle = self._handles[path]
        return {"sample": sample} | {key: handle.get_slice(key)[index].float() for key in SAMPLE_KEYS}

    def __getstate__(self) -> dict:
        """Open files stay behind when DataLoader workers are spawned: each opens its own."""
        return self.__dict__ | {"_handles": {}}
