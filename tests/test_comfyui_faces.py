"""Tier 2: the pack in a real ComfyUI, face detection to paste-back through the executor."""

import numpy as np
import pytest
from comfy_server import execution_error
from conftest import FACES_DIR, PACK_NODE_IDS
from PIL import Image

pytestmark = pytest.mark.comfyui



def detect_graph(image: str, detector: str = "models/buffalo_l/det_10g.onnx", size: str = "512") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "FaceXDetectAlign", "inputs": {
            "image": ["1", 0], "detector": detector, "face": "largest", "index": 0, "size": size,
            "min_face_size": 32, "threshold": 0.5, "skip_frames_without_face": False}},
        "3": {"class_type": "FaceXPasteBack", "inputs": {
            "crops": ["2", 1], "faces": ["2", 0], "image": ["1", 0], "feather": 0.1, "color_match": False,
            "mask_feather": 0.04}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pasted"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "crop"}},
    }


def test_every_node_is_listed_with_a_description_and_input_tooltips(comfy_server):
    info = comfy_server.get("/object_info")
    assert len(PACK_NODE_IDS) == 13
    for node_id in sorted(PACK_NODE_IDS):
        node = info[node_id]
        assert node["category"] == "FaceX" and node["description"], node_id
        for group in ("required", "optional"):
            for name, spec in node["input"].get(group, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    detector = info["FaceXDetectAlign"]["input"]["required"]["detector"]
    assert detector[0] == "COMBO"
    assert detector[1]["options"] == ["models/buffalo_l/det_10g.onnx", "models/antelopev2/scrfd_10g_bnkps.onnx"]
    assert info["FaceXDetectAlign"]["output"] == ["FACEX_FACES", "IMAGE", "MASK"]


def test_detect_align_and_paste_back_restore_the_image(comfy_server):
    entry = comfy_server.run(detect_graph("astronaut.png"))
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    output = comfy_server.base / "output"
    assert Image.open(output / entry["outputs"]["5"]["images"][0]["filename"]).size == (512, 512)
    pasted = np.asarray(Image.open(output / entry["outputs"]["4"]["images"][0]["filename"]), dtype=np.float64)
    original = np.asarray(Image.open(FACES_DIR / "portraits" / "real_astronaut_collins.png"), dtype=np.float64)
    assert pasted.shape == original.shape
    mse = ((pasted - original) ** 2).mean() / 255**2
    assert 10 * np.log10(1 / mse) > 40


def test_no_face_is_a_clear_node_error(comfy_server):
    entry = comfy_server.run(detect_graph("coffee.png"))
    assert entry["status"]["status_str"] == "error"
    assert "NoFaceError: No face was found in image 0" in execution_error(entry)


def test_missing_detector_file_says_where_it_goes(comfy_server):
    entry = comfy_server.run(detect_graph("astronaut.png", "models/antelopev2/scrfd_10g_bnkps.onnx"))
    message = execution_error(entry)
    assert "ModelFileMissingError" in message and "download antelopev2/scrfd_10g_bnkps" in message


def test_doctor_reports_in_the_ui(comfy_server):
    entry = comfy_server.run({"1": {"class_type": "FaceXDoctor", "inputs": {"verify_hashes": False}}})
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    text = "".join(entry["outputs"]["1"]["text"])
    assert "[ok  ] import insightface.app" in text
    assert "[FAIL] model buffalo_l/det_10g" in text and "expected 16,923,827" in text  # random stand-in file
    assert "[ok  ] model l2cs/gaze360" in text  # no published size to compare
