"""FaceXFormer Analyze: parsing masks, landmarks, head pose and attributes of every face."""

from __future__ import annotations

import json
from functools import partial
from operator import attrgetter
from pathlib import Path

import torch
from comfy_api.latest import io

from facex_core.faces.detect import FACE_CHOICES, choose_faces
from facex_core.ford.analysis_labels import MASK_GROUPS
from facex_core.ford.face_analysis import FaceAnalysis, FaceAnalyzer
from facex_core.images import to_image_batch, to_uint8
from facex_core.models.manifest import entries_for_role
from facex_core.previews import analysis_overlay

from .devices import output_device
from .faces import held_detector
from .held_models import Managed, file_key, held_network, load_for_run
from .loop import CHUNK, chunk_progress, frames
from .paths import resolve, role_choices
from .types import FaceXFaces

CATEGORY = "FaceX"


def _detected_boxes(images: torch.Tensor, detector: str, face: str, index: int, min_face_size: int,
                    threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Every chosen face's box and frame; a frame without a face gives none (its mask stays empty)."""
    model = held_detector(detector)
    boxes, owners = [], []
    for i in frames(range(images.shape[0]), images.shape[0]):
        for found in choose_faces(model.detect(to_uint8(images[i]), i, threshold), face, index, min_face_size, i,
                                  skip_faceless=True):
            boxes.append(torch.as_tensor(found.box, dtype=torch.float32))
            owners.append(i)
    return (torch.stack(boxes) if boxes else torch.zeros(0, 4)), torch.tensor(owners, dtype=torch.long)


def held_analyzer(choice: str) -> Managed[FaceAnalyzer]:
    """FaceXFormer, held in one slot for the analysis node and the Region Pooler's parser."""
    path = resolve("analysis", choice)
    return held_network("analysis", file_key(path), partial(FaceAnalyzer.from_file, path), attrgetter("network"))


def is_facexformer(choice: str) -> bool:
    """Whether a parser choice names FaceXFormer's file (the manifest's name for it)."""
    return Path(choice).name in {entry.filename for entry in entries_for_role("analysis")}


class FaceXFormerAnalyze(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXFormerAnalyze",
            display_name="FaceXFormer Analyze",
            category=CATEGORY,
            description="FaceXFormer on every face: face parsing (11 classes; no ears, glasses or hat class), 68 "
                        "landmarks, head pose, 40 attributes, age, gender and race, and which landmarks are "
                        "occluded. Faces come from the detector, or from FaceX Face Detect and Align.",
            inputs=[
                io.Image.Input("image", tooltip="Image or video frames to analyse."),
                io.Combo.Input("facexformer", options=role_choices("analysis"),
                               tooltip="FaceXFormer's published model.pt (saved as facexformer.pt) in "
                                       "models/facex_extractors."),
                io.Combo.Input("mask", options=list(MASK_GROUPS), default="face",
                               tooltip="The parsing class or group of classes the mask output shows."),
                io.Combo.Input("detector", options=role_choices("detection"),
                               tooltip="SCRFD file that finds the faces when no faces input is connected."),
                io.Combo.Input("face", options=list(FACE_CHOICES), default="all",
                               tooltip="Which detected faces of each frame to analyse."),
                io.Int.Input("index", default=0, min=0, max=63,
                             tooltip="With face = index: which face, counted left to right from 0."),
                io.Int.Input("min_face_size", default=32, min=8, max=1024,
                             tooltip="Detections smaller than this many pixels are left out."),
                io.Float.Input("threshold", default=0.5, min=0.05, max=0.99, step=0.01,
                               tooltip="Detector confidence needed to count as a face."),
                FaceXFaces.Input("faces", optional=True,
                                 tooltip="Faces from FaceX Face Detect and Align on this image: their detector boxes "
                                         "are analysed and the detector settings are not used."),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="Per frame, the chosen parsing classes of every face."),
                io.Image.Output(display_name="preview",
                                tooltip="Parsing tinted by region, the 68 landmarks and the head's axes."),
                io.String.Output(display_name="report",
                                 tooltip="Per face: head pose in degrees, age, gender, race, the attributes present "
                                         "and the occluded landmarks, as text."),
                io.String.Output(display_name="json",
                                 tooltip="Every reading per face as JSON, landmarks in image pixels."),
            ],
        )

    @classmethod
    def execute(cls, image, facexformer, mask, detector, face, index, min_face_size, threshold,
                faces=None) -> io.NodeOutput:
        images = to_image_batch(image)
        analyzer = held_analyzer(facexformer)
        if faces is None:
            boxes, owners = _detected_boxes(images, detector, face, index, min_face_size, threshold)
            load_for_run(analyzer)
            analysis = analyzer.extractor.analyze(images, boxes, owners, CHUNK, chunk_progress(len(boxes)))
        else:
            load_for_run(analyzer)
            analysis = analyzer.extractor.analyze_faces(images, faces, CHUNK, chunk_progress(len(faces)))
        labels = analysis.label_map()
        return io.NodeOutput(analysis.class_mask(MASK_GROUPS[mask], labels).to(output_device()),
                             analysis_overlay(images, analysis, labels), _report(analysis),
                             json.dumps(analysis.as_json()))


def _report(analysis: FaceAnalysis) -> str:
    return analysis.as_text() if len(analysis) else "No face found."


NODES = [FaceXFormerAnalyze]
