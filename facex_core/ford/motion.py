"""3DMM coefficients from Deep3DFaceRecon (epoch_20.pth): expression, pose, texture, light.

The network is a ResNet-50 regressing 257 coefficients through seven 1x1 convolutions.
Its input is its own 224 crop: a 3D five-point template is fitted to the keypoints with an
affine camera (POS), which gives a scale and a centre; the image is resized by 102 / scale
and a 224 window is cut around that centre. The input is RGB in [0, 1] with no mean/std.
We run it on the FaceX crop, so pose is measured in the frame the FaceX model generates in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..faces.crops import FaceCrops
from ..runtime import weights_place
from .checkpoint import load_strict, read_weights, strip_prefix, sub_dict
from .resnet import ResNet

RECON_SIZE = 224
RESCALE = 102.0
# Output widths of the seven heads, in file order; they concatenate to the 257 values.
HEAD_WIDTHS = (80, 64, 80, 3, 27, 2, 1)
# How the 257 values split (translation joins the last two heads).
COEFFICIENT_LAYOUT = (
    ("identity", 80),
    ("expression", 64),
    ("texture", 80),
    ("angles", 3),
    ("lighting", 27),
    ("translation", 3),
)
# Five-point 3D template (x, y, z): eye centres, nose tip, mouth corners, image-left first.
TEMPLATE_3D = np.array(
    [
        [-0.311487, 0.290361, 0.133780],
        [0.309799, 0.289720, 0.131795],
        [0.003253, -0.046179, 0.552442],
        [-0.252169, -0.381339, 0.224057],
        [0.248466, -0.381282, 0.222358],
    ]
)


class ReconNet(nn.Module):
    """Deep3DFaceRecon's ReconNetWrapper: `backbone` ResNet-50 and `final_layers` heads."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ResNet("resnet50")
        self.final_layers = nn.ModuleList(
            nn.Conv2d(self.backbone.out_channels, width, kernel_size=1, bias=True) for width in HEAD_WIDTHS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, 224, 224] RGB in [0, 1] to [B, 257] coefficients."""
        pooled = self.backbone(x)
        return torch.cat([head(pooled) for head in self.final_layers], dim=1).flatten(1)


def split_coefficients(coefficients: torch.Tensor) -> dict[str, torch.Tensor]:
    """Name the parts of [N, 257] coefficients (angles in radians: x, y, z)."""
    parts, start = {}, 0
    for name, width in COEFFICIENT_LAYOUT:
        parts[name] = coefficients[:, start:start + width]
        start += width
    return parts


def fit_scale_and_centre(kps: np.ndarray, image_height: int) -> tuple[np.ndarray, float]:
    """POS: least-squares affine camera from the 3D template to the 5 points (y pointing up).

    Returns the projected centre t (in the y-up frame) and the scale s.
    """
    points = np.asarray(kps, dtype=np.float64).copy()
    points[:, 1] = image_height - 1 - points[:, 1]
    count = len(points)
    system = np.zeros((2 * count, 8))
    system[0::2, 0:3] = TEMPLATE_3D
    system[0::2, 3] = 1
    system[1::2, 4:7] = TEMPLATE_3D
    system[1::2, 7] = 1
    solution = np.linalg.lstsq(system, points.reshape(-1), rcond=None)[0]
    scale = (np.linalg.norm(solution[0:3]) + np.linalg.norm(solution[4:7])) / 2
    return np.array([solution[3], solution[7]]), float(scale)


def recon_crop(image: torch.Tensor, kps: np.ndarray) -> torch.Tensor:
    """Deep3DFaceRecon's 224 input from one [3, H, W] image and its 5 points."""
    height, width = image.shape[-2:]
    centre, scale = fit_scale_and_centre(kps, height)
    factor = RESCALE / scale
    new_w, new_h = int(width * factor), int(height * factor)
    left = int(new_w / 2 - RECON_SIZE / 2 + (centre[0] - width / 2) * factor)
    top = int(new_h / 2 - RECON_SIZE / 2 + (height / 2 - centre[1]) * factor)
    resized = F.interpolate(image[None], size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)[0]
    padded = F.pad(resized,
                   (max(0, -left), max(0, left + RECON_SIZE - new_w), max(0, -top), max(0, top + RECON_SIZE - new_h)))
    x0, y0 = max(0, left), max(0, top)
    return padded[:, y0:y0 + RECON_SIZE, x0:x0 + RECON_SIZE].clamp(0, 1)


@dataclass(frozen=True)
class Motion3DMM:
    """Per face: 3DMM identity 80, expression 64, texture 80, angles 3 (rad), lighting 27, translation 3."""

    identity: torch.Tensor
    expression: torch.Tensor
    texture: torch.Tensor
    angles: torch.Tensor
    lighting: torch.Tensor
    translation: torch.Tensor


class MotionExtractor:
    """Deep3DFaceRecon on FaceX crops, run where its weights are at each call (`device` only
    says where they start)."""

    def __init__(self, network: ReconNet, device: torch.device | str = "cpu") -> None:
        self.network = network.to(device).eval()

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu") -> MotionExtractor:
        """Load epoch_20.pth (the state dict sits under 'net_recon')."""
        what = "Deep3DFaceRecon"
        state = strip_prefix(sub_dict(read_weights(path, what), "net_recon", path, what), "module.")
        return cls(load_strict(ReconNet(), state, path, what), device)

    @torch.no_grad()
    def extract(self, faces: FaceCrops) -> Motion3DMM:
        device, dtype = weights_place(self.network)
        crops = faces.crops.permute(0, 3, 1, 2).to(device, torch.float32)
        kps = faces.crop_kps.cpu().numpy()
        batch = torch.stack([recon_crop(crop, points) for crop, points in zip(crops, kps, strict=True)])
        return Motion3DMM(**split_coefficients(self.network(batch.to(dtype)).float()))
