"""Putting (edited) crops back into the images they came from.

Each crop is warped back with the inverse of its alignment and blended through a mask that
fades out towards the crop border, so no seam shows. Colour matching optionally moves the
edited crop's Lab mean and spread to the original crop's inside the mask, which hides the
colour drift diffusion models often add.
"""

from __future__ import annotations

import torch
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
    [N, S, S] optionally limit what is pasted (e.g. a parsing mask of the face).
    """
    crops = faces.crops if crops is None else crops
    if crops.shape[0] != len(faces):
        raise BatchSizeError(
            f"{crops.shape[0]} edited crops were given for {len(faces)} faces; connect the crops "
            "made from these same faces."
        )
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
    if crops.shape[1:3] != faces.crops.shape[1:3]:
        crops = torch.nn.functional.interpolate(
            crops.permute(0, 3, 1, 2), size=faces.crops.shape[1:3], mode="bicubic", antialias=True
        ).permute(0, 2, 3, 1).clamp(0, 1)
    if masks is not None and masks.shape[0] not in (1, len(faces)):
        raise BatchSizeError(f"{masks.shape[0]} masks were given for {len(faces)} faces; give one mask, or one per "
                             f"face.")
    out = images.clone()
    border = feather_mask(faces.size, feather, images.device)
    inverse = faces.inverse_matrices
    for i in range(len(faces)):
        mask = border if masks is None else border * masks[i % masks.shape[0]].to(border)
        crop = crops[i]
        if color_match:
            crop = match_colors(crop, faces.crops[i], mask)
        target = int(faces.image_index[i])
        back = warp_image(crop.permute(2, 0, 1), inverse[i], faces.image_hw, padding="zeros")
        alpha = _to_image(mask, inverse[i], faces.image_hw)[..., None]
        out[target] = out[target] * (1 - alpha) + back.permute(1, 2, 0).clamp(0, 1) * alpha
    return out


def _to_image(mask: torch.Tensor, inverse: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """A crop-space [S, S] mask warped to its image by the crop's inverse matrix, [H, W] in 0..1."""
    return warp_image(mask[None], inverse, image_hw, mode="bilinear", padding="zeros")[0].clamp(0, 1)


def face_coverage(faces: FaceCrops, batch_size: int, feather: float = 0.1) -> torch.Tensor:
    """[B, H, W] mask of where paste-back writes in each image (the union over its faces)."""
    coverage = faces.crops.new_zeros(batch_size, *faces.image_hw)
    border = feather_mask(faces.size, feather, faces.crops.device)
    for owner, inverse in zip(faces.image_index.tolist(), faces.inverse_matrices, strict=True):
        coverage[owner] = torch.maximum(coverage[owner], _to_image(border, inverse, faces.image_hw))
    return coverage
