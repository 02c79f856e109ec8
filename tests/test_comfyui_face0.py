"""Tier 2: Face0 in a real ComfyUI: the published portrait workflow runs on the file a short
training run exported (comfy_models.train_face0), the conditioning handed to the sampler
carries the face in exactly the last 3 positions, ComfyUI's LoRA loader patches every module
of the file, and Face0 Guider is the documented combination of ComfyUI's own predictions."""

import json
from pathlib import Path

import pytest
from comfy_models import CHECKPOINT, FACE0
from comfy_server import execution_error
from test_comfyui_model import inprocess

pytestmark = pytest.mark.comfyui

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "api" / "face0_portrait.json"
PUBLISHED = {"v1-5-pruned-emaonly.safetensors": CHECKPOINT, "face0_sd15.safetensors": FACE0}


def test_the_portrait_workflow_runs_end_to_end(comfy_server):
    from PIL import Image

    text = WORKFLOW.read_text()
    for old, new in PUBLISHED.items():
        text = text.replace(old, new)
    graph = json.loads(text)
    for node in graph.values():
        if node["class_type"] == "BasicScheduler":
            node["inputs"]["steps"] = 2
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"] |= {"width": 256, "height": 256}
    entry = comfy_server.run(graph)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    saved = [image for output in entry["outputs"].values() for image in output.get("images", [])]
    assert [Image.open(comfy_server.base / "output" / image["filename"]).size for image in saved] == [(256, 256)]


def test_the_sampler_gets_the_face_in_the_last_three_positions_and_the_documented_guidance(comfy_base):
    result = inprocess("face0", comfy_base)
    assert result["changed_positions"] == [result["tokens"] - 3, result["tokens"] - 2, result["tokens"] - 1]
    # four guiders' float32 denoised latents combined by hand vs one batched call: rounding only
    assert result["combination_vs_hand"] <= 1e-5 * max(1.0, result["combination_scale"]), result
    assert result["zero_weights_vs_cfg"] <= 1e-6, result  # the same ops as ComfyUI's cfg_function
    assert result["lora_changes_the_model"] > 1e-3, result
    # the file a training run exported (a LoRA on every linear layer and convolution): each module one weight
    assert result["patched_weights"] == result["file_modules"] == 69, result
