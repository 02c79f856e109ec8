"""Training pairs read from prepared shards: a target frame and a source frame of the same clip.

Training draws an endless stream of samples numbered 0, 1, 2, ...: sample k is frame
perm_e[k mod n] of epoch e = k div n (a fresh permutation of all n frames per epoch), paired
with another frame of its clip. Everything about sample k follows from (seed, k), so a
resumed run and a run split over any number of processes read exactly the same samples:
process r of w takes its slice of each global batch (`GlobalBatches`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch.utils.data import Dataset, Sampler

from ..errors import ConfigError, FaceXError
from .clip_tokens import TOKENS_KEY, StoredTokens
from .prepare import SHARD_SUFFIX, shard_metadata

# the shard tensors a frame contributes to a sample (frame_index, kps, matrices stay behind)
FRAME_KEYS = ("crops", "parsing", "identity_tokens", "identity_embedding", "gaze", "latents",
              "3dmm_identity", "3dmm_expression", "3dmm_texture", "3dmm_angles", "3dmm_lighting", "3dmm_translation")


@dataclass(frozen=True)
class ShardInfo:
    """What a shard's header says: read once per run, before any tensor."""

    path: Path
    clip: str
    frames: int
    resolution: int
    extractors: dict[str, str]  # role -> file name the data was prepared with
    clip_tokens: StoredTokens | None = None  # precomputed CLIP grids, when prepared with --clip-tokens


def read_shards(prepared: str | Path) -> list[ShardInfo]:
    """Every shard of a prepared-data folder, by clip name."""
    shards = []
    for path in sorted(Path(prepared, "shards").glob(f"*{SHARD_SUFFIX}")):
        metadata = shard_metadata(path)
        shards.append(ShardInfo(path, metadata["clip"], int(metadata["frames"]), int(metadata["resolution"]),
                                json.loads(metadata["extractors"]), StoredTokens.from_metadata(metadata)))
    if not shards:
        raise FaceXError(f"No prepared shards in {Path(prepared, 'shards')}; run python -m facex_core.train prepare "
                         f"first.")
    return shards


def split_clips(shards: list[ShardInfo], held_out: int) -> tuple[list[ShardInfo], list[ShardInfo]]:
    """(training, validation) shards: the last `held_out` clips by name are held out."""
    if held_out and held_out >= len(shards):
        raise FaceXError(f"{shards[0].path.parent} holds {len(shards)} clip(s); holding out {held_out} for validation "
                         "leaves none to train on. Lower validation_clips or prepare more clips.")
    return shards[:len(shards) - held_out], shards[len(shards) - held_out:]


STREAMS = ("pairing", "diffusion")  # the independent random draws of one sample


def sample_generator(seed: int, sample: int, stream: str) -> torch.Generator:
    """A random stream of one sample: which source frame it pairs with ("pairing"), or its
    noise, timestep and condition dropout ("diffusion")."""
    return torch.Generator().manual_seed((seed * 1_000_003 + sample) * len(STREAMS) + STREAMS.index(stream))


class EpochOrder:
    """The permutation of all n items in epoch e, drawn from (seed + e) once per epoch, not per sample."""

    def __init__(self, seed: int, count: int) -> None:
        self.seed, self.count = seed, count
        self._current: tuple[int, torch.Tensor | None] = (-1, None)

    def item(self, sample: int) -> int:
        """Which item sample k reads: perm_e[k mod n] of epoch e = k div n."""
        epoch, position = divmod(sample, self.count)
        if self._current[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._current = (epoch, torch.randperm(self.count, generator=generator))
        return int(self._current[1][position])


class PairStream(Dataset):
    """Sample k -> {"sample": k, "source": frame tensors, "target": frame tensors}."""

    def __init__(self, shards: list[ShardInfo], seed: int = 0) -> None:
        resolutions = {info.resolution for info in shards}
        if len(resolutions) != 1:
            raise FaceXError(f"A pair stream needs shards of one crop size; these have "
                             f"{sorted(resolutions) or 'none'}. "
                             "Prepare one size per folder.")
        tokens = {info.clip_tokens for info in shards}
        if len(tokens) != 1:
            raise FaceXError(f"A pair stream needs shards prepared alike; some hold CLIP tokens of other files or "
                             f"layers than others ({sorted(map(str, tokens))}). Prepare one way per folder.")
        self.shards, self.seed, self.resolution = shards, seed, resolutions.pop()
        self.clip_tokens = tokens.pop()
        self.keys = FRAME_KEYS + ((TOKENS_KEY,) if self.clip_tokens else ())
        self.starts = torch.tensor([0] + [info.frames for info in self.shards]).cumsum(0)
        self._handles: dict[Path, object] = {}
        self._order = EpochOrder(seed, self.frames)

    @property
    def frames(self) -> int:
        """Samples per epoch: one per frame (the stream itself never ends)."""
        return int(self.starts[-1])

    def pair(self, sample: int) -> tuple[int, int, int]:
        """(shard, target frame, source frame) of sample k."""
        target = self._order.item(sample)
        shard = int(torch.searchsorted(self.starts, target, right=True)) - 1
        frames, first = self.shards[shard].frames, int(self.starts[shard])
        pairing = sample_generator(self.seed, sample, "pairing")
        offset = int(torch.randint(frames - 1, (1,), generator=pairing)) if frames > 1 else 0
        source = (target - first + 1 + offset) % frames  # any frame but the target, when there is another
        return shard, target - first, source

    def __getitem__(self, sample: int) -> dict:
        shard, target, source = self.pair(sample)
        return {"sample": sample, "source": self._frame(shard, source), "target": self._frame(shard, target)}

    def __getstate__(self) -> dict:
        """Open files stay behind when DataLoader workers are spawned: each opens its own."""
        return self.__dict__ | {"_handles": {}}

    def _frame(self, shard: int, index: int) -> dict[str, torch.Tensor]:
        path = self.shards[shard].path
        if path not in self._handles:  # opened lazily: each DataLoader worker opens its own
            self._handles[path] = safe_open(str(path), "pt")
        handle = self._handles[path]
        frame = {key: handle.get_slice(key)[index] for key in self.keys}
        frame["crops"] = frame["crops"].float() / 255
        frame["parsing"] = frame["parsing"].long()
        return {key: value.float() if value.is_floating_point() else value for key, value in frame.items()}


def to_device(batch: dict, device: torch.device) -> dict:
    """A collated batch (nested dicts of tensors) on `device`."""
    return {key: to_device(value, device) if isinstance(value, dict) else value.to(device)
            for key, value in batch.items()}


class GlobalBatches(Sampler[list[int]]):
    """The sample numbers process `rank` of `world` reads, micro-batch by micro-batch, from
    optimizer step `start` on: each global batch of `batch` samples is split into
    `accumulation` micro-steps, each micro-step's samples across the processes."""

    def __init__(self, batch: int, world: int, rank: int, accumulation: int, start: int = 0,
                 steps: int | None = None) -> None:
        micro = batch // (world * accumulation)
        if micro * world * accumulation != batch:
            raise ConfigError(f"a batch of {batch} does not split into {world} process(es) x {accumulation} "
                             "accumulation step(s); choose sizes that divide it")
        self.batch, self.world, self.rank, self.accumulation, self.micro = batch, world, rank, accumulation, micro
        self.start, self.steps = start, steps

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while self.steps is None or step < self.steps:
            for micro_step in range(self.accumulation):
                first = step * self.batch + (micro_step * self.world + self.rank) * self.micro
                yield list(range(first, first + self.micro))
            step += 1

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless batch stream has no length")
        return (self.steps - self.start) * self.accumulation
