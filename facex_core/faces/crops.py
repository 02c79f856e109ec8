"""Aligned face crops with everything needed to go back to the original images.

FaceCrops is what the node layer calls FACEX_FACES: each crop remembers the image of the
batch it came from, its keypoints and box, and the matrix from image to crop, so every
later stage can work in crop space and the result can be pasted back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..errors import BatchSizeError, NoFaceError, UsageError
from .align import CROP_SIZES, box_corners, eye_anchored_matrix, ffhq_template, invert, transform_points, warp_image
from .detect import DetectedFace, FaceDetector, choose_faces


@dataclass(frozen=True)
class FaceCrops:
    """N aligned crops taken from a batch of B images of one size."""

    crops: torch.Tensor  # [N, S, S, 3] float 0..1
    matrices: torch.Tensor  # [N, 2, 3] image pixels -> crop pixels
    kps: torch.Tensor  # [N, 5, 2] image pixels
    boxes: torch.Tensor  # [N, 4] x1, y1, x2, y2 in image pixels
    scores: torch.Tensor  # [N]
    image_index: torch.Tensor  # [N] long, the source image of each crop
    image_hw: tuple[int, int]  # height and width of the source images

    def __len__(self) -> int:
        return self.crops.shape[0]

    @property
    def size(self) -> int:
        return self.crops.shape[1]

    @property
    def inverse_matrices(self) -> torch.Tensor:
        """[N, 2, 3] crop pixels -> image pixels."""
        return invert(self.matrices)

    @property
    def crop_kps(self) -> torch.Tensor:
        """Keypoints in crop pixels."""
        return transform_points(self.matrices, self.kps)

    @property
    def crop_boxes(self) -> torch.Tensor:
        """The detection boxes in crop pixels, as the axis-aligned bounds of their corners."""
        mapped = transform_points(self.matrices, box_corners(self.boxes))
        return torch.cat([mapped.amin(1), mapped.amax(1)], -1)

    def to_crops(self, masks: torch.Tensor) -> torch.Tensor:
        """Masks drawn on the source images ([B, H, W], or one [H, W] for all) as [N, S, S] crop masks."""
        frames = masks.reshape(-1, *masks.shape[-2:]).float()
        if tuple(frames.shape[1:]) != tuple(self.image_hw):
            raise BatchSizeError(
                f"The mask is {frames.shape[2]}x{frames.shape[1]} but the faces' image is "
                f"{self.image_hw[1]}x{self.image_hw[0]}; draw the mask on that image."
            )
        warped = [
            warp_image(frames[min(int(owner), frames.shape[0] - 1)][None], matrix, (self.size, self.size),
                       mode="bilinear", padding="zeros")[0]
            for owner, matrix in zip(self.image_index, self.matrices, strict=True)
        ]
        return (torch.stack(warped) > 0.5).float()

    def with_crops(self, crops: torch.Tensor) -> FaceCrops:
        """The same faces with other pixels (e.g. generated), for paste-back."""
        return replace(self, crops=crops)

    def select(self, indices: torch.Tensor | list[int]) -> FaceCrops:
        indices = torch.as_tensor(indices, dtype=torch.long)
        fields = ("crops", "matrices", "kps", "boxes", "scores", "image_index")
        return replace(self, **{name: getattr(self, name)[indices] for name in fields})


def align_faces(images: torch.Tensor, faces_per_image: list[list[DetectedFace]], size: int = 512) -> FaceCrops:
    """Crop every listed face of a [B, H, W, 3] batch to the FFHQ template at `size`."""
    if size not in CROP_SIZES:
        raise UsageError(f"crop size must be one of {CROP_SIZES}, not {size}")
    template = ffhq_template(size)
    count = sum(len(faces) for faces in faces_per_image)
    if count == 0:
        raise NoFaceError(f"No face to align: none of the {len(faces_per_image)} image(s) has a face.")
    # Filled in place: a long video's crops are held once, not once in a list and again stacked.
    crops = images.new_empty(count, size, size, 3)
    matrices, kps, boxes, scores, owners = [], [], [], [], []
    for image_index, faces in enumerate(faces_per_image):
        chw = images[image_index].permute(2, 0, 1)
        for face in faces:
            matrix = torch.as_tensor(eye_anchored_matrix(face.kps, template), dtype=torch.float32, device=images.device)
            crops[len(matrices)] = warp_image(chw, matrix, (size, size)).clamp(0, 1).permute(1, 2, 0)
            matrices.append(matrix)
            kps.append(torch.as_tensor(face.kps, dtype=torch.float32))
            boxes.append(torch.as_tensor(face.box, dtype=torch.float32))
            scores.append(face.score)
            owners.append(image_index)
    device = images.device
    return FaceCrops(
        crops=crops,
        matrices=torch.stack(matrices),
        kps=torch.stack(kps).to(device),
        boxes=torch.stack(boxes).to(device),
        scores=torch.tensor(scores, dtype=torch.float32, device=device),
        image_index=torch.tensor(owners, dtype=torch.long, device=device),
        image_hw=(images.shape[1], images.shape[2]),
    )


def detect_and_align(
    images: torch.Tensor,
    detector: FaceDetector,
    size: int = 512,
    choice: str = "largest",
    index: int = 0,
    min_size: float = 32.0,
    skip_faceless: bool = False,
) -> FaceCrops:
    """Detect, choose and align faces for every image of a [B, H, W, 3] batch."""
    detections = detector.detect_batch(images)
    chosen = [
        choose_faces(faces, choice, index, min_size, image_index, skip_faceless)
        for image_index, faces in enumerate(detections)
    ]
    return align_faces(images, chosen, size)

