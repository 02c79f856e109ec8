"""`python -m facex_core edit` end to end on random-weight models in the published layouts."""

import numpy as np
import pytest
import torch
from comfy_models import tiny_facex
from conftest import annotated, image_tensor, models_with_detector
from PIL import Image

from facex_core.__main__ import main
from facex_core.faces.crops import align_faces
from facex_core.faces.paste import face_coverage
from facex_core.image_files import read_image_file
from facex_core.model.weights import save_facex
from facex_core.testing.sd_checkpoint import tiny_sd15, write_single_file

SOURCE = "same_identity/ai_ltx2_woman/frame_000.png"
TARGET = "same_identity/ai_ltx2_woman/frame_120.png"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("edit")
    unet, vae, text_encoder = tiny_sd15()
    checkpoint = write_single_file(root / "tiny_sd15.safetensors", unet, vae, text_encoder, torch.float16)
    weights = save_facex(tiny_facex(unet, zero=False), root / "facex_tiny.safetensors", {"recognition": "w600k_r50.onnx"})
    models = models_with_detector(root, models_dir, [annotated(SOURCE)])
    return {"checkpoint": checkpoint, "facex": weights, "models": models, "root": root}


def edit(setup, task: str, *extra: str) -> tuple[int, np.ndarray | None]:
    out = setup["root"] / f"{task}.png"
    code = main(["--models-dir", str(setup["models"]), "--device", "cpu", "edit", "--task", task,
                 "--target", str(annotated(TARGET).path), "--checkpoint", str(setup["checkpoint"]),
                 "--facex", str(setup["facex"]), "--base-config", "tiny_sd15", "--out", str(out),
                 "--steps", "2", *extra])
    return code, (np.asarray(Image.open(out)) if out.exists() else None)


def test_face_swap_runs_end_to_end_and_changes_only_the_face_crop(setup):
    """Random weights generate noise; it must land inside the target face's crop and nowhere else."""
    code, result = edit(setup, "face_swap", "--source", str(annotated(SOURCE).path))
    target = read_image_file(annotated(TARGET).path)
    assert code == 0 and result.shape == target.shape
    changed = (result != target).any(-1)
    crop = align_faces(image_tensor(TARGET), [annotated(SOURCE).detections()], 256)
    reach = face_coverage(crop, 1)[0].numpy() > 0
    assert changed.mean() > 0.05
    assert not changed[~reach].any()


def test_motion_editing_from_the_command_line(setup):
    code, result = edit(setup, "motion_editing", "--yaw", "20", "--gaze", "10", "0")
    assert code == 0 and result.shape == read_image_file(annotated(TARGET).path).shape


def test_missing_files_are_all_listed(tmp_path, capsys):
    code = main(["--models-dir", str(tmp_path), "edit", "--task", "reenactment", "--source", str(annotated(SOURCE).path),
                 "--target", str(annotated(TARGET).path), "--checkpoint", str(tmp_path / "v1-5.safetensors"),
                 "--facex", str(tmp_path / "facex_sd15.safetensors"), "--out", str(tmp_path / "out.png")])
    error = capsys.readouterr().err
    assert code == 2
    assert f"--checkpoint: the Stable Diffusion checkpoint (SD1.5 family, one file) {tmp_path / 'v1-5.safetensors'} " \
           "was not found" in error
    assert f"--facex: the FaceX weight file {tmp_path / 'facex_sd15.safetensors'} was not found" in error
    assert "no published FaceX weights exist yet" in error and "python -m facex_core.train" in error
    for role in ("detection", "recognition", "parsing", "recon3d", "gaze"):
        assert f"No model file for the {role} step" in error
