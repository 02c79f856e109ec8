"""Tier 2: the pack in a real ComfyUI, face detection to paste-back through the executor."""

import shutil

import numpy as np
import onnx
import pytest
from PIL import Image

from comfy_server import COMFYUI_PATH, SKIP_REASON, ComfyServer, execution_error
from conftest import FACES_DIR, annotated, planted_detector_file
from facex_core.testing import onnx_models

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(not COMFYUI_PATH, reason=SKIP_REASON)]

FACE = "portraits/real_astronaut_collins.png"
NODE_IDS = ("FaceXDetectAlign", "FaceXPasteBack", "FaceXDoctor")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy")
    comfy = ComfyServer(base)
    insightface = base / "models" / "insightface" / "models"
    (insightface / "buffalo_l").mkdir(parents=True)
    (insightface / "antelopev2").mkdir(parents=True)
    planted_detector_file(insightface / "buffalo_l" / "det_10g.onnx", [annotated(FACE)])
    onnx.save(onnx_models.scrfd_empty(), str(insightface / "antelopev2" / "scrfd_10g_bnkps.onnx"))
    shutil.copy(FACES_DIR / FACE, base / "input" / "astronaut.png")
    shutil.copy(FACES_DIR / "bad" / "no_face_coffee.png", base / "input" / "coffee.png")
    comfy.start()
    yield comfy
    comfy.stop()


def detect_graph(image: str, detector: str, size: str = "512") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "FaceXDetectAlign", "inputs": {
            "image": ["1", 0], "detector": detector, "face": "largest", "index": 0, "size": size,
            "min_face_size": 32, "threshold": 0.5}},
        "3": {"class_type": "FaceXPasteBack", "inputs": {
            "crops": ["2", 1], "faces": ["2", 0], "image": ["1", 0], "feather": 0.1, "color_match": False}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pasted"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "crop"}},
    }


def test_every_node_is_listed_with_a_description_and_input_tooltips(server):
    info = server.get("/object_info")
    for node_id in NODE_IDS:
        node = info[node_id]
        assert node["category"] == "FaceX" and node["description"]
        for group in ("required", "optional"):
            for name, spec in node["input"].get(group, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    detector = info["FaceXDetectAlign"]["input"]["required"]["detector"]
    assert detector[0] == "COMBO"
    assert detector[1]["options"] == ["models/antelopev2/scrfd_10g_bnkps.onnx", "models/buffalo_l/det_10g.onnx"]
    assert info["FaceXDetectAlign"]["output"] == ["FACEX_FACES", "IMAGE", "MASK"]


def test_detect_align_and_paste_back_restore_the_image(server):
    entry = server.run(detect_graph("astronaut.png", "models/buffalo_l/det_10g.onnx"))
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    crop_file = server.base / "output" / entry["outputs"]["5"]["images"][0]["filename"]
    pasted_file = server.base / "output" / entry["outputs"]["4"]["images"][0]["filename"]
    assert Image.open(crop_file).size == (512, 512)
    pasted = np.asarray(Image.open(pasted_file), dtype=np.float64)
    original = np.asarray(Image.open(FACES_DIR / FACE), dtype=np.float64)
    assert pasted.shape == original.shape
    mse = ((pasted - original) ** 2).mean() / 255**2
    assert 10 * np.log10(1 / mse) > 40


def test_no_face_is_a_clear_node_error(server):
    entry = server.run(detect_graph("coffee.png", "models/antelopev2/scrfd_10g_bnkps.onnx"))
    assert entry["status"]["status_str"] == "error"
    assert "NoFaceError: No face was found in image 0" in execution_error(entry)


def test_missing_detector_file_says_where_it_goes(server):
    (server.base / "models" / "insightface" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx").rename(
        server.base / "models" / "spare.onnx")
    try:
        entry = server.run(detect_graph("astronaut.png", "models/antelopev2/scrfd_10g_bnkps.onnx"))
    finally:
        (server.base / "models" / "spare.onnx").rename(
            server.base / "models" / "insightface" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx")
    message = execution_error(entry)
    assert "ModelFileMissingError" in message and "download antelopev2/scrfd_10g_bnkps" in message


def test_doctor_reports_in_the_ui(server):
    entry = server.run({"1": {"class_type": "FaceXDoctor", "inputs": {"verify_hashes": False}}})
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    text = "".join(entry["outputs"]["1"]["text"])
    assert "[ok  ] import insightface.app" in text
    assert "[FAIL] gaze model" in text
