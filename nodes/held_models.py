"""The models FaceX nodes keep between runs: one slot per role.

V3 nodes hold no state, yet a model must not load again at every run. A cache keyed by file
and settings grows without end, so each role holds one model instead: asking for another
file (or the same file changed on disk) drops the held one before the next loads.

The torch extractors are also handed to ComfyUI's model management through a ModelPatcher,
as ComfyUI's own clip_vision does, so ComfyUI counts their memory, moves them to its device
before a run and may offload them when another model needs the room.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import comfy.model_patcher
import torch

from .devices import compute_device, load_whole, offload_device

T = TypeVar("T")
E = TypeVar("E")
ROLES = ("detector", "recognition", "recon3d", "gaze", "parsing", "analysis", "clip_vision", "facex", "face0",
         "face0_identity")
_HELD: dict[str, tuple[Hashable, object]] = {}  # role -> (key, model)


def held(role: str, key: Hashable, load: Callable[[], T]) -> T:
    """The model held for `role`, loaded by `load` when `key` differs from the held one's.

    The ONNX models (detector, ArcFace) are held this way only, without a ModelPatcher:
    onnxruntime sessions own their memory, which ComfyUI can neither measure nor move.
    """
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; the roles are {ROLES}")
    if role in _HELD and _HELD[role][0] == key:
        return _HELD[role][1]  # type: ignore[return-value]
    _HELD.pop(role, None)
    model = load()
    _HELD[role] = (key, model)
    return model


def file_key(path: Path) -> tuple[str, float | None]:
    """Slot key for a model file: its path and modification time (None if missing)."""
    return str(path), path.stat().st_mtime if path.is_file() else None


@dataclass(frozen=True)
class Managed(Generic[E]):
    """A torch extractor and the ModelPatcher through which ComfyUI places its network."""

    extractor: E
    patcher: comfy.model_patcher.ModelPatcher


def held_network(role: str, key: Hashable, build: Callable[[torch.device], E],
                 network: Callable[[E], torch.nn.Module]) -> Managed[E]:
    """The extractor held for `role`: built by `build` on ComfyUI's offload device, its
    `network` managed by ComfyUI."""

    def load() -> Managed[E]:
        extractor = build(offload_device())
        # A plain container: ModelPatcher writes attributes such as `device` onto the module
        # it manages, which transformers' models expose as read-only properties.
        container = torch.nn.ModuleList([network(extractor)])
        return Managed(extractor, comfy.model_patcher.ModelPatcher(
            container, load_device=compute_device(), offload_device=offload_device()))

    return held(role, key, load)


def load_for_run(*models: Managed) -> None:
    """Place the networks a node is about to run."""
    load_whole(*(model.patcher for model in models))
