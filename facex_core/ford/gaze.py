"""Gaze direction (yaw, pitch) from an L2CS-Net checkpoint.

L2CS is a torchvision ResNet-50 whose pooled features feed two classifiers over angle bins;
the angle is the softmax expectation over the bins. The Gaze360 release has 90 bins of 4
degrees from -180; the MPIIGaze fold releases have 28 bins of 3 degrees from -42 and keys
prefixed 'module.'. `fc_yaw_gaze` is the horizontal angle (the reference pipeline's
variable names swap the two). Input: the face box, resized to 448, ImageNet mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from kornia.geometry.transform import crop_and_resize
from torch import nn

from ..errors import ModelFileError
from ..faces.align import box_corners
from ..faces.crops import FaceCrops
from ..runtime import weights_place
from .checkpoint import load_strict, read_weights, strip_prefix
from .normalize import IMAGENET, Normalize
from .resnet import ResNet

GAZE_INPUT = 448


@dataclass(frozen=True)
class AngleBins:
    """Angle in degrees of bin i: i * width + offset."""

    width: float
    offset: float


BIN_LAYOUTS = {
    90: AngleBins(width=4.0, offset=-180.0),  # Gaze360
    28: AngleBins(width=3.0, offset=-42.0),  # MPIIGaze folds
}


class L2CS(ResNet):
    """ResNet-50 with the two gaze classifiers (and the unused fc_finetune the files carry)."""

    def __init__(self, bins: int) -> None:
        super().__init__("resnet50")
        features = self.out_channels
        self.fc_yaw_gaze = nn.Linear(features, bins)
        self.fc_pitch_gaze = nn.Linear(features, bins)
        # Vestigial in the released checkpoints; present so they load strictly.
        self.fc_finetune = nn.Linear(features + 3, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = super().forward(x).flatten(1)
        return self.fc_yaw_gaze(pooled), self.fc_pitch_gaze(pooled)


def expected_angle(logits: torch.Tensor, bins: AngleBins) -> torch.Tensor:
    """Softmax expectation over bins, in radians."""
    index = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    degrees = (logits.softmax(-1) * index).sum(-1) * bins.width + bins.offset
    return torch.deg2rad(degrees)


class GazeExtractor:
    """L2CS-Net on the detection box of each FaceX crop, run where its weights are at each
    call (`device` only says where they start)."""

    def __init__(self, network: L2CS, bins: AngleBins, device: torch.device | str = "cpu") -> None:
        self.network = network.to(device).eval()
        self.bins = bins
        self.normalize = Normalize(IMAGENET)

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu") -> GazeExtractor:
        what = "L2CS-Net gaze"
        state = strip_prefix(read_weights(path, what), "module.")
        head = state.get("fc_yaw_gaze.weight")
        if head is None or head.ndim != 2 or head.shape[0] not in BIN_LAYOUTS:
            shape = None if head is None else tuple(head.shape)
            raise ModelFileError(
                f"The {what} file {path} has fc_yaw_gaze.weight of shape {shape}; expected "
                f"[bins, 2048] with {' or '.join(map(str, BIN_LAYOUTS))} bins (Gaze360 or MPIIGaze)."
            )
        bins = head.shape[0]
        return cls(load_strict(L2CS(bins), state, path, what), BIN_LAYOUTS[bins], device)

    @torch.no_grad()
    def extract(self, faces: FaceCrops) -> torch.Tensor:
        """[N, 2] gaze (yaw, pitch) in radians."""
        device, dtype = weights_place(self.network)
        crops = faces.crops.permute(0, 3, 1, 2).to(device, torch.float32)
        corners = box_corners(faces.crop_boxes.to(device))
        boxes = crop_and_resize(crops, corners, (GAZE_INPUT, GAZE_INPUT), mode="bilinear")
        yaw_logits, pitch_logits = (logits.float() for logits in self.network(self.normalize(boxes).to(dtype)))
        return torch.stack([expected_angle(yaw_logits, self.bins), expected_angle(pitch_logits, self.bins)], -1)
