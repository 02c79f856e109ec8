"""Tier 2: the FRC in a real ComfyUI: every block fires, it agrees with diffusers, a
zero-initialised FaceX changes nothing, the eight workflows run, bad inputs are named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from comfy_models import CHECKPOINT, FACEX, FACEX_ZERO
from comfy_server import execution_error
from safetensors.torch import load_file

pytestmark = pytest.mark.comfyui

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows" / "api"
TASKS = ("face_swap", "head_swap", "reenactment", "animation", "attribute_editing", "inpainting",
         "motion_editing", "mixture_editing")
PUBLISHED = {"v1-5-pruned-emaonly.safetensors": CHECKPOINT, "facex_sd15.safetensors": FACEX}


def inprocess(check: str, base: Path) -> dict:
    """Run a check of tests/comfy_inprocess.py in ComfyUI's interpreter."""
    result = subprocess.run([os.environ.get("COMFYUI_PYTHON", sys.executable),
                             str(REPO / "tests" / "comfy_inprocess.py"),
                             check, str(base)], capture_output=True, text=True, timeout=900, env=dict(os.environ))
    lines = [line for line in result.stdout.splitlines() if line.startswith("FACEX-RESULT ")]
    assert lines, f"{check} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(lines[-1].split(" ", 1)[1])


def workflow(task: str, steps: int = 2, **replace: str) -> dict:
    """A published API workflow with the test models and a short schedule."""
    text = (WORKFLOWS / f"{task}.json").read_text()
    for old, new in {**PUBLISHED, **replace}.items():
        text = text.replace(old, new)
    graph = json.loads(text)
    for node in graph.values():
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = steps
    return graph


def node_of(graph: dict, class_type: str) -> str:
    return next(key for key, node in graph.items() if node["class_type"] == class_type)


def test_every_sd15_transformer_block_fires(comfy_base):
    result = inprocess("blocks", comfy_base)
    assert result["blocks"] == 16 and result["fired"] == [1] * 16


def test_comfyui_and_diffusers_give_the_same_noise_prediction(comfy_base):
    result = inprocess("equivalence", comfy_base)
    assert result["frc_diff"] <= 1e-4 and result["plain_diff"] <= 1e-4
    assert result["frc_effect"] > 1e-2  # the FRC does change the prediction


def test_unconditional_chunks_attend_to_the_null_context_in_every_layout(comfy_base):
    """cfg > 1: ComfyUI batches uncond (1) and cond (0) chunks in either order."""
    result = inprocess("layouts", comfy_base)
    assert set(result) == {"[0]", "[1, 0]", "[0, 1]"}
    for layout, numbers in result.items():
        # the equivalence bound above: two UNet implementations in float32 (measured ~1e-6)
        assert numbers["diff"] <= 1e-4, (layout, numbers)
    # the null context matters, so a layout mixed up would show
    assert result["[1, 0]"]["null_effect"] > 1e-2 and result["[0, 1]"]["null_effect"] > 1e-2


def test_facex_composes_with_a_lora_an_attn2_replacement_and_a_controlnet(comfy_base):
    result = inprocess("compose", comfy_base)
    assert min(result["lora_effect"], result["replace_effect"], result["controlnet_effect"]) > 1e-2
    assert result["zero_facex_exact"] is True
    assert result["trained_facex_effect"] > 1e-2 and min(result["fired"]) >= 1


@pytest.mark.parametrize("task", TASKS)
def test_each_workflow_runs_end_to_end(comfy_server, task):
    from PIL import Image

    entry = comfy_server.run(workflow(task))
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    saved = [image for output in entry["outputs"].values() for image in output.get("images", [])
             if image["type"] == "output"]
    sizes = {Image.open(comfy_server.base / "output" / image["filename"]).size for image in saved}
    expected = {(256, 256)} if task == "animation" else {(350, 350)}
    assert sizes == expected and len(saved) == (3 if task == "animation" else 1)


PARTIAL_EDITS = ("face_swap", "head_swap", "attribute_editing", "inpainting", "mixture_editing")


@pytest.mark.parametrize("task", PARTIAL_EDITS)
def test_a_partial_edit_keeps_every_pixel_outside_the_feathered_fusion_mask(comfy_server, task):
    """The shipped graph, executed: wherever Paste Back's blend weight (the feathered fusion
    mask warped to the image) is 0, the saved 8-bit result equals the input image exactly;
    the weight reaches part of the image and changes it there (random weights)."""
    import numpy as np
    from PIL import Image

    graph = workflow(task)
    paste = node_of(graph, "FaceXPasteBack")
    graph["910"] = {"class_type": "ThresholdMask", "inputs": {"mask": [paste, 1], "value": 0.0}}
    graph["911"] = {"class_type": "MaskToImage", "inputs": {"mask": ["910", 0]}}
    graph["912"] = {"class_type": "SaveImage", "inputs": {"images": ["911", 0], "filename_prefix": f"area_{task}"}}
    entry = comfy_server.run(graph)
    assert entry["status"]["status_str"] == "success", execution_error(entry)
    output = comfy_server.base / "output"
    result_node = next(key for key, node in graph.items()
                       if node["class_type"] == "SaveImage" and node["inputs"]["images"] == [paste, 0])

    def saved(node: str) -> np.ndarray:
        return np.asarray(Image.open(output / entry["outputs"][node]["images"][0]["filename"]).convert("RGB"))

    result, reached = saved(result_node), saved("912")[..., 0] > 0
    original = np.asarray(Image.open(comfy_server.base / "input" / "target.png").convert("RGB"))
    assert result.shape == original.shape
    assert np.array_equal(result[~reached], original[~reached])
    assert 0.01 < reached.mean() < 0.9, reached.mean()
    assert (result[reached] != original[reached]).any()


def advanced(graph: dict, sampler: str) -> None:
    """Swap KSampler for KSamplerAdvanced with the same settings (whole schedule, fresh noise)."""
    inputs = graph[sampler]["inputs"]
    graph[sampler] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": inputs["model"], "add_noise": "enable", "noise_seed": inputs["seed"], "steps": inputs["steps"],
        "cfg": inputs["cfg"], "sampler_name": inputs["sampler_name"], "scheduler": inputs["scheduler"],
        "positive": inputs["positive"], "negative": inputs["negative"], "latent_image": inputs["latent_image"],
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}


@pytest.mark.parametrize("sampler_node", ["KSampler", "KSamplerAdvanced"])
def test_a_zero_initialised_facex_leaves_the_sampler_output_exact(comfy_server, sampler_node):
    graph = workflow("face_swap", **{"facex_sd15.safetensors": FACEX_ZERO})
    sampler, checkpoint = node_of(graph, "KSampler"), node_of(graph, "CheckpointLoaderSimple")
    if sampler_node == "KSamplerAdvanced":
        advanced(graph, sampler)
    graph["900"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": "with_facex"}}
    plain = json.loads(json.dumps(graph))
    plain[sampler]["inputs"]["model"] = [checkpoint, 0]
    plain["900"]["inputs"]["filename_prefix"] = "without_facex"
    latents = []
    for prompt in (graph, plain):
        entry = comfy_server.run(prompt)
        assert entry["status"]["status_str"] == "success", execution_error(entry)
        saved = entry["outputs"]["900"]["latents"][0]
        path = comfy_server.base / "output" / saved["subfolder"] / saved["filename"]
        latents.append(load_file(str(path))["latent_tensor"])
    assert torch.equal(latents[0], latents[1])


def test_a_frame_without_a_face_is_named(comfy_server):
    graph = workflow("animation", **{"driving_2.png": "coffee.png"})
    entry = comfy_server.run(graph)
    assert "No face was found in image 2" in execution_error(entry)


def test_mismatched_batches_are_named(comfy_server):
    graph = workflow("face_swap")
    decoded = node_of(graph, "VAEDecode")
    graph["901"] = {"class_type": "RepeatImageBatch", "inputs": {"image": [decoded, 0], "amount": 3}}
    graph[node_of(graph, "FaceXPasteBack")]["inputs"]["crops"] = ["901", 0]
    assert "3 edited crops were given for 1 faces" in execution_error(comfy_server.run(graph))


def test_a_weight_file_for_another_layout_is_refused(comfy_server):
    from facex_core.model.config import FaceXConfig
    from facex_core.model.facex import FaceXModel
    from facex_core.model.weights import save_facex

    sd15 = FaceXConfig.for_family("sd15", width=32, region_dim=16, clip_dim=64, clip_layers=(1, 2, 2),
                                  adapter_layers=1, adapter_heads=2)
    save_facex(FaceXModel(sd15), comfy_server.base / "models" / "facex" / "facex_full_sd15.safetensors", {})
    graph = workflow("face_swap", **{"facex_sd15.safetensors": "facex_full_sd15.safetensors"})
    message = execution_error(comfy_server.run(graph))
    assert "trained for sd15 (16 transformer blocks, context width 768)" in message
    assert "a UNet with 4 transformer blocks" in message
