"""The doctor: checks the environment problems face-pack users run into most, in plain words.

insightface failing to import (no wheel, or built against another NumPy), onnxruntime
running on the CPU while a GPU sits idle, an insightface pack unzipped one folder too deep,
and missing or damaged model files. Each check is a function of the facts it inspects, so
it can be tested without breaking a real installation.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from .models.locate import ModelRoots, candidate_paths, models_dir_of
from .models.manifest import INSIGHTFACE, OPTIONAL_ROLES, ROLES, USER_FILES
from .models.status import FileStatus, all_status, missing_roles, user_file_status

REQUIRED_MODULES = ("numpy", "cv2", "onnx", "onnxruntime", "insightface.app", "kornia", "transformers", "safetensors")
_NUMPY_ABI_SIGNS = (
    "numpy.dtype size changed",
    "_ARRAY_API not found",
    "compiled using NumPy 1.x",
    "numpy.core.multiarray failed to import",
    "numpy.core._multiarray_umath",
)
INSIGHTFACE_PACKS = ("antelopev2", "buffalo_l")


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # "ok", "warn" or "fail"
    message: str


def explain_import_error(module: str, error: BaseException, numpy_version: str) -> Finding:
    """Turn an import failure into the fix users need."""
    text = f"{type(error).__name__}: {error}"
    package = module.split(".")[0]
    if any(sign in text for sign in _NUMPY_ABI_SIGNS):
        return Finding(f"import {module}", "fail",
                       f"{package} was built for another NumPy than the installed {numpy_version} ({text}). "
                       f"Reinstall it for this NumPy: pip install --force-reinstall --no-cache-dir {package}; "
                       "if no build for NumPy 2 exists, pip install \"numpy<2\".")
    missing = getattr(error, "name", None) or ""
    if isinstance(error, ModuleNotFoundError) and missing.split(".")[0] == "insightface":
        return Finding(f"import {module}", "fail",
                       "insightface is not installed. pip install insightface; if it fails to build "
                       "(it compiles C++), install a C++ compiler or use a prebuilt wheel for your Python version.")
    return Finding(f"import {module}", "fail", f"{text}. Install the requirements: pip install -r requirements.txt")


def check_imports(modules: tuple[str, ...] = REQUIRED_MODULES) -> list[Finding]:
    findings = []
    numpy_version = importlib.metadata.version("numpy")
    for module in modules:
        try:
            importlib.import_module(module)
            findings.append(Finding(f"import {module}", "ok", "imports"))
        except Exception as error:  # noqa: BLE001 - any import failure is what we report
            findings.append(explain_import_error(module, error, numpy_version))
    return findings


def check_providers(gpu_present: bool, providers: list[str], installed: set[str]) -> list[Finding]:
    """onnxruntime must be able to use the GPU torch sees, and only one runtime may be installed."""
    findings = []
    if {"onnxruntime", "onnxruntime-gpu"} <= installed:
        findings.append(Finding("onnxruntime packages", "fail",
                                "Both onnxruntime and onnxruntime-gpu are installed; one hides the other. "
                                "pip uninstall -y onnxruntime onnxruntime-gpu, then pip install onnxruntime-gpu "
                                "(or onnxruntime on a machine without an NVIDIA GPU)."))
    if gpu_present and "CUDAExecutionProvider" not in providers:
        findings.append(Finding("onnxruntime GPU", "warn",
                                f"A CUDA GPU is present but onnxruntime offers only {', '.join(providers)}, so face "
                                "detection and ArcFace run on the CPU (slow on video). Install onnxruntime-gpu "
                                "matching "
                                "your CUDA version, after uninstalling onnxruntime."))
    if not findings:
        where = "GPU" if "CUDAExecutionProvider" in providers else "CPU"
        findings.append(Finding("onnxruntime providers", "ok",
                                f"{', '.join(providers)} (ONNX models run on the {where})"))
    return findings


def check_layout(roots: ModelRoots) -> list[Finding]:
    """insightface packs must sit at insightface/models/<pack>/*.onnx."""
    findings = []
    for root in roots.get(INSIGHTFACE, ()):
        for pack in INSIGHTFACE_PACKS:
            proper = Path(root, "models", pack)
            wrong_places = {
                Path(root, "models", pack, pack): "unzipped one folder too deep",
                Path(root, pack): "missing the 'models' folder level",
            }
            misplaced = [(folder, why) for folder, why in wrong_places.items() if list(folder.glob("*.onnx"))]
            findings += [
                Finding(f"{pack} folder", "fail",
                        f"The {pack} files are in {folder} ({why}); move the .onnx files to {proper}.")
                for folder, why in misplaced
            ]
            archives = [Path(root, "models", f"{pack}.zip"), Path(root, f"{pack}.zip")]
            if not misplaced and any(a.is_file() for a in archives) and not list(proper.glob("*.onnx")):
                findings.append(Finding(f"{pack} folder", "warn",
                                        f"{pack}.zip is present but not unzipped; extract its .onnx files into "
                                        f"{proper}."))
    return findings or [Finding("insightface folder layout", "ok", "no misplaced packs")]


def check_files(roots: ModelRoots, verify_hash: bool = False) -> list[Finding]:
    statuses = all_status(roots, verify_hash)

    def advice(status: FileStatus) -> str:
        return status.entry.how_to_get(models_dir_of(roots, status.entry.folder_key))

    def options(role: str) -> str:
        return "; or ".join(
            f"{s.entry.filename} at {(candidate_paths(s.entry, roots) or [s.entry.relative_path])[0]} ({advice(s)})"
            for s in statuses if s.entry.role == role)

    findings = [Finding(f"model {s.entry.key}", "fail", f"{s.path}: {s.problem}; download it again ({advice(s)}).")
                for s in statuses if s.path is not None and s.problem]
    findings += [Finding(f"{role} model", "fail", f"No {ROLES[role]} found. Put {options(role)}.")
                 for role in missing_roles(statuses)]
    findings += [Finding(f"{role} model", "warn",
                         f"No {OPTIONAL_ROLES[role]} found; FaceX runs without it. To use it, put {options(role)}.")
                 for role in missing_roles(statuses, optional=True)]
    present = [s for s in statuses if s.ok]
    findings += [Finding(f"model {s.entry.key}", "ok", str(s.path)) for s in present]
    for kind in USER_FILES.values():
        status = user_file_status(kind, roots)
        findings.append(Finding(kind.description, "ok" if status.found else "warn", status.describe()))
    return findings


def run_doctor(roots: ModelRoots, verify_hash: bool = False) -> list[Finding]:
    """Every check, in the order a user should fix them."""
    import onnxruntime
    import torch

    installed = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions() if dist.metadata["Name"]}
    return (
        check_imports()
        + check_providers(torch.cuda.is_available(), onnxruntime.get_available_providers(), installed)
        + check_layout(roots)
        + check_files(roots, verify_hash)
    )


def format_findings(findings: list[Finding]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    return "\n".join(f"[{marks[f.status]}] {f.check}: {f.message}" for f in findings)
