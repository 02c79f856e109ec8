"""Session fixtures for the training tests: a tiny SD1.5 checkpoint, extractor files, and
shards prepared from the frame folders in ../shared/faces/same_identity.

The data folder is the plain layout: two frame folders (linked, not copied), one of them
with a truncated JPEG and a frame without a face among its frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import ANNOTATIONS, FACES_DIR, annotated, models_with_detector

from facex_core.models.locate import roots_from_models_dir
from facex_core.testing.sd_checkpoint import tiny_sd, write_single_file
from facex_core.train.checkpoints import latest_checkpoint
from facex_core.train.config import TrainConfig
from facex_core.train.prepare import Preparer, PrepareSettings, prepare
from facex_core.train.trainer import Trainer

CLIP_FOLDERS = {"woman": "same_identity/ai_ltx2_woman", "performer": "same_identity/real_whitehouse_performer"}
BASE_CONFIG = "micro_sd15"  # 32-channel UNet and VAE: fast on a CPU
BAD_FRAMES = {"frame_100.png": "bad/no_face_coffee.png", "frame_999.jpg": "bad/truncated.jpg"}


@dataclass(frozen=True)
class TrainData:
    root: Path
    checkpoint: Path
    models: Path
    data: Path
    prepared: Path
    counts: dict[str, int]


def frame_data_folder(root: Path) -> Path:
    """data/woman (the folder itself, linked) and data/performer (its frames and two bad ones)."""
    data = root / "data"
    data.mkdir()
    (data / "woman").symlink_to(FACES_DIR / CLIP_FOLDERS["woman"])
    performer = data / "performer"
    performer.mkdir()
    for frame in sorted((FACES_DIR / CLIP_FOLDERS["performer"]).iterdir()):
        (performer / frame.name).symlink_to(frame)
    for name, bad in BAD_FRAMES.items():
        (performer / name).symlink_to(FACES_DIR / bad)
    return data


def make_preparer(models: Path, checkpoint: Path, max_frames: int | None = None, clip_tokens: bool = False) -> Preparer:
    settings = PrepareSettings(resolution=256, batch=4, max_frames=max_frames, clip_tokens=clip_tokens)
    return Preparer(checkpoint, roots_from_models_dir(models), BASE_CONFIG, settings)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory, models_dir) -> TrainData:
    root = tmp_path_factory.mktemp("train")
    unet, vae, text_encoder = tiny_sd(BASE_CONFIG)
    checkpoint = write_single_file(root / "micro_sd15.safetensors", unet, vae, text_encoder, torch.float16)
    frames = [annotated(name) for name in ANNOTATIONS if name.startswith(tuple(CLIP_FOLDERS.values()))]
    models = models_with_detector(root, models_dir, frames, keyed=True)
    data = frame_data_folder(root)
    prepared = root / "prepared"
    counts = prepare(data, prepared, make_preparer(models, checkpoint))
    return TrainData(root, checkpoint, models, data, prepared, counts)


TINY_MODEL = {"width": 32, "region_dim": 16, "adapter_layers": 1, "adapter_heads": 2}


def tiny_run(data: TrainData, output: Path, **settings) -> TrainConfig:
    """A run of the tiny networks on the prepared frames: plain float32, no checkpointing."""
    values = dict(checkpoint=str(data.checkpoint), prepared=str(data.prepared), output=str(output),
                  clip_vision=str(data.models / "clip_vision" / "clip-vit-large-patch14.safetensors"),
                  base_config=BASE_CONFIG, batch=2, micro_batch=2, mixed_precision="no", gradient_checkpointing=False,
                  workers=0, validate_every=0, checkpoint_every=1000, model=TINY_MODEL)
    return TrainConfig(**(values | settings))


LIVE_SEED = 1234


@pytest.fixture(scope="session")
def live_start(train_data, tmp_path_factory) -> Path:
    """A training checkpoint of the tiny networks whose zero-initialised output projections
    (FRCLayer.zero_proj) are re-initialised as plain Linear layers from a fixed seed. A run
    started from it (init_from, as a fine-tune stage starts) gives every trainable parameter
    a gradient; from a fresh network's zero projections only they themselves get one."""
    trainer = Trainer(tiny_run(train_data, tmp_path_factory.mktemp("live_start")))
    torch.manual_seed(LIVE_SEED)
    for layer in trainer.facex.frc:
        layer.zero_proj.reset_parameters()
    trainer.save()
    return latest_checkpoint(trainer.output).folder


@pytest.fixture(scope="session")
def tiny_trainer(train_data, tmp_path_factory):
    """A fresh run of the tiny networks, built once for tests that only look at it."""
    return Trainer(tiny_run(train_data, tmp_path_factory.mktemp("tiny_run")))
