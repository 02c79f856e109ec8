"""Data preparation: clips -> one shard per clip of aligned crops, FORD outputs and latents.

Everything training reads that does not change while FaceX learns is computed once here:
the aligned crop, the parsing labels, the identity map, the 3DMM and gaze coefficients,
and the VAE latents of the crop. (Region tokens depend on the trainable FPN adapter and,
when it is fine-tuned, on CLIP, so training computes them; with CLIP frozen, the CLIP
grids they start from can be stored too: `clip_tokens`, see train/clip_tokens.py.)

Shards are written atomically (model.weights.save_atomically), so a killed run leaves no half shard,
and a run started again skips every clip already done: preparation resumes. Processes split
the clip list by rank (RANK / WORLD_SIZE as torchrun sets them, or --rank / --world-size),
each on its own GPU (LOCAL_RANK). Frames that cannot be decoded or hold no usable face are
skipped and logged, one JSON line per event, in log/rank<r>.jsonl.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

from ..errors import FaceXError, UsageError
from ..faces.crops import align_faces
from ..faces.detect import FaceDetector, choose_faces
from ..ford.clip_vision import ClipVisionEncoder
from ..ford.extractors import FordExtractors, ford_tensors
from ..ford.region_features import default_clip_layers
from ..frames import BadFrame, Frame, read_frames
from ..model.sampling import encode
from ..model.sd_checkpoint import load_vae
from ..model.weights import save_atomically
from ..models.locate import ModelRoots, locate_roles
from ..models.manifest import CLIP_VISION, EXTRACTOR_ROLES
from . import clip_tokens
from .clips import Clip, find_clips

SHARD_FORMAT = "facex-shard"
SHARD_VERSION = "1"
SHARD_SUFFIX = ".safetensors"
SKIPPED_SUFFIX = ".skipped.json"
# stored compactly: the rest stays float32 (3DMM and gaze values are small vectors)
STORED_DTYPES = {"crops": torch.uint8, "parsing": torch.uint8, "identity_tokens": torch.float16,
                 "latents": torch.float16, clip_tokens.TOKENS_KEY: clip_tokens.TOKENS_DTYPE}


@dataclass(frozen=True)
class PrepareSettings:
    resolution: int = 256
    every: int = 1  # keep every n-th frame
    max_frames: int | None = None  # per clip
    min_face: float = 64.0  # smallest face side in pixels
    batch: int = 16  # frames per extractor pass
    clip_tokens: bool = False  # store the frozen CLIP's grids the region encoder reads (train/clip_tokens.py)


@dataclass(frozen=True)
class Slot:
    """Which share of the clips this process prepares, and on which device."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @classmethod
    def from_environment(cls, rank: int | None = None, world: int | None = None, device: str | None = None) -> Slot:
        rank = int(os.environ.get("RANK", 0)) if rank is None else rank
        world = int(os.environ.get("WORLD_SIZE", 1)) if world is None else world
        if not 0 <= rank < world:
            raise UsageError(f"--rank {rank} is outside 0..{world - 1} (--world-size {world}); torchrun sets both "
                             f"itself")
        if device is None:
            device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"
        return cls(rank, world, device)


class Preparer:
    """The detector, the FORD extractors and the VAE, loaded once per process."""

    def __init__(self, checkpoint: Path, roots: ModelRoots, base_config: str, settings: PrepareSettings,
                 device: str = "cpu") -> None:
        files = locate_roles(("detection",) + EXTRACTOR_ROLES + ((CLIP_VISION,) if settings.clip_tokens else ()), roots)
        self.settings, self.device = settings, torch.device(device)
        self.detector = FaceDetector(files["detection"], self.device)
        self.extractors = FordExtractors.from_files(files, self.device)
        self.vae = load_vae(checkpoint, base_config, self.device).eval()
        self.metadata = {
            "format": SHARD_FORMAT, "version": SHARD_VERSION, "resolution": str(settings.resolution),
            "extractors": json.dumps({role: files[role].name for role in EXTRACTOR_ROLES}, sort_keys=True),
            "vae": Path(checkpoint).name, "base_config": base_config,
        }
        self.clip = None
        if settings.clip_tokens:
            self.clip = ClipVisionEncoder.from_path(files[CLIP_VISION], self.device)
            self.stored_tokens = clip_tokens.StoredTokens(files[CLIP_VISION].name, default_clip_layers(self.clip.depth))
            self.metadata |= self.stored_tokens.metadata()

    def prepare_clip(self, clip: Clip, log: EventLog) -> dict[str, torch.Tensor] | None:
        """The clip's shard tensors, or None when no frame had a usable face."""
        parts = [self._frames(chunk) for chunk in chunks(self._usable(clip, log), self.settings.batch)]
        if not parts:
            return None
        return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}

    def _usable(self, clip: Clip, log: EventLog) -> Iterator[tuple[Frame, list]]:
        """Decodable frames with their chosen face; every other frame is logged."""
        settings = self.settings
        for frame in read_frames(clip.path, settings.every, settings.max_frames):
            if isinstance(frame, BadFrame):
                log.write("bad_frame", clip.name, frame=frame.index, reason=frame.reason)
                continue
            try:
                face = choose_faces(self.detector.detect(frame.pixels, frame.index), "largest", 0, settings.min_face,
                                    frame.index)
            except FaceXError as error:
                log.write("no_face", clip.name, frame=frame.index, reason=str(error))
                continue
            yield frame, face

    @torch.no_grad()
    def _frames(self, chunk: list[tuple[Frame, list]]) -> dict[str, torch.Tensor]:
        """Crops, FORD outputs and latents of frames of one size (a size change starts a new group)."""
        groups: dict[tuple, list[tuple[Frame, list]]] = {}
        for item in chunk:
            groups.setdefault(item[0].pixels.shape, []).append(item)
        results = [self._group(group) for group in groups.values()]
        merged = {name: torch.cat([result[name] for result in results]) for name in results[0]}
        order = torch.argsort(merged["frame_index"])
        return {name: tensor[order] for name, tensor in merged.items()}

    def _group(self, group: list[tuple[Frame, list]]) -> dict[str, torch.Tensor]:
        images = torch.stack([torch.from_numpy(frame.pixels) for frame, _ in group]).to(self.device).float() / 255
        faces = align_faces(images, [face for _, face in group], self.settings.resolution)
        tensors = ford_tensors(faces, self.extractors.run(faces))
        tensors["latents"] = encode(self.vae, faces.crops).cpu()
        tensors["frame_index"] = torch.tensor([frame.index for frame, _ in group])
        del tensors["image_index"]  # frame_index says where each crop came from
        tensors["crops"] = (tensors["crops"] * 255).round()
        if self.clip is not None:  # from the crop as stored: what training would feed CLIP
            grids = self.clip.patch_grids(tensors["crops"] / 255, self.stored_tokens.layers)
            tensors[clip_tokens.TOKENS_KEY] = torch.stack(grids, 1).cpu()
        return {name: tensor.to(STORED_DTYPES.get(name, tensor.dtype)).contiguous() for name, tensor in tensors.items()}


def chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class EventLog:
    """One JSON line per skipped item (a frame or clip; for Face0, an image), so a user can
    see what was left out and why. `subject` names what the second field is."""

    def __init__(self, path: Path, subject: str = "clip") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.subject = path, subject

    def write(self, event: str, name: str, **details) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"event": event, self.subject: name, **details}) + "\n")


def shard_path(out: Path, clip: Clip) -> Path:
    return out / "shards" / f"{clip.name}{SHARD_SUFFIX}"


def is_done(out: Path, clip: Clip) -> bool:
    shard = shard_path(out, clip)
    return shard.exists() or shard.with_name(clip.name + SKIPPED_SUFFIX).exists()


def prepare(data: Path, out: Path, preparer: Preparer, slot: Slot = Slot()) -> dict[str, int]:
    """Prepare this process's share of the clips; returns counts of what it did."""
    listing = find_clips(data)
    mine = listing.clips[slot.rank::slot.world]
    log = EventLog(out / "log" / f"rank{slot.rank}.jsonl")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    if slot.rank == 0:
        for name in listing.missing:
            log.write("missing_clip", name, reason="listed in the CelebV-HQ info file but not downloaded")
    counts = {"clips": len(mine), "written": 0, "skipped": 0, "already_done": 0, "frames": 0}
    for clip in tqdm(mine, desc=f"prepare rank {slot.rank}", position=slot.rank, unit="clip"):
        if is_done(out, clip):
            counts["already_done"] += 1
            continue
        tensors = preparer.prepare_clip(clip, log)
        path = shard_path(out, clip)
        if tensors is None:
            log.write("empty_clip", clip.name, reason="no frame with a usable face")
            skipped = {"clip": clip.name, "source": str(clip.path)}
            path.with_name(clip.name + SKIPPED_SUFFIX).write_text(json.dumps(skipped))
            counts["skipped"] += 1
            continue
        frames = tensors["frame_index"].shape[0]
        save_atomically(tensors, path,
                        preparer.metadata | {"clip": clip.name, "source": str(clip.path), "frames": str(frames)})
        counts["written"] += 1
        counts["frames"] += frames
    return counts


def shard_metadata(path: Path, kind: tuple[str, str] = (SHARD_FORMAT, SHARD_VERSION)) -> dict[str, str]:
    """A shard's metadata, checked for its (format, version) (cheap: no tensors read)."""
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    if (metadata.get("format"), metadata.get("version")) != kind:
        raise FaceXError(f"{path} is not a {kind[0]} training shard of version {kind[1]}; prepare the data again.")
    return metadata
