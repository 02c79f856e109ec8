"""The FaceX weight file: one safetensors file, fp16, that says what it was made for.

Metadata (all strings, as safetensors requires): format and format_version; family and
context_dim of the base model; resolution; the token layout of f_SD; the extractor files
it was trained with; the region encoder ("clip_vision:<file>" to use a file from
models/clip_vision as is, or "embedded" when fine-tuned CLIP weights are stored under
"clip."); and the whole network config as JSON. The FRC layers are keyed frc.<i>. in
canonical block order. Files are written to a temporary name and renamed, so a crash never
leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ModelFileError
from ..ford.checkpoint import load_strict, under_prefix
from .config import FaceXConfig
from .facex import FaceXModel
from .metadata import CLIP_FILE_PREFIX, FORMAT, FORMAT_VERSION, read_metadata

CLIP_PREFIX = "clip."


@dataclass(frozen=True)
class FaceXFile:
    """A loaded weight file: the network and what it says about itself."""

    model: FaceXModel
    metadata: dict[str, str]
    clip_state: dict[str, torch.Tensor]  # fine-tuned CLIP vision weights when embedded, else empty


def save_facex(
    model: FaceXModel,
    path: str | Path,
    extractors: dict[str, str],
    region_encoder: str = CLIP_FILE_PREFIX + "clip-vit-large-patch14.safetensors",
    clip_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `model` (and embedded CLIP weights, if given) as fp16 safetensors with metadata."""
    if (region_encoder == "embedded") != bool(clip_state):
        raise ValueError("region_encoder 'embedded' goes with clip_state, and only with it")
    config = model.config
    weights = model.state_dict() | {CLIP_PREFIX + key: value for key, value in (clip_state or {}).items()}
    tensors = {key: value.detach().to(torch.float16).contiguous() for key, value in weights.items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "family": config.family,
        "context_dim": str(config.context_dim),
        "resolution": str(config.resolution),
        "token_layout": json.dumps(config.token_layout()),
        "extractors": json.dumps(extractors, sort_keys=True),
        "region_encoder": region_encoder,
        "config": config.to_json(),
    }
    return save_atomically(tensors, path, metadata)


def save_atomically(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file written under a temporary name and renamed: a crash leaves at most
    a .partial file, never a file that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, path)
    return path


def load_facex(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> FaceXFile:
    """Load and check a weight file; every key must match the network its config describes."""
    metadata = read_metadata(path)
    try:
        config = FaceXConfig.from_json(metadata["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The config stored in {path} cannot be read ({exc}); export the weights again.") from exc
    try:
        with safe_open(str(path), "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - a safetensors file is not iterable
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"The FaceX weight file {path} is corrupt or truncated ({exc}); download or export it "
                             f"again.") from exc
    clip_state = under_prefix(tensors, CLIP_PREFIX)
    state = {key: value.to(dtype) for key, value in tensors.items() if not key.startswith(CLIP_PREFIX)}
    if (metadata.get("region_encoder") == "embedded") != bool(clip_state):
        raise ModelFileError(f"{path} says its region encoder is {metadata.get('region_encoder')!r} but "
                             f"{'holds' if clip_state else 'lacks'} CLIP weights; export the weights again.")
    model = load_strict(FaceXModel(config), state, path, "FaceX weight",
                        hint="The file is damaged or was written by another version; export it again.")
    return FaceXFile(model.to(device=device, dtype=dtype), metadata, clip_state)
