"""The face crop FaceXFormer reads, and the maps between its pixels and the image's.

As in the authors' inference: the detector's box grows by half its width and height (a
quarter on each side), is clamped to the image, and its corners are truncated to whole
pixels (PIL's crop of int() coordinates). That region is resized to 224x224 without
keeping its aspect ratio, with antialiased bicubic: PIL's filter, which torchvision's
Resize applies to a PIL image. torch's antialiased bicubic uses the same kernel (a = -0.5)
and support; tests/test_face_analysis.py measures the difference on real faces.

Image coordinates are pixels with centres on integers (faces/align.py's convention); a
crop box is (x1, y1, x2, y2) with x2, y2 exclusive, so the crop spans x1 - 0.5 to x2 - 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import FaceTooSmallError, UsageError
from .facexformer import INPUT_SIZE

MARGIN = 0.5  # of the box's width and height, half on each side


def analysis_boxes(boxes: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """[N, 4] detector boxes (image pixels, float) -> [N, 4] long crop boxes: enlarged,
    clamped to the image, truncated to whole pixels."""
    check_boxes(boxes)
    height, width = image_hw
    boxes = boxes.detach().to("cpu", torch.float64)
    half_growth = (boxes[:, 2:] - boxes[:, :2]) * (MARGIN / 2)
    limits = boxes.new_tensor([width, height])
    low = (boxes[:, :2] - half_growth).clamp(min=0)
    high = torch.minimum(boxes[:, 2:] + half_growth, limits)
    crops = torch.cat([low, high], 1).trunc().long()  # int() of a value >= 0 is its floor
    for index, (box, crop) in enumerate(zip(boxes.tolist(), crops.tolist(), strict=True)):
        if crop[2] <= crop[0] or crop[3] <= crop[1]:
            raise _empty_crop(index, box, crop, image_hw)
    return crops


def check_boxes(boxes: torch.Tensor) -> None:
    """Boxes must be [N, 4], finite, and at least their own corners apart (x2 > x1, y2 > y1)."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise UsageError(f"face boxes have shape {tuple(boxes.shape)}; expected [faces, 4] (x1, y1, x2, y2).")
    if not torch.isfinite(boxes).all():
        raise UsageError("a face box holds NaN or infinity; pass the boxes the detector gave.")
    flipped = ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).nonzero().flatten().tolist()
    if flipped:
        raise UsageError(f"face box {flipped[0]} is {boxes[flipped[0]].tolist()}: x2 and y2 must be greater than "
                         "x1 and y1 (boxes are x1, y1, x2, y2 in image pixels).")


def _empty_crop(index: int, box: list[float], crop: list[int], image_hw: tuple[int, int]) -> Exception:
    height, width = image_hw
    corners = ", ".join(f"{v:.1f}" for v in box)
    if box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
        return UsageError(f"face box {index} ({corners}) lies outside the {width}x{height} image; boxes are in "
                          "the pixels of the image they were found in.")
    return FaceTooSmallError(f"face {index} at {corners} is too small to analyse: its crop {crop} is less than a "
                             "pixel wide. Use a larger or closer image.")


def cut_crops(images: torch.Tensor, crop_boxes: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    """The crops of a [B, H, W, 3] float batch as a [N, 3, 224, 224] float batch in 0..1."""
    crops = images.new_empty(len(crop_boxes), 3, INPUT_SIZE, INPUT_SIZE)
    for face, ((x1, y1, x2, y2), owner) in enumerate(zip(crop_boxes.tolist(), image_index.tolist(), strict=True)):
        region = images[owner, y1:y2, x1:x2].permute(2, 0, 1)[None]
        resized = F.interpolate(region, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True,
                                align_corners=False)
        crops[face] = resized[0].clamp(0, 1)  # bicubic overshoots; PIL's 8-bit output saturates the same way
    return crops


def crop_points_to_image(points: torch.Tensor, crop_boxes: torch.Tensor) -> torch.Tensor:
    """[N, K, 2] points in the network's [-1, 1] crop units -> image pixels.

    Upstream reads a point as 224-crop pixel ((p + 1) * 224 - 1) / 2; that crop pixel's
    centre lies (u + 0.5) * size / 224 - 0.5 into the box, so p = -1 is the crop's outer
    edge x1 - 0.5 and p = 1 its far edge x2 - 0.5, whatever the box's size.
    """
    boxes = crop_boxes.to(points.device, points.dtype)
    origin, size = boxes[:, None, :2], (boxes[:, None, 2:] - boxes[:, None, :2])
    return origin + (points + 1) * size / 2 - 0.5


def crop_labels_to_image(labels: torch.Tensor, crop_boxes: torch.Tensor, image_index: torch.Tensor,
                         image_count: int, image_hw: tuple[int, int]) -> torch.Tensor:
    """[N, S, S] crop label maps -> one [B, H, W] map per image, 0 where no face is.

    Each crop is resized to its box with nearest-exact (the crop pixel whose area holds
    the image pixel's centre) and written where its label is not 0, so a face's background
    never covers a neighbour's parts; where two faces' parts overlap, the later face wins.
    """
    maps = labels.new_zeros(image_count, *image_hw)
    for face, ((x1, y1, x2, y2), owner) in enumerate(zip(crop_boxes.tolist(), image_index.tolist(), strict=True)):
        resized = F.interpolate(labels[face][None, None].float(), size=(y2 - y1, x2 - x1), mode="nearest-exact")
        resized = resized[0, 0].to(labels.dtype)
        window = maps[owner, y1:y2, x1:x2]
        window[resized != 0] = resized[resized != 0]
    return maps
