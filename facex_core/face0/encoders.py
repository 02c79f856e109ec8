"""The identity encoders a Face0 model can be trained with, by name.

    "arcface"                      the suite's ArcFace (ford/identity.py): the FaceX crops
                                   re-aligned to ArcFace's 112x112 template. The default.
    "inception_resnet_v1_vggface2" the paper's encoder: facenet-pytorch's InceptionResnetV1
                                   on the detector's box cropped as facenet-pytorch's MTCNN
                                   does (extract_face: margin 0, resized to 160x160).

Both give [N, 512] L2-normalised embeddings, but of different spaces: a projector trained
on one reads noise from the other, so a Face0 file names its encoder (check_encoder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from ..errors import ImageInputError, ModelFileError, UnknownNameError
from ..faces.crops import FaceCrops
from ..ford.identity import IdentityEncoder
from .inception_resnet import INPUT_SIZE, VGGFACE2_FILE, VGGFACE2_URL, load_inception_resnet
from .projector import ARCFACE, VGGFACE2, Face0Config

# Faces embedded per forward pass of InceptionResnetV1 (bounds the activations' memory).
_BATCH = 32


class FaceEmbedder(Protocol):
    name: str

    def embed(self, images: torch.Tensor, faces: FaceCrops) -> torch.Tensor:
        """Faces found in `images` [B, H, W, 3] (RGB, 0..1) -> [N, 512] L2-normalised, on the CPU."""
        ...


class ArcFaceEmbedder:
    """The suite's ArcFace embedding of the aligned crops (the images are not needed)."""

    name = ARCFACE

    def __init__(self, model_path: str | Path, device: torch.device | str | None = None) -> None:
        self.encoder = IdentityEncoder(model_path, device)

    def embed(self, images: torch.Tensor, faces: FaceCrops) -> torch.Tensor:
        return self.encoder.encode(faces).embedding


def facenet_crop(image: torch.Tensor, box: Sequence[float], size: int = INPUT_SIZE, margin: int = 0) -> torch.Tensor:
    """The face in `box` (x1, y1, x2, y2 pixels) of an [H, W, 3] image as [size, size, 3], as
    facenet-pytorch's extract_face crops a PIL image: the box grows by `margin` pixels of the
    output, its edges are truncated to integers and clipped to the image (so a box at the
    border gives a stretched crop), and the region is resized bilinearly with PIL's
    antialiasing (torch's antialias=True computes the same filter)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(value) for value in box)
    grow_x, grow_y = margin * (x2 - x1) / (size - margin), margin * (y2 - y1) / (size - margin)
    left, top = int(max(x1 - grow_x / 2, 0)), int(max(y1 - grow_y / 2, 0))
    right, bottom = int(min(x2 + grow_x / 2, width)), int(min(y2 + grow_y / 2, height))
    if right <= left or bottom <= top:
        raise ImageInputError(f"The face box {[round(value, 1) for value in (x1, y1, x2, y2)]} lies outside the "
                              f"{width}x{height} image; detect the faces on this image.")
    region = image[top:bottom, left:right].permute(2, 0, 1)[None].float()
    resized = F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized[0].permute(1, 2, 0).clamp(0, 1)


class InceptionResnetEmbedder:
    """The paper's embedding: InceptionResnetV1 (VGGFace2) on facenet-pytorch's box crops."""

    name = VGGFACE2

    def __init__(self, model_path: str | Path, device: torch.device | str | None = None) -> None:
        self.network = load_inception_resnet(model_path).to(device or "cpu")

    @torch.no_grad()
    def embed(self, images: torch.Tensor, faces: FaceCrops) -> torch.Tensor:
        crops = torch.stack([facenet_crop(images[int(owner)], box)
                             for owner, box in zip(faces.image_index, faces.boxes.tolist(), strict=True)])
        return torch.cat([self.network.embed(chunk) for chunk in crops.split(_BATCH)]).float().cpu()


@dataclass(frozen=True)
class EncoderSpec:
    build: Callable[[str | Path, torch.device | str | None], FaceEmbedder]
    model_file: str  # the file it needs and where it comes from, for messages


ENCODERS = {
    ARCFACE: EncoderSpec(ArcFaceEmbedder, "an insightface ArcFace recognition model (glintr100.onnx or "
                                          "w600k_r50.onnx; python -m facex_core.models check lists them)"),
    VGGFACE2: EncoderSpec(InceptionResnetEmbedder, f"facenet-pytorch's {VGGFACE2_FILE} ({VGGFACE2_URL})"),
}


def _spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        raise UnknownNameError(f"unknown identity encoder {name!r}; Face0 encoders are {', '.join(ENCODERS)}")
    return ENCODERS[name]


def make_encoder(name: str, model_path: str | Path, device: torch.device | str | None = None) -> FaceEmbedder:
    """The encoder `name` with its model file."""
    return _spec(name).build(model_path, device)


def check_encoder(file_config: Face0Config, name: str) -> None:
    """Refuse to pair a Face0 file with an encoder it was not trained with."""
    _spec(name)
    trained = file_config.identity_encoder
    if name != trained:
        raise ModelFileError(
            f"This Face0 file was trained with the {trained!r} identity encoder, not {name!r}: the two embed faces "
            f"in different spaces, so its projector cannot read {name!r} embeddings. Use the {trained!r} encoder "
            f"({_spec(trained).model_file}), or a Face0 file trained with {name!r}."
        )
