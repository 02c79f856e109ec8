"""Pictures a person would rather look at than numbers: region masks over the face, the
keypoints with the head's pose axes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from .ford.analysis_labels import PARSING_CLASSES
from .ford.region_masks import label_to_region
from .ford.regions import REGION_NAMES
from .images import to_uint8

if TYPE_CHECKING:
    from .ford.face_analysis import FaceAnalysis

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
    palette = _palette().to(crops)
    colours = torch.einsum("nrhw,rc->nhwc", masks.to(crops.dtype), palette)
    return crops * (1 - opacity) + colours * opacity


def _palette() -> torch.Tensor:
    """[R, 3] region colours in 0..1, REGION_NAMES order."""
    return torch.tensor([REGION_COLOURS[name] for name in REGION_NAMES], dtype=torch.float32) / 255


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


NOSE_TIP = 30  # of the 68 iBUG points


def head_axes(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """[3, 3] columns: the head's x, y and z axes in image directions (x right, y down) for
    FaceXFormer's angles in radians, as its authors draw them: Rx(pitch) Ry(yaw) Rz(roll)."""
    cp, sp, cy, sy, cr, sr = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw), math.cos(roll), \
        math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rx @ ry @ rz


def analysis_overlay(images: torch.Tensor, analysis: FaceAnalysis, labels: torch.Tensor,
                     opacity: float = 0.5) -> torch.Tensor:
    """[B, H, W, 3] frames with each face's parsing (`labels`, analysis.label_map()) tinted in
    its FaceX region's colour, its 68 landmarks, and its head's axes from the nose tip."""
    class_colours = _palette()[label_to_region(PARSING_CLASSES)]
    frames = []
    for index, (frame, frame_labels) in enumerate(zip(images.cpu().float(), labels.long(), strict=True)):
        blended = frame * (1 - opacity) + class_colours[frame_labels] * opacity
        tinted = torch.where((frame_labels > 0)[..., None], blended, frame)
        picture = to_uint8(tinted)
        for face in (analysis.image_index == index).nonzero().flatten().tolist():
            _draw_face(picture, analysis.landmarks[face].numpy(), analysis.pose_degrees[face].tolist(),
                       float(analysis.boxes[face, 2] - analysis.boxes[face, 0]))
        frames.append(torch.from_numpy(picture))
    return (torch.stack(frames).float() / 255).to(images.device)


def _draw_face(picture: np.ndarray, landmarks: np.ndarray, pose_degrees: list[float], width: float) -> None:
    """The head's axes from the nose tip, then the landmarks on top."""
    radius, thickness = max(1, round(width / 150)), max(1, round(width / 100))
    nose = landmarks[NOSE_TIP]
    axes = head_axes(*(math.radians(angle) for angle in pose_degrees))
    for axis, colour in zip(axes.T, AXIS_COLOURS, strict=True):
        tip = nose + 0.25 * width * axis[:2]
        cv2.line(picture, tuple(np.round(nose).astype(int)), tuple(np.round(tip).astype(int)), colour, thickness,
                 cv2.LINE_AA)
    for x, y in landmarks:
        cv2.circle(picture, (round(x), round(y)), radius, (255, 255, 0), -1, cv2.LINE_AA)
