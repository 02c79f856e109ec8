"""`python -m facex_core extract`: the whole FORD pass from an image file to a safetensors file."""

import subprocess
import sys
from pathlib import Path

from conftest import annotated, models_with_detector
from safetensors import safe_open

from facex_core.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_extract_writes_every_representation(models_dir, tmp_path):
    name = "multi/real_obama_biden_oval_office.jpg"
    models = models_with_detector(tmp_path, models_dir, [annotated(name)])
    out = tmp_path / "faces.safetensors"
    code = main(["--models-dir", str(models), "--device", "cpu", "extract", "--image", str(annotated(name).path),
                 "--out", str(out), "--size", "256", "--face", "all"])
    assert code == 0
    with safe_open(str(out), "pt") as f:
        shapes = {key: tuple(f.get_tensor(key).shape) for key in f.keys()}  # noqa: SIM118 - a safetensors file is not iterable
        assert f.metadata()["crop_size"] == "256"
    assert shapes["crops"] == (2, 256, 256, 3)
    assert shapes["identity_tokens"] == (2, 49, 512) and shapes["identity_embedding"] == (2, 512)
    assert shapes["parsing"] == (2, 256, 256) and shapes["gaze"] == (2, 2)
    assert shapes["3dmm_expression"] == (2, 64) and shapes["3dmm_angles"] == (2, 3)
    assert shapes["matrices"] == (2, 2, 3)


def test_extract_without_models_lists_every_missing_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "facex_core", "--models-dir", str(tmp_path), "extract",
         "--image", str(annotated("portraits/ai_baby.png").path), "--out", str(tmp_path / "x.safetensors")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    for role in ("detection", "recognition", "parsing", "recon3d", "gaze"):
        assert f"No model file for the {role} step" in result.stderr
    assert str(tmp_path / "facex_extractors" / "epoch_20.pth") in result.stderr
    assert "Traceback" not in result.stderr
