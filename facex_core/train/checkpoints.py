"""Training checkpoints (written atomically, resumed exactly) and export to the weight file.

A checkpoint is a folder checkpoints/step_0001000 holding the trainable weights in float32
(trainable.safetensors: FaceX under "facex.", fine-tuned CLIP under "clip."), the optimizer
state (optimizer.pt, read back with weights_only=True) and state.json (the step, the run's
config, the FaceX config, the extractors the data was prepared with and, in an fp16 run,
the loss scaler's state). A Face0 run's (train/face0/trainer.py) holds its projector and
UNet part instead, and its Face0 config. It is written as step_0001000.partial and renamed, so a run
killed while saving leaves the previous checkpoint as the latest. Nothing else needs
saving for an exact resume: every random draw follows from (seed, sample number) and the
learning rate is constant.

A checkpoint is also what a fine-tune best starts from: its weights are the float32 ones
training reached, where the exported weight file holds them rounded to fp16.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import FaceXError
from ..ford.checkpoint import load_strict, under_prefix
from ..model.config import FaceXConfig
from ..model.facex import FaceXModel
from ..model.metadata import CLIP_FILE_PREFIX
from ..model.weights import CLIP_PREFIX, load_facex, save_facex

STEP_PREFIX = "step_"
PARTIAL = ".partial"
WEIGHTS, OPTIMIZER, STATE = "trainable.safetensors", "optimizer.pt", "state.json"
FACEX_KEYS = "facex."  # fine-tuned CLIP goes under weights.CLIP_PREFIX, as in the weight file


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    state: dict  # step, config, facex_config, extractors, clip_vision

    @property
    def step(self) -> int:
        return self.state["step"]

    @cached_property
    def weights(self) -> dict[str, torch.Tensor]:
        """The trainable weights, read from disk once (the FaceX network and CLIP both come from them)."""
        return load_file(str(self.folder / WEIGHTS))

    def optimizer_state(self) -> dict:
        return torch.load(self.folder / OPTIMIZER, map_location="cpu", weights_only=True)

    def facex_model(self) -> FaceXModel:
        """The FaceX network in float32, every key checked against its config."""
        model = FaceXModel(FaceXConfig.from_json(self.state["facex_config"]))
        facex_weights = under_prefix(self.weights, FACEX_KEYS)
        return load_strict(model, facex_weights, self.folder / WEIGHTS, "FaceX training checkpoint")

    def clip_state(self) -> dict[str, torch.Tensor]:
        """The fine-tuned CLIP weights; empty when CLIP stayed frozen."""
        return under_prefix(self.weights, CLIP_PREFIX)


def trainable_state(facex: FaceXModel, clip_model: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    """FaceX weights, and CLIP's when it is fine-tuned, in float32 under their prefixes."""
    state = {FACEX_KEYS + key: value for key, value in facex.state_dict().items()}
    if clip_model is not None:
        state |= {CLIP_PREFIX + key: value for key, value in clip_model.state_dict().items()}
    return {key: value.detach().float().cpu().contiguous() for key, value in state.items()}


def save_checkpoint(output: Path, step: int, weights: dict[str, torch.Tensor], optimizer: dict, state: dict,
                    keep: int) -> Path:
    """Write checkpoint `step` atomically and delete all but the `keep` newest."""
    folder = output / "checkpoints" / f"{STEP_PREFIX}{step:07d}"
    partial = folder.with_name(folder.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(weights, str(partial / WEIGHTS))  # the folder is renamed whole
    torch.save(optimizer, partial / OPTIMIZER)
    (partial / STATE).write_text(json.dumps(state | {"step": step}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    for old in complete_checkpoints(output)[:-keep]:
        shutil.rmtree(old)
    return folder


def complete_checkpoints(output: Path) -> list[Path]:
    """Finished checkpoint folders, oldest first (.partial ones are leftovers of a crash)."""
    folder = output / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir()
                  if path.name.startswith(STEP_PREFIX) and not path.name.endswith(PARTIAL))


def read_checkpoint(folder: str | Path) -> Checkpoint:
    folder = Path(folder)
    if not (folder / STATE).is_file():
        found = complete_checkpoints(folder) or complete_checkpoints(folder.parent.parent)
        hint = f" The newest checkpoint there is {found[-1]}." if found else ""
        problem = "is not a training checkpoint (no state.json)" if folder.exists() else "does not exist"
        raise FaceXError(f"The checkpoint {folder} {problem}; give a run's checkpoints/step_* folder.{hint}")
    return Checkpoint(folder, json.loads((folder / STATE).read_text()))


def latest_checkpoint(output: Path) -> Checkpoint | None:
    found = complete_checkpoints(output)
    return read_checkpoint(found[-1]) if found else None


def fine_tune_start(path: str | Path, device: torch.device | str) -> tuple[FaceXModel, dict[str, torch.Tensor]]:
    """The network (float32) and fine-tuned CLIP weights (empty if none) a later stage starts
    from: a training checkpoint (its folder or its trainable.safetensors), whose weights are
    exactly those training reached, or a FaceX weight file, whose weights are those rounded
    to fp16."""
    path = Path(path)
    if path.suffix != ".safetensors" or path.name == WEIGHTS:
        saved = read_checkpoint(path.parent if path.name == WEIGHTS else path)
        return saved.facex_model().to(device), saved.clip_state()
    loaded = load_facex(path, device)
    return loaded.model, loaded.clip_state


def export(checkpoint: str | Path, out: str | Path) -> Path:
    """The FaceX weight file of a checkpoint: fp16 safetensors with the metadata the loaders check."""
    saved = read_checkpoint(checkpoint)
    clip_state = saved.clip_state()
    encoder = "embedded" if clip_state else CLIP_FILE_PREFIX + saved.state["clip_vision"]
    return save_facex(saved.facex_model(), out, saved.state["extractors"], encoder, clip_state or None)
