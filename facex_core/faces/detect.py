"""Face detection with insightface's SCRFD (bounding box + 5 keypoints), and face choice.

The detector ONNX file is loaded on its own through insightface's model zoo, so neither
the recognition models of a pack nor any download are touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import FaceIndexError, FaceTooSmallError, ImageInputError, ModelFileError, NoFaceError, UsageError
from ..images import to_uint8
from ..models.locate import require_file
from ..runtime import default_device, onnx_providers

MIN_IMAGE_SIDE = 16
FACE_CHOICES = ("largest", "index", "all")


@dataclass(frozen=True)
class DetectedFace:
    """One detection in image pixels: box [x1, y1, x2, y2], kps [5, 2] (eyes, nose, mouth
    corners, image-left first), detector confidence."""

    box: np.ndarray
    kps: np.ndarray
    score: float

    @property
    def size(self) -> float:
        """The shorter side of the box, the number users compare with a minimum size."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


class FaceDetector:
    """SCRFD from an insightface pack (det_10g.onnx or scrfd_10g_bnkps.onnx). `threshold` is the
    default confidence; a call may give its own, so one loaded detector serves every threshold."""

    def __init__(
        self,
        model_path: str | Path,
        device: torch.device | str | None = None,
        det_size: int = 640,
        threshold: float = 0.5,
    ) -> None:
        from insightface.model_zoo import model_zoo

        path = require_file(model_path, "face detector")
        device = torch.device(device) if device is not None else default_device()
        try:
            model = model_zoo.get_model(str(path), providers=onnx_providers(device))
        except Exception as exc:  # onnxruntime raises several unrelated types for bad files
            raise ModelFileError(
                f"The face detector {path} could not be loaded ({type(exc).__name__}: {exc}); "
                "the file is corrupt or truncated, download it again."
            ) from exc
        if getattr(model, "taskname", None) != "detection":
            kind = getattr(model, "taskname", "an unknown model")
            raise ModelFileError(
                f"{path} is not a face detector (insightface reads it as {kind}); use det_10g.onnx "
                "(buffalo_l) or scrfd_10g_bnkps.onnx (antelopev2)."
            )
        if not model.use_kps:
            raise ModelFileError(
                f"The detector {path} gives no facial keypoints; FaceX aligns faces on 5 keypoints, "
                "use det_10g.onnx or scrfd_10g_bnkps.onnx."
            )
        model.prepare(-1 if device.type == "cpu" else 0, input_size=(det_size, det_size))
        self.model = model
        self.det_size = det_size
        self.threshold = threshold

    def detect(self, image_rgb: np.ndarray, image_index: int = 0, threshold: float | None = None) -> list[DetectedFace]:
        """All faces in one uint8 RGB [H, W, 3] image scoring at least `threshold` (the
        detector's own when None), in no particular order."""
        height, width = image_rgb.shape[:2]
        if min(height, width) < MIN_IMAGE_SIDE:
            raise ImageInputError(
                f"Image {image_index} is {width}x{height} pixels, too small to hold a face "
                f"(at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed)."
            )
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])
        self.model.det_thresh = self.threshold if threshold is None else threshold  # read by insightface's detect
        boxes, kpss = self.model.detect(bgr, input_size=(self.det_size, self.det_size), max_num=0)
        return [
            DetectedFace(box=box[:4].astype(np.float64), kps=kps.astype(np.float64), score=float(box[4]))
            for box, kps in zip(boxes, kpss, strict=True)
        ]

    def detect_batch(self, images: torch.Tensor) -> list[list[DetectedFace]]:
        """Faces of every image of a [B, H, W, 3] float batch."""
        return [self.detect(to_uint8(image), index) for index, image in enumerate(images)]


def choose_faces(
    faces: list[DetectedFace],
    choice: str = "largest",
    index: int = 0,
    min_size: float = 32.0,
    image_index: int = 0,
    skip_faceless: bool = False,
) -> list[DetectedFace]:
    """Pick faces from one image: the largest, one by index (left to right), or all that
    reach `min_size` (a chosen face below it is an error, as is 'all' with none left).
    With `skip_faceless`, an image without a usable face (none found, or the chosen one too
    small) gives no face instead, so a video's frames without a face are kept as they are."""
    if choice not in FACE_CHOICES:
        raise UsageError(f"face choice must be one of {FACE_CHOICES}, not {choice!r}")
    try:
        return _chosen(faces, choice, index, min_size, image_index)
    except (NoFaceError, FaceTooSmallError):
        if skip_faceless:
            return []
        raise


def _chosen(faces: list[DetectedFace], choice: str, index: int, min_size: float,
            image_index: int) -> list[DetectedFace]:
    if not faces:
        raise NoFaceError(
            f"No face was found in image {image_index}. Use an image where a face is clearly "
            "visible, or lower the detection threshold."
        )
    ordered = sorted(faces, key=lambda face: face.box[0])
    if choice == "all":
        usable = [face for face in ordered if face.size >= min_size]
        if not usable:
            raise _too_small(max(ordered, key=lambda face: face.size), min_size, image_index)
        return usable
    if choice == "largest":
        chosen = max(faces, key=lambda face: face.area)
    else:
        if not -len(ordered) <= index < len(ordered):
            raise FaceIndexError(
                f"Image {image_index}: face index {index} was asked for, but {len(ordered)} "
                f"face(s) were found (indices 0..{len(ordered) - 1}, counted left to right)."
            )
        chosen = ordered[index]
    if chosen.size < min_size:
        raise _too_small(chosen, min_size, image_index)
    return [chosen]


def _too_small(face: DetectedFace, min_size: float, image_index: int) -> FaceTooSmallError:
    return FaceTooSmallError(
        f"Image {image_index}: the face at x={face.box[0]:.0f}, y={face.box[1]:.0f} is "
        f"{face.size:.0f} px, below the minimum of {min_size:.0f} px. Use a larger or "
        "closer image, or lower the minimum face size."
    )
