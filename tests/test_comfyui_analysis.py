"""Tier 2: FaceXFormer in a real ComfyUI: the published analysis workflow runs on a photo of
two faces (full-size FaceXFormer, random weights), and the Region Pooler parses with it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_server import execution_error
from conftest import annotated
from PIL import Image

from facex_core.ford.analysis_crops import analysis_boxes

pytestmark = pytest.mark.comfyui

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows" / "api"
PHOTO = "multi/real_obama_biden_oval_office.jpg"  # the base's group.png (tests/comfy_models.py)


def published(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def saved(server, entry: dict, node: str) -> np.ndarray:
    image = entry["outputs"][node]["images"][0]
    return np.asarray(Image.open(server.base / "output" / image["subfolder"] / image["filename"]).convert("RGB"))


def node_titled(graph: dict, title: str) -> str:
    return next(key for key, node in graph.items() if node["_meta"]["title"] == title)


def test_the_analysis_workflow_gives_masks_and_a_preview_on_each_face_box(comfy_server):
    graph = published("face_analysis")
    entry = comfy_server.run(graph)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    mask = saved(comfy_server, entry, node_titled(graph, "save the mask"))[..., 0] > 127
    preview = saved(comfy_server, entry, node_titled(graph, "save the preview")).astype(int)
    photo = np.asarray(Image.open(comfy_server.base / "input" / "group.png").convert("RGB")).astype(int)
    assert mask.shape == preview.shape[:2] == photo.shape[:2] == (601, 1024)
    boxes = torch.tensor([face["bbox"] for face in annotated(PHOTO).faces], dtype=torch.float32)
    inside = np.zeros(mask.shape, bool)
    for x1, y1, x2, y2 in analysis_boxes(boxes, mask.shape).tolist():
        inside[y1:y2, x1:x2] = True
        assert mask[y1:y2, x1:x2].any()  # each face gives some face-class pixels
    assert not mask[~inside].any()  # and nothing lands beyond the two analysis crops
    # beyond the crops the preview is the photo (SaveImage truncates to 8 bits: off by at most 1)
    # except where a landmark or an axis is drawn: random weights may put points beyond the
    # crop, and 68 dots and 3 lines cover well under half a percent of the rest of the photo
    changed = np.abs(preview[~inside] - photo[~inside]).max(-1) > 1
    assert changed.mean() < 0.005, changed.mean()
    assert np.abs(preview[inside] - photo[inside]).mean() > 5  # tinted and drawn on
    report = entry["outputs"][node_titled(graph, "report")]["text"][0]
    assert report.count("head pose (degrees)") == 2 and "face 1 (image 0" in report


def test_the_region_pooler_parses_with_facexformer(comfy_server):
    """The face swap graph with FaceXFormer as the parser of every Region Pooler runs to the end."""
    graph = published("face_swap")
    for node in graph.values():
        if node["class_type"] == "FaceXRegionPooler":
            node["inputs"]["parser"] = "facexformer.pt"
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = 1
    text = json.dumps(graph).replace("v1-5-pruned-emaonly.safetensors", "tiny_sd15.safetensors")
    graph = json.loads(text.replace("facex_sd15.safetensors", "facex_tiny.safetensors"))
    entry = comfy_server.run(graph)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    result = saved(comfy_server, entry, next(k for k, n in graph.items() if n["class_type"] == "SaveImage"))
    assert result.shape == (350, 350, 3)
