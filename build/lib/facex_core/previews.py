"""Pictures a person would rather look at than numbers: region masks over the face, the
keypoints with the head's pose axes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from .ford.regions import REGION_NAMES
from .images import to_uint8

# One colour per FaceX region (RGB 0..255), in REGION_NAMES order.
REGION_COLOURS = {
    "eyebrows": (140, 70, 20), "eyes": (0, 160, 255), "nose": (255, 200, 0), "lips": (230, 30, 60),
    "ears": (160, 90, 220), "skin": (250, 170, 140), "hair": (120, 60, 10), "background": (40, 40, 40),
    "glasses": (0, 230, 200), "hat": (90, 200, 60), "earrings": (255, 240, 120), "neck": (210, 130, 100),
    "cloth": (60, 90, 160),
}
AXIS_COLOURS = ((255, 0, 0), (0, 200, 0), (0, 80, 255))  # x (pitch axis), y (yaw axis), z (facing)


def region_overlay(crops: torch.Tensor, masks: torch.Tensor, opacity: float = 0.5) -> torch.Tensor:
    """[N, S, S, 3] crops with every region tinted in its colour."""
    palette = torch.tensor([REGION_COLOURS[name] for name in REGION_NAMES], dtype=crops.dtype,
                           device=crops.device) / 255
    colours = torch.einsum("nrhw,rc->nhwc", masks.to(crops.dtype), palette)
    return crops * (1 - opacity) + colours * opacity


def rotation(angles: torch.Tensor) -> np.ndarray:
    """Deep3DFaceRecon's head rotation Rz * Ry * Rx from (x, y, z) angles in radians."""
    x, y, z = (float(a) for a in angles)
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_overlay(crops: torch.Tensor, kps: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """[N, S, S, 3] crops with the 5 keypoints and the head's axes drawn from the nose tip."""
    frames = to_uint8(crops)
    size = crops.shape[1]
    length = size * 0.2
    for frame, points, head in zip(frames, kps.cpu().numpy(), pose.cpu(), strict=True):
        for x, y in points:
            cv2.circle(frame, (round(x), round(y)), max(2, size // 128), (255, 255, 0), -1, cv2.LINE_AA)
        nose = points[2]
        for axis, colour in zip(rotation(head[:3]).T, AXIS_COLOURS, strict=True):
            tip = nose + length * np.array([axis[0], -axis[1]])  # 3D y points up, image y down
            cv2.line(frame, tuple(np.round(nose).astype(int)), tuple(np.round(tip).astype(int)), colour,
                     max(1, size // 160), cv2.LINE_AA)
    return torch.from_numpy(frames).to(crops.device, crops.dtype) / 255
