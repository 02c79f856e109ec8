"""FaceX Loader and the FORD extractor nodes: identity, motion (with gaze), regions."""

from __future__ import annotations

import weakref
from dataclasses import fields
from functools import partial
from operator import attrgetter

import torch
from comfy_api.latest import io

from facex_core.ford.clip_vision import ClipVisionEncoder
from facex_core.ford.face_analysis import FaceAnalyzer
from facex_core.ford.gaze import GazeExtractor
from facex_core.ford.identity import IdentityEncoder, IdentityFeatures
from facex_core.ford.motion import MotionExtractor
from facex_core.ford.parsing import FaceParser
from facex_core.ford.region_features import FaceRegions, RegionTokens, encode_regions
from facex_core.ford.region_masks import region_masks, union_mask
from facex_core.ford.regions import CORE_REGIONS
from facex_core.fors.representation import FaceMotion
from facex_core.model.metadata import region_encoder_file
from facex_core.model.weights import FaceXFile, load_facex
from facex_core.models.manifest import FACEX
from facex_core.previews import pose_overlay, region_overlay

from .analysis import held_analyzer, is_facexformer
from .devices import compute_device, output_device
from .held_models import Managed, file_key, held, held_network, load_for_run
from .loop import chunks
from .paths import model_roots, resolve, resolve_file, role_choices, weight_choices
from .types import FaceXFaces, FaceXIdentity, FaceXModelType, FaceXMotion, FaceXRegions

CATEGORY = "FaceX"
FACE_AREA = CORE_REGIONS[:6]  # eyebrows, eyes, nose, lips, ears, skin


def _concat(parts: list, cls):
    """Join dataclasses of tensors computed chunk by chunk, moved off the compute device."""
    return cls(**{f.name: torch.cat([getattr(p, f.name) for p in parts]).to(output_device()) for f in fields(cls)})


def load_facex_file(choice: str) -> FaceXFile:
    path = resolve_file(FACEX, choice)
    return held("facex", file_key(path), lambda: load_facex(path))


class FaceXLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXLoader",
            display_name="FaceX Loader",
            category=CATEGORY,
            description="Loads a FaceX weight file (models/facex): the adapters, the region encoder head and the "
                        "FRC layers, with the base-model family and crop size it was trained for.",
            inputs=[io.Combo.Input("facex_file", options=weight_choices(),
                                   tooltip="A FaceX .safetensors file in models/facex.")],
            outputs=[FaceXModelType.Output(display_name="facex", tooltip="The FaceX network.")],
        )

    @classmethod
    def execute(cls, facex_file) -> io.NodeOutput:
        return io.NodeOutput(load_facex_file(facex_file))


class FaceXIDExtractor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXIDExtractor",
            display_name="FaceX ID Extractor",
            category=CATEGORY,
            description="Identity of each face: ArcFace's 7x7x512 feature map before its last layer (49 tokens), "
                        "and the 512-d embedding.",
            inputs=[
                FaceXFaces.Input("faces", tooltip="Faces from FaceX Face Detect and Align."),
                io.Combo.Input("recognition", options=role_choices("recognition"),
                               tooltip="ArcFace file of an insightface pack (glintr100 or w600k_r50)."),
            ],
            outputs=[FaceXIdentity.Output(display_name="identity", tooltip="Identity tokens and embedding per face.")],
        )

    @classmethod
    def execute(cls, faces, recognition) -> io.NodeOutput:
        path = resolve("recognition", recognition)
        encoder = held("recognition", file_key(path), lambda: IdentityEncoder(path, compute_device()))
        parts = [encoder.encode(faces.select(index)) for index in chunks(len(faces))]
        return io.NodeOutput(_concat(parts, IdentityFeatures))


class FaceXMotionExtractor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXMotionExtractor",
            display_name="FaceX 3DMM Motion Extractor (with gaze)",
            category=CATEGORY,
            description="Expression, head pose, gaze, skin texture and lighting of each face, from Deep3DFaceRecon's "
                        "3DMM fit and L2CS-Net's gaze, measured in the aligned crop.",
            inputs=[
                FaceXFaces.Input("faces", tooltip="Faces from FaceX Face Detect and Align."),
                io.Combo.Input("recon3d", options=role_choices("recon3d"),
                               tooltip="Deep3DFaceRecon checkpoint (epoch_20.pth) in models/facex_extractors."),
                io.Combo.Input("gaze", options=role_choices("gaze"),
                               tooltip="L2CS-Net checkpoint (Gaze360 or an MPIIGaze fold) in models/facex_extractors."),
            ],
            outputs=[
                FaceXMotion.Output(display_name="motion", tooltip="Motion and appearance vectors per face."),
                io.Image.Output(display_name="pose_preview", tooltip="Keypoints and head axes drawn on each crop."),
            ],
        )

    @classmethod
    def execute(cls, faces, recon3d, gaze) -> io.NodeOutput:
        recon_path, gaze_path = resolve("recon3d", recon3d), resolve("gaze", gaze)
        recon = held_network("recon3d", file_key(recon_path), partial(MotionExtractor.from_file, recon_path),
                             attrgetter("network"))
        gazer = held_network("gaze", file_key(gaze_path), partial(GazeExtractor.from_file, gaze_path),
                             attrgetter("network"))
        load_for_run(recon, gazer)
        parts = []
        for index in chunks(len(faces)):
            subset = faces.select(index)
            parts.append(FaceMotion.from_extractors(recon.extractor.extract(subset), gazer.extractor.extract(subset)))
        motion = _concat(parts, FaceMotion)
        return io.NodeOutput(motion, pose_overlay(faces.crops, faces.crop_kps, motion.pose))


def region_encoder(facex: FaceXFile) -> Managed[ClipVisionEncoder]:
    """The CLIP a FaceX file was trained with: a clip_vision file, or weights it embeds."""
    path = region_encoder_file(facex.metadata, model_roots())
    if path is None:
        # A weak reference: the key neither keeps a replaced FaceX file alive nor matches a
        # new one that happens to get its address.
        key, build = weakref.ref(facex.model), partial(ClipVisionEncoder.from_state, facex.clip_state, "the FaceX file")
    else:
        key, build = file_key(path), partial(ClipVisionEncoder.from_path, path)
    return held_network("clip_vision", key, build, attrgetter("model"))


def held_parser(choice: str) -> Managed[FaceParser | FaceAnalyzer]:
    """The parser a Region Pooler choice names: BiSeNet, or FaceXFormer's parsing."""
    if is_facexformer(choice):
        return held_analyzer(choice)
    path = resolve("parsing", choice)
    return held_network("parsing", file_key(path), partial(FaceParser.from_file, path), attrgetter("network"))


class FaceXRegionPooler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXRegionPooler",
            display_name="FaceX Parsing-Mask Pooler",
            category=CATEGORY,
            description="Parses each face into regions (eyebrows, eyes, nose, lips, ears, skin, hair, background and "
                        "accessories) and pools the FaceX region encoder's features into one token per region.",
            inputs=[
                FaceXFaces.Input("faces", tooltip="Faces from FaceX Face Detect and Align."),
                FaceXModelType.Input("facex", tooltip="The FaceX model whose region encoder pools the features."),
                io.Combo.Input("parser", options=role_choices("parsing") + role_choices("analysis"),
                               tooltip="BiSeNet face parsing file (79999_iter.pth or parsing_bisenet.pth), or "
                                       "FaceXFormer's facexformer.pt: its 11 classes have no ears, glasses, hat, "
                                       "earrings, neck or cloth, so with it those regions stay empty."),
            ],
            outputs=[
                FaceXRegions.Output(display_name="regions", tooltip="Region masks and tokens per face."),
                io.Mask.Output(display_name="face_mask",
                               tooltip="Face area (brows, eyes, nose, lips, ears, skin) per crop."),
                io.Image.Output(display_name="region_preview", tooltip="Every region tinted in its colour."),
            ],
        )

    @classmethod
    def execute(cls, faces, facex, parser) -> io.NodeOutput:
        parsing = held_parser(parser)
        clip, model = region_encoder(facex), facex.model
        load_for_run(parsing, clip)
        labels, masks, tokens = [], [], []
        for index in chunks(len(faces)):
            subset = faces.select(index)
            labels.append(parsing.extractor.parse(subset))
            masks.append(region_masks(labels[-1], parsing.extractor.labels))
            with torch.no_grad():
                tokens.append(encode_regions(clip.extractor, model.region_adapter, subset.crops, masks[-1],
                                             model.config.clip_layers))
        masks = torch.cat(masks).to(output_device())
        regions = FaceRegions(torch.cat(labels).to(output_device()), masks, _concat(tokens, RegionTokens))
        preview = region_overlay(faces.crops, masks)
        return io.NodeOutput(regions, union_mask(masks, FACE_AREA), preview)


NODES = [FaceXLoader, FaceXIDExtractor, FaceXMotionExtractor, FaceXRegionPooler]
