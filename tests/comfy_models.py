"""Random-weight model files for a tier-2 ComfyUI base directory, in the published layouts.

A tiny SD1.5-family checkpoint that ComfyUI detects as SD15, FaceX weight files made for
its UNet (one trained-looking, one zero-initialised), the FORD extractors (and a second
parser to switch to), FaceXFormer (full size, fp16), a Face0 file exported by a short
training run on the tiny checkpoint, a CLIP, and a detector that finds the annotated faces
of each input image.
"""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path

import torch
from conftest import FACES_DIR, annotated, planted_detector_file
from face0_fixtures import Face0Data, face0_preparer, tiny_face0_run
from PIL import Image, ImageDraw

from facex_core.model.config import FaceXConfig
from facex_core.model.diffusers_binding import block_specs
from facex_core.model.facex import FaceXModel
from facex_core.model.weights import save_facex
from facex_core.testing import checkpoints
from facex_core.testing.checkpoints import TINY_CLIP_VISION
from facex_core.testing.facexformer_checkpoint import write_facexformer_checkpoint
from facex_core.testing.model_folder import PACK, write_extractors
from facex_core.testing.sd_checkpoint import tiny_sd, write_single_file

CHECKPOINT = "tiny_sd15.safetensors"
FACEX = "facex_tiny.safetensors"
FACEX_ZERO = "facex_tiny_zero.safetensors"
FACE0 = "face0_tiny.safetensors"
# ComfyUI input file -> annotated face image
INPUTS = {
    "source.png": "portraits/ai_glasses_man.png",
    "target.png": "same_identity/ai_ltx2_woman/frame_000.png",
    "reference.png": "portraits/ai_curly_hair_woman_hand_occlusion.png",
    "driving_1.png": "same_identity/ai_ltx2_woman/frame_040.png",
    "driving_2.png": "same_identity/ai_ltx2_woman/frame_080.png",
    "astronaut.png": "portraits/real_astronaut_collins.png",
    "group.png": "multi/real_obama_biden_oval_office.jpg",
}
NO_FACE = {"coffee.png": "bad/no_face_coffee.png"}  # the detector finds nothing here
FACE0_PORTRAITS = ("source.png", "reference.png")  # what the Face0 run trains on


def tiny_facex(unet, zero: bool, seed: int = 0) -> FaceXModel:
    torch.manual_seed(seed)
    config = FaceXConfig("sd15", 768, 256, block_specs(unet), width=32, region_dim=16,
                         clip_dim=TINY_CLIP_VISION["hidden_size"], clip_layers=(1, 2, 2),
                         adapter_layers=1, adapter_heads=2)
    model = FaceXModel(config)
    if not zero:
        for layer in model.frc:
            torch.nn.init.normal_(layer.zero_proj.weight, std=0.05)
    return model


def populate(base: Path) -> None:
    """Write every model file and input image a FaceX graph needs under a ComfyUI base directory."""
    models = base / "models"
    unet, vae, text_encoder = tiny_sd()
    (models / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_single_file(models / "checkpoints" / CHECKPOINT, unet, vae, text_encoder, torch.float16)
    write_controlnet(models / "controlnet" / CONTROLNET, models / "checkpoints" / CHECKPOINT)
    extractors = {"recognition": "w600k_r50.onnx", "parsing": "79999_iter.pth", "recon3d": "epoch_20.pth",
                  "gaze": "L2CSNet_gaze360.pkl", "detection": "det_10g.onnx"}
    (models / "facex").mkdir(exist_ok=True)
    for name, zero in ((FACEX, False), (FACEX_ZERO, True)):
        save_facex(tiny_facex(unet, zero), models / "facex" / name, extractors)
    write_extractors(models)
    checkpoints.write_bisenet(models / "facex_extractors" / "parsing_bisenet.pth", seed=1)  # a parser to switch to
    write_facexformer_checkpoint(models / "facex_extractors" / "facexformer.pt", dtype=torch.float16)
    planted_detector_file(models / PACK / "det_10g.onnx", [annotated(name) for name in INPUTS.values()], keyed=True)
    (models / "face0").mkdir(exist_ok=True)
    shutil.move(train_face0(base / "face0_run", models), models / "face0" / FACE0)
    (base / "input").mkdir(exist_ok=True)
    for name, image in (INPUTS | NO_FACE).items():
        shutil.copy(FACES_DIR / image, base / "input" / name)
    write_hole(base / "input" / "hole.png", annotated(INPUTS["target.png"]))


def train_face0(root: Path, models: Path) -> Path:
    """The Face0 file a 2-step run on two input portraits exports for the tiny checkpoint:
    prepare-face0 with the models folder's detector and ArcFace, then training with a LoRA
    on every layer (convolutions too, so ComfyUI's loader maps every kind of patch) at a
    learning rate that makes its change visible after two steps."""
    from facex_core.train.face0.captions import CaptionSource, captioned_images
    from facex_core.train.face0.prepare import prepare_face0
    from facex_core.train.face0.trainer import Face0Trainer
    from facex_core.train.prepare import Slot

    data = root / "data"
    data.mkdir(parents=True)
    for name in FACE0_PORTRAITS:
        (data / name).symlink_to(FACES_DIR / INPUTS[name])
    checkpoint = models / "checkpoints" / CHECKPOINT
    images, left_out = captioned_images(data, CaptionSource())
    counts = prepare_face0(images, left_out, root / "prepared", face0_preparer(models, checkpoint, "tiny_sd15"), Slot())
    prepared = Face0Data(root, checkpoint, models, data, root / "prepared", counts)
    config = tiny_face0_run(prepared, root / "run", base_config="tiny_sd15", lora_layers="all", steps=2,
                            learning_rate=1e-2)
    return Face0Trainer(config).run()


def write_hole(path: Path, image) -> None:
    """An inpainting mask the size of the annotated image, white over the mouth."""
    mouth_left, mouth_right = image.faces[0]["landmarks_5"][3:5]
    half = (mouth_right[0] - mouth_left[0]) * 0.8
    centre_x, centre_y = (mouth_left[0] + mouth_right[0]) / 2, (mouth_left[1] + mouth_right[1]) / 2
    mask = Image.new("RGB", (image.entry["width"], image.entry["height"]), "black")
    ImageDraw.Draw(mask).ellipse([centre_x - half, centre_y - half * 0.6, centre_x + half, centre_y + half * 0.6],
                                 fill="white")
    mask.save(path)


CONTROLNET = "controlnet_tiny.safetensors"
HINT_WIDTHS = (3, 16, 16, 32, 32, 96, 96, 256)  # channel widths along the hint encoder


def write_controlnet(path: Path, checkpoint: Path, seed: int = 0) -> Path:
    """A ControlNet in the original layout (control_model.*) for the tiny checkpoint: its
    encoder copied from the UNet, a hint encoder, and zero convolutions given small random
    values so that it visibly steers."""
    from safetensors.torch import load_file, save_file

    from facex_core.model.sd_checkpoint import UNET_PREFIX

    unet = {key[len(UNET_PREFIX):]: value for key, value in load_file(str(checkpoint)).items()
            if key.startswith(UNET_PREFIX)
            and key[len(UNET_PREFIX):].split(".")[0] in ("input_blocks", "middle_block", "time_embed")}
    channels = unet["input_blocks.0.0.weight"].shape[0]
    blocks = 1 + max(int(key.split(".")[1]) for key in unet if key.startswith("input_blocks."))
    gen = torch.Generator().manual_seed(seed)
    state = {f"control_model.{key}": value for key, value in unet.items()}

    def conv(name: str, c_in: int, c_out: int, k: int) -> None:
        weight = torch.randn(c_out, c_in, k, k, generator=gen) * (c_in * k * k) ** -0.5
        state[f"control_model.{name}.weight"] = weight.half()
        state[f"control_model.{name}.bias"] = (0.01 * torch.randn(c_out, generator=gen)).half()

    widths = (*HINT_WIDTHS, channels)
    for index, (c_in, c_out) in enumerate(pairwise(widths)):
        conv(f"input_hint_block.{2 * index}", c_in, c_out, 3)
    for index in range(blocks):
        conv(f"zero_convs.{index}.0", channels, channels, 1)
    conv("middle_block_out.0", channels, channels, 1)
    (path.parent).mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
