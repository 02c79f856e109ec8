"""Face analysis with FaceXFormer: every face of a batch in one pass of every head, read
back into the input image's pixels and into named labels.

A face is given by its detector box and the image it is in; the analysis crop (the box
grown by half, as upstream; analysis_crops.py) goes through the network in chunks, so a
video's faces never sit in memory as 224 px crops all at once. Landmarks come back in
image pixels, head pose in degrees, every classifier as probabilities, parsing as labels
in crop space with a method that puts them back into the images. analysis_labels.py says
what each class and bin is, and how sure that is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BatchSizeError, ImageInputError, UnknownNameError, UsageError
from ..faces.crops import FaceCrops
from ..runtime import weights_place
from .analysis_crops import analysis_boxes, crop_labels_to_image, crop_points_to_image, cut_crops
from .analysis_labels import (
    AGE_BINS,
    ATTRIBUTES,
    GENDERS,
    OCCLUSION_POINTS,
    PARSING_CLASSES,
    RACES,
    THRESHOLD,
)
from .facexformer import FACEXFORMER_B, INPUT_SIZE, LANDMARKS, FaceXFormer, FaceXFormerConfig, FaceXFormerOutput
from .normalize import IMAGENET, Normalize

POSE_ANGLES = ("pitch", "yaw", "roll")  # the pose head's order
CLASSIFIERS = {"age": AGE_BINS, "gender": GENDERS, "race": RACES}  # softmax heads: field -> bin labels
DEFAULT_CHUNK = 16
ChunkCallback = Callable[[int, int], None]  # (faces done, faces in all), after each chunk


@dataclass(frozen=True)
class FaceAnalysis:
    """What FaceXFormer read from N faces of B images of one size. Tensors are on the CPU."""

    boxes: torch.Tensor  # [N, 4] long: the analysis crops, x1, y1, x2, y2 (exclusive) in image pixels
    image_index: torch.Tensor  # [N] long: the image each face is in
    image_hw: tuple[int, int]
    image_count: int  # B, so per-image maps cover frames without a face
    landmarks: torch.Tensor  # [N, 68, 2] 300W / iBUG 68 points, image pixels
    occlusion: torch.Tensor  # [N, 29] probability that each COFW point is occluded (upstream: "visibility")
    pose_degrees: torch.Tensor  # [N, 3] pitch, yaw, roll
    attributes: torch.Tensor  # [N, 40] probabilities, ATTRIBUTES order
    age: torch.Tensor  # [N, 8] probabilities over AGE_BINS
    gender: torch.Tensor  # [N, 2] over GENDERS
    race: torch.Tensor  # [N, 5] over RACES
    parsing: torch.Tensor  # [N, 224, 224] uint8 PARSING_CLASSES labels in crop space

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def label_map(self) -> torch.Tensor:
        """[B, H, W] uint8 parsing labels in the images' pixels; 0 (background) where no face is."""
        return crop_labels_to_image(self.parsing, self.boxes, self.image_index, self.image_count, self.image_hw)

    def class_mask(self, classes: str | Iterable[str], label_map: torch.Tensor | None = None) -> torch.Tensor:
        """[B, H, W] float mask, 1 where the faces' parsing gives one of `classes` (PARSING_CLASSES
        names); `label_map` is this analysis's label_map() when the caller already made it."""
        names = [classes] if isinstance(classes, str) else list(classes)
        unknown = [name for name in names if name not in PARSING_CLASSES]
        if unknown or not names:
            raise UnknownNameError(f"parsing class {', '.join(unknown) or '(none given)'}: the classes are "
                                   f"{', '.join(PARSING_CLASSES)}.")
        wanted = torch.tensor([PARSING_CLASSES.index(name) for name in names], dtype=self.parsing.dtype)
        return torch.isin(self.label_map() if label_map is None else label_map, wanted).float()

    def as_json(self) -> dict:
        """Every face's readings with their names, JSON-ready (numbers rounded to what is meaningful)."""
        return {"faces": [self._face_json(face) for face in range(len(self))]}

    def _face_json(self, face: int) -> dict:
        classifiers = {}
        for field, labels in CLASSIFIERS.items():
            probabilities = getattr(self, field)[face].tolist()
            best = max(range(len(labels)), key=probabilities.__getitem__)
            classifiers[field] = {"label": labels[best], "probability": round(probabilities[best], 3),
                                  "probabilities": _named(labels, probabilities)}
        occlusion = self.occlusion[face].tolist()
        return {
            "image_index": int(self.image_index[face]),
            "box": self.boxes[face].tolist(),
            "head_pose_degrees": {angle: round(value, 2) for angle, value in
                                  zip(POSE_ANGLES, self.pose_degrees[face].tolist(), strict=True)},
            **classifiers,
            "attributes": _named(ATTRIBUTES, self.attributes[face].tolist()),
            "occluded_points": [point for point, p in enumerate(occlusion) if p >= THRESHOLD],
            "occlusion": [round(p, 3) for p in occlusion],
            "landmarks": [[round(x, 1), round(y, 1)] for x, y in self.landmarks[face].tolist()],
        }

    def as_text(self) -> str:
        """A few readable lines per face: pose, age, gender, race, the attributes present, occluded points."""
        return "\n".join(_face_text(index, face) for index, face in enumerate(self.as_json()["faces"]))


def _named(labels: tuple[str, ...], values: list[float]) -> dict[str, float]:
    return {label: round(value, 3) for label, value in zip(labels, values, strict=True)}


def _face_text(index: int, face: dict) -> str:
    pose = ", ".join(f"{angle} {value:.1f}" for angle, value in face["head_pose_degrees"].items())
    bins = ", ".join(f"{field} {face[field]['label']} ({face[field]['probability']:.2f})" for field in CLASSIFIERS)
    present = [f"{name} {p:.2f}" for name, p in face["attributes"].items() if p >= THRESHOLD]
    occluded = face["occluded_points"]
    return "\n".join([
        f"face {index} (image {face['image_index']}, crop {', '.join(map(str, face['box']))}):",
        f"  head pose (degrees): {pose}",
        f"  {bins}",
        f"  attributes (p >= {THRESHOLD}): {', '.join(present) or 'none'}",
        f"  occluded points (of {OCCLUSION_POINTS}, p >= {THRESHOLD}): {', '.join(map(str, occluded)) or 'none'}",
    ])


class FaceAnalyzer:
    """FaceXFormer on face boxes. It runs where its weights are at each call (`device`
    only says where they start), in their dtype, so a host may offload it between calls."""

    labels = PARSING_CLASSES

    def __init__(self, network: FaceXFormer, device: torch.device | str = "cpu") -> None:
        self.network = network.to(device).eval()
        self.normalize = Normalize(IMAGENET)

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu",
                  config: FaceXFormerConfig = FACEXFORMER_B) -> FaceAnalyzer:
        return cls(FaceXFormer.from_file(path, config=config), device)

    @torch.no_grad()
    def analyze(self, images: torch.Tensor, boxes: torch.Tensor, image_index: torch.Tensor | list[int],
                chunk_size: int = DEFAULT_CHUNK, on_chunk: ChunkCallback | None = None) -> FaceAnalysis:
        """Analyse the faces at `boxes` ([N, 4] detector boxes in image pixels) of a [B, H, W, 3]
        float batch, face n in image image_index[n]. `on_chunk(done, total)` is called after
        every `chunk_size` faces (a host's progress bar; it may raise to stop)."""
        _check_images(images)
        image_hw = (images.shape[1], images.shape[2])
        crop_boxes = analysis_boxes(boxes, image_hw)
        image_index = _check_owners(image_index, len(boxes), images.shape[0])
        if chunk_size < 1:
            raise UsageError(f"chunk_size {chunk_size}: must be at least 1 face per pass.")
        device, dtype = weights_place(self.network)
        total, parts = len(crop_boxes), []
        for start in range(0, total, chunk_size):
            chunk = slice(start, min(start + chunk_size, total))
            crops = cut_crops(images, crop_boxes[chunk], image_index[chunk]).to(device, torch.float32)
            parts.append(_readings(self.network(self.normalize(crops).to(dtype)), crop_boxes[chunk]))
            if on_chunk is not None:
                on_chunk(chunk.stop, total)
        fields = {name: torch.cat([part[name] for part in parts]) if parts else empty
                  for name, empty in _no_readings().items()}
        return FaceAnalysis(boxes=crop_boxes, image_index=image_index, image_hw=image_hw,
                            image_count=images.shape[0], **fields)

    def parse(self, faces: FaceCrops) -> torch.Tensor:
        """[N, S, S] PARSING_CLASSES labels in the aligned crops, so FaceXFormer can stand in
        for the BiSeNet parser (FaceParser.parse) of FaceX's region masks: each crop is
        analysed around its detector box, and beyond the analysis crop is background."""
        analysis = self.analyze(faces.crops, faces.crop_boxes, torch.arange(len(faces)))
        return analysis.label_map().long().to(faces.crops.device)

    def analyze_faces(self, images: torch.Tensor, faces: FaceCrops, chunk_size: int = DEFAULT_CHUNK,
                      on_chunk: ChunkCallback | None = None) -> FaceAnalysis:
        """Analyse the faces of a FaceCrops (FACEX_FACES) on the images they were found in,
        from their detector boxes (not from the aligned crops)."""
        _check_images(images)
        if tuple(faces.image_hw) != (images.shape[1], images.shape[2]):
            raise BatchSizeError(
                f"The faces were found in {faces.image_hw[1]}x{faces.image_hw[0]} images but these images are "
                f"{images.shape[2]}x{images.shape[1]}; give the images the faces were detected in.")
        return self.analyze(images, faces.boxes, faces.image_index, chunk_size, on_chunk)


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ImageInputError(f"images are {shape}; expected a [batch, height, width, 3] float tensor "
                              "(ComfyUI IMAGE layout).")
    if not images.is_floating_point():
        raise ImageInputError(f"images have dtype {images.dtype}; expected float values in 0..1.")


def _check_owners(image_index: torch.Tensor | list[int], faces: int, images: int) -> torch.Tensor:
    """The image of every face as a [N] long CPU tensor, each within the batch."""
    owners = torch.as_tensor(image_index, dtype=torch.long) if isinstance(image_index, list) else image_index.cpu()
    if owners.shape != (faces,) or owners.is_floating_point():
        raise UsageError(f"image_index has shape {tuple(owners.shape)} and dtype {owners.dtype}; expected {faces} "
                         "integers, one image per face box.")
    outside = ((owners < 0) | (owners >= images)).nonzero().flatten().tolist()
    if outside:
        raise BatchSizeError(f"face {outside[0]} is in image {int(owners[outside[0]])}, but the batch has {images} "
                             f"image(s) (0..{images - 1}).")
    return owners.long()


def _readings(output: FaceXFormerOutput, crop_boxes: torch.Tensor) -> dict[str, torch.Tensor]:
    """One chunk's network output as FaceAnalysis fields, on the CPU."""
    return {
        "landmarks": crop_points_to_image(output.landmarks.float().cpu(), crop_boxes),
        "occlusion": output.visibility.float().sigmoid().cpu(),
        "pose_degrees": (output.pose.float() * (180 / math.pi)).cpu(),
        "attributes": output.attributes.float().sigmoid().cpu(),
        "age": output.age.float().softmax(-1).cpu(),
        "gender": output.gender.float().softmax(-1).cpu(),
        "race": output.race.float().softmax(-1).cpu(),
        "parsing": output.parsing.argmax(1).to(torch.uint8).cpu(),
    }


def _no_readings() -> dict[str, torch.Tensor]:
    """The fields of an analysis of no face (a video's frames may hold none)."""
    return {
        "landmarks": torch.zeros(0, LANDMARKS, 2),
        "occlusion": torch.zeros(0, OCCLUSION_POINTS),
        "pose_degrees": torch.zeros(0, len(POSE_ANGLES)),
        "attributes": torch.zeros(0, len(ATTRIBUTES)),
        **{field: torch.zeros(0, len(labels)) for field, labels in CLASSIFIERS.items()},
        "parsing": torch.zeros(0, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8),
    }
