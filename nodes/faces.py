"""Face Detect and Align, and Paste Back: the ends of every FaceX graph."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from facex_core.errors import UsageError
from facex_core.faces.align import CROP_SIZES
from facex_core.faces.crops import align_faces
from facex_core.faces.detect import FACE_CHOICES, FaceDetector, choose_faces
from facex_core.faces.paste import checked_crops, face_coverage, paste_into, soften
from facex_core.fors.reference import DEFAULT_MARGIN
from facex_core.images import to_image_batch, to_uint8
from facex_core.model.weights import FaceXFile

from .devices import compute_device
from .held_models import file_key, held
from .loop import chunks, frames
from .paths import resolve, role_choices
from .types import FaceXFaces, FaceXModelType

CATEGORY = "FaceX"
AUTO = "auto"
DEFAULT_SIZE = 512  # without a FaceX model: detail enough for any later use of the crops


def held_detector(choice: str) -> FaceDetector:
    """One detector per file: the threshold is given at each call, not at loading."""
    path = resolve("detection", choice)
    return held("detector", file_key(path), lambda: FaceDetector(path, compute_device()))


def _crop_size(choice: str, facex: FaceXFile | None) -> int:
    """The crop size asked for, checked against the FaceX model's when one is connected."""
    wanted = facex.model.config.resolution if facex is not None else None
    if choice == AUTO:
        return wanted or DEFAULT_SIZE
    if wanted is not None and int(choice) != wanted:
        raise UsageError(f"size is {choice} but the connected FaceX model works on {wanted} px crops; set size to "
                         f"auto or {wanted}.")
    return int(choice)


class FaceXDetectAlign(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXDetectAlign",
            display_name="FaceX Face Detect and Align",
            category=CATEGORY,
            description="Finds faces with insightface's SCRFD and cuts each into an FFHQ-aligned square crop, "
                        "remembering where it came from so the edit can be pasted back. Works on every frame of a "
                        "batch.",
            inputs=[
                io.Image.Input("image", tooltip="Image or video frames to find faces in."),
                io.Combo.Input("detector", options=role_choices("detection"),
                               tooltip="SCRFD file of an insightface pack under models/insightface/models/."),
                io.Combo.Input("face", options=list(FACE_CHOICES), default="largest",
                               tooltip="Which faces to take from each frame: the largest, one by index, or all."),
                io.Int.Input("index", default=0, min=0, max=63,
                             tooltip="With face = index: which face, counted left to right from 0."),
                io.Combo.Input("size", options=[AUTO, *(str(s) for s in CROP_SIZES)], default=AUTO,
                               tooltip="Crop resolution. auto: the connected FaceX model's (256 for SD1.5 FaceX "
                                       f"weights, 512 or 768 for SD2.x), {DEFAULT_SIZE} without one."),
                io.Int.Input("min_face_size", default=32, min=8, max=1024,
                             tooltip="Faces whose box is smaller than this many pixels are refused with an error."),
                io.Float.Input("threshold", default=0.5, min=0.05, max=0.99, step=0.01,
                               tooltip="Detector confidence needed to count as a face; lower it for hard images."),
                io.Boolean.Input("skip_frames_without_face", default=False,
                                 tooltip="Frames without a usable face give no crop and Paste Back returns them "
                                         "unchanged, instead of stopping the run (a video where the face leaves "
                                         "the shot)."),
                FaceXModelType.Input("facex", optional=True,
                                     tooltip="The FaceX model the crops are for: size auto follows it, and another "
                                             "size is refused here rather than after extraction."),
            ],
            outputs=[
                FaceXFaces.Output(display_name="faces", tooltip="The aligned faces with their transforms."),
                io.Image.Output(display_name="crops", tooltip="The aligned crops, one per face."),
                io.Mask.Output(display_name="face_area", tooltip="Where paste-back will write, per frame."),
            ],
        )

    @classmethod
    def execute(cls, image, detector, face, index, size, min_face_size, threshold, skip_frames_without_face,
                facex=None) -> io.NodeOutput:
        images = to_image_batch(image)
        crop_size = _crop_size(size, facex)
        model = held_detector(detector)
        chosen = [
            choose_faces(model.detect(to_uint8(images[i]), i, threshold), face, index, min_face_size, i,
                         skip_frames_without_face)
            for i in frames(range(images.shape[0]), images.shape[0])
        ]
        faces = align_faces(images, chosen, crop_size)
        return io.NodeOutput(faces, faces.crops, face_coverage(faces, images.shape[0]))


class FaceXPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXPasteBack",
            display_name="FaceX Paste Back",
            category=CATEGORY,
            description="Warps edited face crops back into the frames they were cut from, with a feathered edge "
                        "and optional colour matching to the original face.",
            inputs=[
                io.Image.Input("crops", tooltip="Edited crops, one per face (any square size)."),
                FaceXFaces.Input("faces", tooltip="The faces from FaceX Face Detect and Align."),
                io.Image.Input("image", tooltip="The frames the faces were found in."),
                io.Float.Input("feather", default=0.1, min=0.0, max=0.5, step=0.01,
                               tooltip="Width of the soft edge, as a fraction of the crop size."),
                io.Boolean.Input("color_match", default=False,
                                 tooltip="Match the edited face's colours to the original crop before pasting."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Crop-space mask limiting what is pasted: the Region Assembler's fusion mask, "
                                      "so every pixel the task keeps stays the original's, or a parsing mask."),
                io.Float.Input("mask_feather", default=DEFAULT_MARGIN, min=0.0, max=0.2, step=0.005,
                               tooltip="Width of the soft edge given to the mask, as a fraction of the crop size; "
                                       "pixels farther outside the mask are kept exactly."),
            ],
            outputs=[
                io.Image.Output(display_name="image"),
                io.Mask.Output(display_name="pasted_area",
                               tooltip="Per frame, how much of each pixel comes from the crops: 0 where the frame "
                                       "is kept exactly."),
            ],
        )

    @classmethod
    def execute(cls, crops, faces, image, feather, color_match, mask_feather, mask=None) -> io.NodeOutput:
        images = to_image_batch(image, "image")
        edited = to_image_batch(crops, "crops")
        masks = None if mask is None else soften(torch.nn.functional.interpolate(
            mask.reshape(-1, 1, *mask.shape[-2:]).float(), size=(faces.size, faces.size), mode="bilinear")[:, 0],
            mask_feather)
        edited = checked_crops(images, faces, edited, masks)
        out, area = images.clone(), images.new_zeros(images.shape[:3])
        for index in chunks(len(faces)):
            chunk_masks = masks if masks is None or masks.shape[0] == 1 else masks[index]
            paste_into(out, faces.select(index), edited[index], feather, color_match, chunk_masks, area)
        return io.NodeOutput(out, area)


NODES = [FaceXDetectAlign, FaceXPasteBack]
