"""Five-point face alignment: the similarity transforms and the warps that apply them.

Coordinates are pixels with pixel centres on integers (OpenCV's convention, which kornia
follows with align_corners=True). Matrices are 2x3 and map image points to crop points.

Two alignments are used:
- FaceX crops (FFHQ template at 256/512/768): anchored on the eyes, so both eye centres
  land exactly on the template; when a head is turned so far that the eyes crowd together
  (eye-to-mouth distance over 1.4x the template's proportion), the eye-to-mouth distance
  sets the scale instead, so the crop does not zoom in on a profile.
- ArcFace crops (112): least-squares fit of all five points, as insightface does, because
  the recognition network was trained on exactly that alignment.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import invert_affine_transform, warp_affine

from ..errors import FaceTooSmallError

# FFHQ 5-point template at 512 px: eye centres, nose tip, mouth corners (image left first).
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)
# insightface ArcFace template at 112 px, same point order.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
CROP_SIZES = (256, 512, 768)
ARCFACE_SIZE = 112
# Beyond this ratio of (eye-to-mouth / eye-to-eye) to the template's, eyes no longer
# measure the face size (strong yaw), and the eye-to-mouth distance takes over.
YAW_GUARD = 1.4


def ffhq_template(size: int) -> np.ndarray:
    """The FFHQ five points for a square crop of `size` pixels."""
    return FFHQ_TEMPLATE_512 * (size / 512.0)


def _eye_mouth_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[:2].mean(axis=0), points[3:5].mean(axis=0)


def _similarity(scale: float, angle: float, src_anchor: np.ndarray, dst_anchor: np.ndarray) -> np.ndarray:
    """Matrix rotating by `angle` and scaling by `scale` that maps src_anchor onto dst_anchor."""
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.array([[c, -s], [s, c]])
    return np.concatenate([linear, (dst_anchor - linear @ src_anchor)[:, None]], axis=1)


def eye_anchored_matrix(kps: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Similarity putting both eyes on the template eyes (see the module doc for turned heads)."""
    kps = np.asarray(kps, dtype=np.float64)
    eye_vec, tmpl_eye_vec = kps[1] - kps[0], template[1] - template[0]
    eye_dist, tmpl_eye_dist = np.linalg.norm(eye_vec), np.linalg.norm(tmpl_eye_vec)
    eyes, mouth = _eye_mouth_centres(kps)
    tmpl_eyes, tmpl_mouth = _eye_mouth_centres(template)
    mouth_dist, tmpl_mouth_dist = np.linalg.norm(mouth - eyes), np.linalg.norm(tmpl_mouth - tmpl_eyes)
    if eye_dist < 1e-6 and mouth_dist < 1e-6:
        raise FaceTooSmallError("all five face points coincide; they cannot define an alignment (the face is a single "
                                "point)")
    scale = min(
        tmpl_eye_dist / max(eye_dist, 1e-6),
        YAW_GUARD * tmpl_mouth_dist / max(mouth_dist, 1e-6),
    )
    angle = np.arctan2(tmpl_eye_vec[1], tmpl_eye_vec[0]) - np.arctan2(eye_vec[1], eye_vec[0])
    return _similarity(scale, angle, eyes, tmpl_eyes)


def least_squares_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection), Umeyama's method."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, sing, vt = np.linalg.svd(cov)
    flip = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ flip @ vt
    scale = np.trace(np.diag(sing) @ flip) / src_c.var(axis=0).sum()
    linear = scale * rotation
    return np.concatenate([linear, (dst_mean - linear @ src_mean)[:, None]], axis=1)


def arcface_matrix(kps: np.ndarray) -> np.ndarray:
    """insightface's ArcFace alignment: five-point least squares onto the 112 template."""
    return least_squares_matrix(kps, ARCFACE_TEMPLATE_112)


def transform_points(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply [N, 2, 3] matrices to [N, K, 2] points."""
    return points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]


def box_corners(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 4] boxes (x1, y1, x2, y2) to [N, 4, 2] corners, clockwise from the top left."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([torch.stack(c, -1) for c in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1)


def invert(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of [N, 2, 3] affine matrices."""
    return invert_affine_transform(matrices)


def _matrix_scale(matrix: torch.Tensor) -> float:
    return float(matrix[:, :2].det().abs().sqrt())


def warp_image(
    image: torch.Tensor,
    matrix: torch.Tensor,
    out_hw: tuple[int, int],
    mode: str = "bicubic",
    padding: str = "reflection",
) -> torch.Tensor:
    """Warp one [C, H, W] image by a 2x3 matrix into `out_hw`.

    A warp that shrinks by more than half first resizes the image (antialiased) to twice
    the output scale: enough low-pass to stop aliasing of fine, edited detail, little
    enough that a crop warped back to the image keeps 50 dB of the original.
    """
    scale = _matrix_scale(matrix)
    if scale < 0.5:
        factor = 2.0 * scale
        height, width = image.shape[-2:]
        size = (max(1, round(height * factor)), max(1, round(width * factor)))
        image = F.interpolate(image[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]
        fy, fx = size[0] / height, size[1] / width
        # Pixel x' of the resized image sits at (x' + 0.5) / f - 0.5 in the original.
        to_original = matrix.new_tensor([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        matrix = matrix @ to_original
    out = warp_affine(image[None], matrix[None].to(image.dtype), dsize=out_hw, mode=mode, padding_mode=padding)
    return out[0]
