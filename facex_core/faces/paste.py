"""Putting (edited) crops back into the images they came from.

Each crop is warped back with the inverse of its alignment and blended through a mask that
fades out towards the crop border, so no seam shows. Colour matching optionally moves the
edited crop's Lab mean and spread to the original crop's inside the mask, which hides the
colour drift diffusion models often add.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.color import lab_to_rgb, rgb_to_lab

from ..errors import BatchSizeError
from .align import warp_image
from .crops import FaceCrops


def feather_mask(size: int, feather: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """[S, S] mask: 1 in the middle, falling smoothly to 0 over `feather` x size at each edge."""
    ramp = max(feather * size, 1e-6)
    coords = torch.arange(size, dtype=torch.float32, device=device)
    distance = torch.minimum(coords, size - 1 - coords)
    edge = ((distance + 0.5) / ramp).clamp(0, 1)
    edge = edge * edge * (3 - 2 * edge)
    return edge[:, None] * edge[None, :]


def match_colors(edited: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Move the Lab mean and standard deviation of `edited` [S, S, 3] to `reference`'s,
    measured where `mask` [S, S] is set."""
    weights = mask.reshape(-1, 1) / mask.sum().clamp_min(1e-6)
    lab_edit = rgb_to_lab(edited.permute(2, 0, 1)).reshape(3, -1).T
    lab_ref = rgb_to_lab(reference.permute(2, 0, 1)).reshape(3, -1).T

    def stats(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (lab * weights).sum(0)
        std = (((lab - mean) ** 2) * weights).sum(0).sqrt()
        return mean, std

    mean_e, std_e = stats(lab_edit)
    mean_r, std_r = stats(lab_ref)
    matched = (lab_edit - mean_e) * (std_r / std_e.clamp_min(1e-3)) + mean_r
    rgb = lab_to_rgb(matched.T.reshape(3, *edited.shape[:2]))
    return rgb.permute(1, 2, 0).clamp(0, 1)


def soften(masks: torch.Tensor, fraction: float) -> torch.Tensor:
    """[N, S, S] masks with edges blurred over `fraction` x S (a box filter): the soft edge a
    pasted region needs so that it blends in. Zero stays zero beyond that width, so pixels
    farther from the mask are kept exactly."""
    radius = round(fraction * masks.shape[-1])
    if radius <= 0:
        return masks
    return F.avg_pool2d(masks[:, None].float(), 2 * radius + 1, stride=1, padding=radius,
                        count_include_pad=False)[:, 0]


def paste_back(
    images: torch.Tensor,
    faces: FaceCrops,
    crops: torch.Tensor | None = None,
    feather: float = 0.1,
    color_match: bool = False,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return a copy of `images` [B, H, W, 3] with each face's crop pasted where it came from.

    `crops` [N, S, S, 3] are the edited crops (default: the faces' own crops); `masks`
    [N, S, S] (or one for all) optionally limit what is pasted (e.g. the fusion mask of an
    edit). Frames without a face are returned unchanged; pixels where the blend weight is 0
    keep their exact values.
    """
    crops = checked_crops(images, faces, crops, masks)
    out = images.clone()
    paste_into(out, faces, crops, feather, color_match, masks)
    return out


def checked_crops(images: torch.Tensor, faces: FaceCrops, crops: torch.Tensor | None = None,
                  masks: torch.Tensor | None = None) -> torch.Tensor:
    """The crops to paste at the faces' crop size, once the batches are known to fit: checked
    before any pixel is written."""
    crops = faces.crops if crops is None else crops
    if crops.shape[0] != len(faces):
        raise BatchSizeError(
            f"{crops.shape[0]} edited crops were given for {len(faces)} faces; connect the crops "
            "made from these same faces."
        )
    _check_images(images, faces)
    if masks is not None and masks.shape[0] not in (1, len(faces)):
        raise BatchSizeError(f"{masks.shape[0]} masks were given for {len(faces)} faces; give one mask, or one per "
                             f"face.")
    if crops.shape[1:3] != faces.crops.shape[1:3]:
        crops = torch.nn.functional.interpolate(
            crops.permute(0, 3, 1, 2), size=faces.crops.shape[1:3], mode="bicubic", antialias=True
        ).permute(0, 2, 3, 1).clamp(0, 1)
    return crops


def paste_into(out: torch.Tensor, faces: FaceCrops, crops: torch.Tensor, feather: float = 0.1,
               color_match: bool = False, masks: torch.Tensor | None = None,
               area: torch.Tensor | None = None) -> None:
    """Paste checked crops into `out` [B, H, W, 3] in place and, given `area` [B, H, W], keep
    the blend weights there too. A host pastes a long video chunk by chunk of faces through
    this, showing progress and stopping between chunks, with one copy of the frames."""
    for i, mask, window, alpha in _placed_weights(faces, feather, masks):
        crop = match_colors(crops[i], faces.crops[i], mask) if color_match else crops[i]
        back = warp_image(crop.permute(2, 0, 1), window.matrix, window.hw, padding="zeros")
        owner = int(faces.image_index[i])
        region = out[owner, window.rows, window.cols]
        region.copy_(region * (1 - alpha[..., None]) + back.permute(1, 2, 0).clamp(0, 1) * alpha[..., None])
        if area is not None:
            reached = area[owner, window.rows, window.cols]
            reached.copy_(torch.maximum(reached, alpha))


def _check_images(images: torch.Tensor, faces: FaceCrops) -> None:
    if tuple(images.shape[1:3]) != tuple(faces.image_hw):
        raise BatchSizeError(
            f"The images are {images.shape[2]}x{images.shape[1]} but the faces were found in "
            f"{faces.image_hw[1]}x{faces.image_hw[0]} images; paste into the images the faces came from."
        )
    if int(faces.image_index.max()) >= images.shape[0]:
        raise BatchSizeError(
            f"The faces come from a batch of at least {int(faces.image_index.max()) + 1} images "
            f"but {images.shape[0]} were given to paste into."
        )


def _placed_weights(faces: FaceCrops, feather: float,
                    masks: torch.Tensor | None) -> Iterator[tuple[int, torch.Tensor, _Window, torch.Tensor]]:
    """Per face: its index, its crop-space blend weights (the feathered border, times its mask
    if given; one mask serves every face), the window of its image it reaches, and the
    weights warped into that window."""
    border = feather_mask(faces.size, feather, faces.crops.device)
    inverse = faces.inverse_matrices
    for i in range(len(faces)):
        mask = border if masks is None else border * masks[i % masks.shape[0]].to(border)
        window = _Window.of(inverse[i], faces.size, faces.image_hw)
        yield i, mask, window, _to_window(mask, window)


@dataclass(frozen=True)
class _Window:
    """The part of an image a crop can reach when warped back: warping into it instead of the
    whole frame costs the face's area, not the image's (a 4K frame or a long video)."""

    top: int
    left: int
    hw: tuple[int, int]
    matrix: torch.Tensor  # crop pixels -> window pixels

    # Crop-space bounds that still carry weight: a bicubic kernel reaches 2 pixels past the edge.
    REACH = 2

    @classmethod
    def of(cls, inverse: torch.Tensor, size: int, image_hw: tuple[int, int]) -> _Window:
        low, high = -cls.REACH, size - 1 + cls.REACH
        corners = inverse.new_tensor([[low, low], [high, low], [low, high], [high, high]])
        mapped = corners @ inverse[:, :2].T + inverse[:, 2]
        height, width = image_hw
        left = min(max(math.floor(float(mapped[:, 0].min())) - 1, 0), width)
        top = min(max(math.floor(float(mapped[:, 1].min())) - 1, 0), height)
        right = max(min(math.ceil(float(mapped[:, 0].max())) + 2, width), left)
        bottom = max(min(math.ceil(float(mapped[:, 1].max())) + 2, height), top)
        matrix = inverse.clone()
        matrix[0, 2] -= left
        matrix[1, 2] -= top
        return cls(top, left, (bottom - top, right - left), matrix)

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.hw[0])

    @property
    def cols(self) -> slice:
        return slice(self.left, self.left + self.hw[1])


def _to_window(mask: torch.Tensor, window: _Window) -> torch.Tensor:
    """A crop-space [S, S] mask warped into its window of the image, [h, w] in 0..1."""
    return warp_image(mask[None], window.matrix, window.hw, mode="bilinear", padding="zeros")[0].clamp(0, 1)


def face_coverage(faces: FaceCrops, batch_size: int, feather: float = 0.1) -> torch.Tensor:
    """[B, H, W] mask of where paste-back writes in each image (the union over its faces)."""
    area = faces.crops.new_zeros(batch_size, *faces.image_hw)
    for i, _, window, alpha in _placed_weights(faces, feather, None):
        region = area[int(faces.image_index[i]), window.rows, window.cols]
        region.copy_(torch.maximum(region, alpha))
    return area
