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
    assert len(PACK_NODE_IDS) == 17
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


def test_a_frame_without_a_face_passes_through_when_asked(comfy_server):
    """A two-frame batch whose second frame has no face: with skip_frames_without_face the run
    succeeds, that frame comes back bit for bit and Paste Back's pasted_area is 0 on it."""
    graph = detect_graph("astronaut.png")
    graph["6"] = {"class_type": "LoadImage", "inputs": {"image": "coffee.png"}}
    graph["7"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["6", 0]}}
    graph["2"]["inputs"] |= {"image": ["7", 0], "skip_frames_without_face": True}
    graph["3"]["inputs"]["image"] = ["7", 0]
    graph["8"] = {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "frames"}}
    graph["9"] = {"class_type": "MaskToImage", "inputs": {"mask": ["3", 1]}}
    graph["10"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "area"}}
    entry = comfy_server.run(graph)
    assert entry["status"]["status_str"] == "success", execution_error(entry)

    def saved(node: str) -> list[np.ndarray]:
        return [np.asarray(Image.open(comfy_server.base / "output" / image["filename"]).convert("RGB"))
                for image in entry["outputs"][node]["images"]]

    pasted, frames, area = saved("4"), saved("8"), saved("10")
    assert len(pasted) == 2 and len(saved("5")) == 1  # two frames out, one face cropped
    assert np.array_equal(pasted[1], frames[1]) and area[1].max() == 0
    assert area[0].max() == 255


def test_a_crop_size_other_than_the_facex_models_is_named(comfy_server):
    graph = detect_graph("astronaut.png")
    graph["6"] = {"class_type": "FaceXLoader", "inputs": {"facex_file": "facex_tiny.safetensors"}}
    graph["2"]["inputs"]["facex"] = ["6", 0]
    message = execution_error(comfy_server.run(graph))
    assert "size is 512 but the connected FaceX model works on 256 px crops; set size to auto or 256" in message
