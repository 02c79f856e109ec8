"""The doctor: import failures, onnxruntime providers, insightface folder layout and model files."""


import pytest

from facex_core.doctor import (
    Finding,
    check_files,
    check_imports,
    check_layout,
    check_providers,
    explain_import_error,
    format_findings,
    run_doctor,
)
from facex_core.models.locate import roots_from_models_dir
from facex_core.models.manifest import OPTIONAL_ROLES, ROLES, USER_FILES, entry_by_key

ANTELOPE_FILES = ("scrfd_10g_bnkps.onnx", "glintr100.onnx")


def touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"onnx")


@pytest.mark.parametrize(
    "text",
    [
        "numpy.core.multiarray failed to import",
        "cannot import name: _ARRAY_API not found",
    ],
)
def test_numpy_abi_import_error_says_reinstall_or_pin_numpy(text):
    finding = explain_import_error("insightface.app", ImportError(text), "2.1.0")
    assert finding.status == "fail"
    assert finding.check == "import insightface.app"
    assert "pip install --force-reinstall --no-cache-dir insightface" in finding.message
    assert 'numpy<2' in finding.message
    assert "2.1.0" in finding.message and text in finding.message


def test_missing_insightface_says_it_is_not_installed():
    error = ModuleNotFoundError("No module named 'insightface'", name="insightface")
    finding = explain_import_error("insightface.app", error, "1.26.4")
    assert finding.status == "fail"
    assert "insightface is not installed" in finding.message
    assert "pip install insightface" in finding.message


def test_missing_dependency_of_insightface_is_not_called_a_missing_insightface():
    error = ModuleNotFoundError("No module named 'skimage'", name="skimage")
    finding = explain_import_error("insightface.app", error, "1.26.4")
    assert finding.status == "fail"
    assert "skimage" in finding.message
    assert "insightface is not installed" not in finding.message


@pytest.mark.parametrize(
    "module, error",
    [
        ("kornia", ModuleNotFoundError("No module named 'kornia'", name="kornia")),
        ("cv2", ImportError("libGL.so.1: cannot open shared object file")),
    ],
)
def test_other_import_errors_point_to_requirements(module, error):
    finding = explain_import_error(module, error, "1.26.4")
    assert finding.status == "fail"
    assert f"{type(error).__name__}: {error}" in finding.message
    assert "pip install -r requirements.txt" in finding.message


def test_check_imports_reports_each_module():
    findings = check_imports(("json", "facex_no_such_module_xyz"))
    assert findings[0] == Finding("import json", "ok", "imports")
    assert findings[1].check == "import facex_no_such_module_xyz"
    assert findings[1].status == "fail"
    assert "facex_no_such_module_xyz" in findings[1].message
    assert len(findings) == 2


def test_gpu_with_only_cpu_provider_warns_to_install_onnxruntime_gpu():
    findings = check_providers(True, ["CPUExecutionProvider"], {"onnxruntime"})
    assert [f.status for f in findings] == ["warn"]
    assert "onnxruntime-gpu" in findings[0].message
    assert "only CPUExecutionProvider" in findings[0].message


def test_both_onnxruntime_packages_installed_fails_with_uninstall_both():
    findings = check_providers(False, ["CPUExecutionProvider"], {"onnxruntime", "onnxruntime-gpu", "numpy"})
    assert [f.status for f in findings] == ["fail"]
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in findings[0].message


def test_gpu_with_cuda_provider_is_ok_on_gpu():
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    findings = check_providers(True, providers, {"onnxruntime-gpu"})
    assert findings == [Finding("onnxruntime providers", "ok",
                                "CUDAExecutionProvider, CPUExecutionProvider (ONNX models run on the GPU)")]


def test_no_gpu_and_cpu_provider_is_ok_on_cpu():
    findings = check_providers(False, ["CPUExecutionProvider"], {"onnxruntime"})
    assert [f.status for f in findings] == ["ok"]
    assert "run on the CPU" in findings[0].message


def test_pack_unzipped_one_folder_too_deep_fails_naming_the_proper_folder(tmp_path):
    touch(tmp_path / "insightface" / "models" / "antelopev2" / "antelopev2", *ANTELOPE_FILES)
    findings = check_layout(roots_from_models_dir(tmp_path))
    assert [(f.check, f.status) for f in findings] == [("antelopev2 folder", "fail")]
    assert "unzipped one folder too deep" in findings[0].message
    assert f"move the .onnx files to {tmp_path / 'insightface' / 'models' / 'antelopev2'}." in findings[0].message


def test_pack_without_models_level_fails(tmp_path):
    touch(tmp_path / "insightface" / "antelopev2", *ANTELOPE_FILES)
    findings = check_layout(roots_from_models_dir(tmp_path))
    assert [(f.check, f.status) for f in findings] == [("antelopev2 folder", "fail")]
    assert "missing the 'models' folder level" in findings[0].message
    assert str(tmp_path / "insightface" / "antelopev2") in findings[0].message
    assert str(tmp_path / "insightface" / "models" / "antelopev2") in findings[0].message


def test_zip_not_extracted_warns(tmp_path):
    touch(tmp_path / "insightface" / "models", "buffalo_l.zip")
    findings = check_layout(roots_from_models_dir(tmp_path))
    assert [(f.check, f.status) for f in findings] == [("buffalo_l folder", "warn")]
    assert f"extract its .onnx files into {tmp_path / 'insightface' / 'models' / 'buffalo_l'}" in findings[0].message


def test_correct_layout_is_a_single_ok(tmp_path):
    touch(tmp_path / "insightface" / "models" / "antelopev2", *ANTELOPE_FILES)
    touch(tmp_path / "insightface" / "models" / "buffalo_l", "det_10g.onnx", "w600k_r50.onnx")
    touch(tmp_path / "insightface" / "models", "antelopev2.zip")
    findings = check_layout(roots_from_models_dir(tmp_path))
    assert findings == [Finding("insightface folder layout", "ok", "no misplaced packs")]


def test_check_files_on_empty_folder_fails_once_per_role(tmp_path):
    findings = check_files(roots_from_models_dir(tmp_path))
    assert [(f.check, f.status) for f in findings] == [(f"{role} model", "fail") for role in ROLES] + [
        (f"{role} model", "warn") for role in OPTIONAL_ROLES] + [
        (kind.description, "warn") for kind in USER_FILES.values()]
    messages = {f.check: f.message for f in findings}
    assert messages["analysis model"].startswith(f"No {OPTIONAL_ROLES['analysis']} found; FaceX runs without it.")
    assert str(tmp_path / "facex_extractors" / "facexformer.pt") in messages["analysis model"]
    assert messages["FaceX weight file"].startswith(f"none in {tmp_path / 'facex'}: no published FaceX weights exist")
    assert "python -m facex_core.train" in messages["FaceX weight file"]
    assert f"none in {tmp_path / 'checkpoints'}" in messages["Stable Diffusion checkpoint (SD1.5 family, one file)"]
    assert str(tmp_path / "insightface" / "models" / "buffalo_l" / "det_10g.onnx") in messages["detection model"]
    assert str(tmp_path / "insightface" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx") in messages["detection "
                                                                                                        "model"]
    assert str(tmp_path / "facex_extractors" / "L2CSNet_gaze360.pkl") in messages["gaze model"]
    assert str(tmp_path / "clip_vision" / "clip-vit-large-patch14.safetensors") in messages["clip_vision model"]
    assert f"python -m facex_core.models --models-dir {tmp_path} download" in messages["clip_vision model"]


def test_check_files_lists_the_checkpoints_and_facex_files_found(tmp_path):
    for name in ("checkpoints/v1-5-pruned-emaonly.safetensors", "checkpoints/sd15/dreamshaper.ckpt",
                 "facex/facex_sd15.safetensors", "facex/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    findings = {f.check: f for f in check_files(roots_from_models_dir(tmp_path))}
    facex, checkpoints = findings["FaceX weight file"], findings["Stable Diffusion checkpoint (SD1.5 family, one file)"]
    assert (facex.status, facex.message) == ("ok", f"1 in {tmp_path / 'facex'}: facex_sd15.safetensors")
    assert checkpoints.status == "ok" and checkpoints.message.startswith(f"2 in {tmp_path / 'checkpoints'}: ")
    assert "dreamshaper.ckpt" in checkpoints.message and "v1-5-pruned-emaonly.safetensors" in checkpoints.message


def test_check_files_reports_random_weight_files_as_wrong_size(models_dir):
    findings = check_files(roots_from_models_dir(models_dir))
    by_check = {f.check: f for f in findings}
    wrong_size = ["buffalo_l/w600k_r50", "buffalo_l/det_10g", "bisenet/79999_iter", "deep3dfacerecon/epoch_20",
                  "clip/vit-large-patch14"]
    for key in wrong_size:
        finding = by_check[f"model {key}"]
        assert finding.status == "fail"
        assert "size" in finding.message and f"expected {entry_by_key(key).size:,}" in finding.message
        assert str(models_dir / entry_by_key(key).relative_path) in finding.message
    for role in ("detection", "recognition", "parsing", "recon3d", "clip_vision"):
        assert by_check[f"{role} model"].status == "fail"
    assert "gaze model" not in by_check
    assert by_check["model l2cs/gaze360"] == Finding(
        "model l2cs/gaze360", "ok", str(models_dir / "facex_extractors" / "L2CSNet_gaze360.pkl"))


def test_run_doctor_end_to_end(tmp_path):
    findings = run_doctor(roots_from_models_dir(tmp_path))
    assert findings and all(isinstance(f, Finding) for f in findings)
    assert {f.status for f in findings} <= {"ok", "warn", "fail"}
    checks = [f.check for f in findings]
    assert "import numpy" in checks and "insightface folder layout" in checks
    assert [f.check for f in findings if f.check.endswith(" model")] == [
        f"{role} model" for role in [*ROLES, *OPTIONAL_ROLES]]


def test_format_findings_marks_each_status():
    text = format_findings([
        Finding("a", "ok", "fine"),
        Finding("b", "warn", "hmm"),
        Finding("c", "fail", "broken"),
    ])
    assert text.splitlines() == ["[ok  ] a: fine", "[WARN] b: hmm", "[FAIL] c: broken"]


def test_a_pack_unzipped_too_deep_is_not_also_called_not_unzipped(tmp_path):
    nested = tmp_path / "insightface" / "models" / "antelopev2" / "antelopev2"
    nested.mkdir(parents=True)
    (nested / "glintr100.onnx").write_bytes(b"x")
    (tmp_path / "insightface" / "models" / "antelopev2.zip").write_bytes(b"zip")
    findings = check_layout({"insightface": [tmp_path / "insightface"]})
    assert [f.status for f in findings] == ["fail"]
    assert "unzipped one folder too deep" in findings[0].message
