"""Session fixtures for the Face0 training and command tests: a tiny SD1.5 checkpoint, a
models folder whose detector finds the annotated faces of a few portraits, and those
portraits prepared as Face0 shards at 64 px (the smallest size the VAE's 8x downscale
and the micro UNet work at, so a training step takes milliseconds on a CPU).

The data folder links the images (never copies them): four portraits whose faces stay at
least 20 px in the 64 px training image, two whose faces shrink below it (7.8 px and
19.2 px), a photo without a face and a truncated JPEG. ai_glasses_man has a sidecar
caption; the others get the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import FACES_DIR, annotated, models_with_detector

from facex_core.models.locate import locate_roles, roots_from_models_dir
from facex_core.testing.sd_checkpoint import tiny_sd, write_single_file
from facex_core.train.face0.captions import CaptionSource, captioned_images
from facex_core.train.face0.config import Face0TrainConfig
from facex_core.train.face0.prepare import Face0Preparer, Face0PrepareSettings, prepare_face0
from facex_core.train.prepare import Slot

BASE_CONFIG = "micro_sd15"
RESOLUTION = 64
USABLE = ("portraits/ai_curly_hair_woman_hand_occlusion.png", "portraits/ai_glasses_man.png",
          "portraits/ai_large_face_closeup.png", "portraits/real_biden_portrait.jpg")
TOO_SMALL = {"portraits/ai_baby.png": 7.8, "portraits/real_obama_official_portrait.jpg": 19.2}  # face px at 64
UNREADABLE = ("bad/no_face_coffee.png", "bad/truncated.jpg")
SIDECAR = ("ai_glasses_man", "a man with glasses")
SHARD_SIZE = 3  # 8 images: shards of 3, 3 and 2 images


@dataclass(frozen=True)
class Face0Data:
    root: Path
    checkpoint: Path
    models: Path
    data: Path
    prepared: Path
    counts: dict[str, int]


def face0_models(root: Path, shared_models: Path) -> tuple[Path, Path]:
    """(a micro SD1.5 single file, a models folder with the random ArcFace and a detector
    that finds the annotated faces of the portraits)."""
    unet, vae, text_encoder = tiny_sd(BASE_CONFIG)
    checkpoint = write_single_file(root / "micro_sd15.safetensors", unet, vae, text_encoder, torch.float16)
    images = [annotated(name) for name in (*USABLE, *TOO_SMALL)]
    return checkpoint, models_with_detector(root, shared_models, images, keyed=True)


def face0_data_folder(root: Path) -> Path:
    data = root / "data"
    data.mkdir()
    for name in (*USABLE, *TOO_SMALL, *UNREADABLE):
        (data / Path(name).name).symlink_to(FACES_DIR / name)
    (data / f"{SIDECAR[0]}.txt").write_text(SIDECAR[1] + "\n")
    return data


def face0_preparer(models: Path, checkpoint: Path, base_config: str = BASE_CONFIG) -> Face0Preparer:
    files = locate_roles(("detection", "recognition"), roots_from_models_dir(models))
    settings = Face0PrepareSettings(resolution=RESOLUTION, batch=2, shard_size=SHARD_SIZE)
    return Face0Preparer(checkpoint, base_config, files["detection"], files["recognition"], settings)


@pytest.fixture(scope="session")
def face0_data(tmp_path_factory, models_dir) -> Face0Data:
    root = tmp_path_factory.mktemp("face0")
    checkpoint, models = face0_models(root, models_dir)
    data = face0_data_folder(root)
    images, left_out = captioned_images(data, CaptionSource())
    prepared = root / "prepared"
    counts = prepare_face0(images, left_out, prepared, face0_preparer(models, checkpoint), Slot())
    return Face0Data(root, checkpoint, models, data, prepared, counts)


def tiny_face0_run(data: Face0Data, output: Path, **settings) -> Face0TrainConfig:
    """A Face0 run on the prepared portraits: plain float32, no gradient checkpointing, a rank-4 LoRA, no validation."""
    values = dict(checkpoint=str(data.checkpoint), prepared=str(data.prepared), output=str(output),
                  base_config=BASE_CONFIG, lora_rank=4, lora_alpha=4.0, batch=2, micro_batch=2, mixed_precision="no",
                  gradient_checkpointing=False, workers=0, checkpoint_every=1000, validate_every=0)
    return Face0TrainConfig(**(values | settings))
