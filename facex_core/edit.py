"""One FaceX edit without ComfyUI: detect, FORD, FORS, FaceX, sampling, paste-back.

This is the standalone twin of the node graph: `python -m facex_core edit` calls it, and
tests run it end to end on random-weight models.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ImageWithoutFaceError, NoFaceError
from .faces.crops import FaceCrops, detect_and_align
from .faces.detect import FaceDetector
from .faces.paste import paste_back, soften
from .ford.clip_vision import ClipVisionEncoder
from .ford.extractors import FordExtractors, FordOutputs
from .ford.region_features import encode_regions
from .fors.assemble import assemble
from .fors.reference import DEFAULT_MARGIN, FaceImages, compose_reference
from .fors.representation import FaceRepresentation, scale_expression, set_gaze, set_pose
from .fors.tasks import TaskRow, row_for
from .images import load_image_batch, to_image_batch
from .model.diffusers_binding import DiffusersFRC
from .model.facex import FaceXModel
from .model.sampling import DEFAULT_SAMPLING, SamplingSettings, empty_prompt, sample_crops
from .model.sd_checkpoint import load_single_file
from .model.weights import FaceXFile, load_facex
from .models.edit_files import EditFiles, find_edit_files
from .models.locate import ModelRoots


@dataclass(frozen=True)
class MotionEdit:
    """User-set motion for motion editing: angles in degrees (None keeps the target's)."""

    pitch: float | None = None
    yaw: float | None = None
    roll: float | None = None
    relative: bool = False
    gaze: tuple[float, float] | None = None  # yaw, pitch
    expression_scale: float = 1.0

    def apply(self, rep: FaceRepresentation) -> FaceRepresentation:
        rep = set_pose(rep, self.pitch, self.yaw, self.roll, self.relative)
        if self.gaze is not None:
            rep = set_gaze(rep, *self.gaze)
        return scale_expression(rep, self.expression_scale) if self.expression_scale != 1.0 else rep


@dataclass(frozen=True)
class EditJob:
    task: str
    target: Path
    source: Path | None = None
    reference: Path | None = None
    hole: Path | None = None  # white where inpainting fills, in target-image pixels
    regions: dict[str, str] = field(default_factory=dict)  # region -> input, for attribute/mixture editing
    motion: MotionEdit = MotionEdit()

    def row(self) -> TaskRow:
        return row_for(self.task, self.regions, identity="source" if self.source is not None else "target")


@dataclass(frozen=True)
class EditorFace:
    """An input image's largest face: aligned, measured by the extractors, represented."""

    image: torch.Tensor  # [1, H, W, 3]
    faces: FaceCrops
    outputs: FordOutputs
    representation: FaceRepresentation

    @property
    def images(self) -> FaceImages:
        return FaceImages(self.faces.crops, self.outputs.masks)


@dataclass(frozen=True)
class AnimatedFrame:
    """One frame of an animation: the edited frame [1, H, W, 3], or the input frame when it
    holds no face (edited False)."""

    name: str
    image: torch.Tensor
    edited: bool


@dataclass(frozen=True)
class Generated:
    """One edit before paste-back: the target (and source) face as measured, the generated
    crops [N, S, S, 3] aligned like the target's, and the fusion mask [N, S, S] (1 where the
    model could change pixels)."""

    target: EditorFace
    source: EditorFace | None
    crops: torch.Tensor
    fusion: torch.Tensor


class FaceXEditor:
    """Every model an edit needs, loaded once."""

    def __init__(self, files: EditFiles, base_config: str | None = None, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.facex_file: FaceXFile = load_facex(files.facex, self.device)
        self.facex: FaceXModel = self.facex_file.model.eval()
        config = self.facex.config
        self.sd = load_single_file(files.checkpoint, base_config or config.family, self.device)
        self.binding = DiffusersFRC(self.sd.unet, self.facex)
        self.detector = FaceDetector(files.roles["detection"], self.device)
        self.extractors = FordExtractors.from_files(files.roles, self.device)
        self.clip = (ClipVisionEncoder.from_path(files.clip, self.device) if files.clip is not None
                     else ClipVisionEncoder.from_state(self.facex_file.clip_state, files.facex, self.device))

    @classmethod
    def open(cls, checkpoint: Path, facex: Path, roots: ModelRoots, base_config: str | None = None,
             device: torch.device | str = "cpu") -> FaceXEditor:
        """The editor of a checkpoint and FaceX file (paths, or names under the models folder)."""
        return cls(find_edit_files(Path(checkpoint), Path(facex), roots), base_config, device)

    @torch.no_grad()
    def face(self, path: Path) -> EditorFace:
        """An image file's largest face: crops, extractor outputs and representation."""
        return self.face_in(load_image_batch(path), path)

    @torch.no_grad()
    def face_in(self, images: torch.Tensor, name: Path | str) -> EditorFace:
        """The largest face of a [1, H, W, 3] image; `name` says which image in errors."""
        try:
            faces = detect_and_align(images, self.detector, self.facex.config.resolution)
        except NoFaceError as error:
            raise ImageWithoutFaceError(name) from error
        outputs = self.extractors.run(faces)
        regions = encode_regions(self.clip, self.facex.region_adapter, faces.crops, outputs.masks,
                                 self.facex.config.clip_layers)
        return EditorFace(images, faces, outputs, FaceRepresentation.from_ford(outputs, regions))

    def generate(self, job: EditJob, settings: SamplingSettings = DEFAULT_SAMPLING) -> Generated:
        """The generated crop of the target's face, before paste-back (evaluation measures it)."""
        source = self.face(job.source) if job.source else None
        reference = self.face(job.reference) if job.reference else None
        return self._generate(job, self.face(job.target), source, reference, settings)

    def edit(self, job: EditJob, settings: SamplingSettings = DEFAULT_SAMPLING) -> torch.Tensor:
        """The edited target image [1, H, W, 3]."""
        return _pasted(self.generate(job, settings))

    def animate(self, job: EditJob, frames: Iterable[tuple[str, np.ndarray]],
                settings: SamplingSettings = DEFAULT_SAMPLING) -> Iterator[AnimatedFrame]:
        """The source face driven by each (name, uint8 RGB) target frame, in order. A frame
        without a face comes back unchanged (edited=False), so a clip never loses a frame."""
        source = self.face(job.source)
        for name, pixels in frames:
            image = to_image_batch(pixels, name)
            try:
                target = self.face_in(image, name)
            except ImageWithoutFaceError:
                yield AnimatedFrame(name, image, edited=False)
                continue
            yield AnimatedFrame(name, _pasted(self._generate(job, target, source, None, settings)), edited=True)

    @torch.no_grad()
    def _generate(self, job: EditJob, target: EditorFace, source: EditorFace | None, reference: EditorFace | None,
                  settings: SamplingSettings) -> Generated:
        row = job.row()
        target_rep = job.motion.apply(target.representation) if job.task == "motion_editing" else target.representation
        hole = target.faces.to_crops(load_image_batch(job.hole)[0].mean(-1)) if job.hole else None
        rep = assemble(row, source and source.representation, target_rep, reference and reference.representation)
        i_r, fusion = compose_reference(row, source and source.images, target.images,
                                        reference and reference.images, hole)
        context = self.facex.context(rep, i_r)
        with self.binding:
            crops = sample_crops(self.sd.unet, self.sd.vae, self.sd.scheduler_config, self.binding, context,
                                 empty_prompt(self.sd.text_encoder), target.faces.crops, fusion, settings)
        return Generated(target, source, crops, fusion)


def _pasted(generated: Generated) -> torch.Tensor:
    """The generated crops pasted into the target image through the feathered fusion mask, so
    every pixel the task keeps stays the target's."""
    return paste_back(generated.target.image, generated.target.faces, generated.crops,
                      masks=soften(generated.fusion, DEFAULT_MARGIN))
