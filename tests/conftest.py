"""Shared fixtures: the annotated faces in ../shared/faces and random-weight model files in
the published layouts (facex_core.testing)."""

from __future__ import annotations

import inspect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from registry_models import fetch_real_scrfd

from facex_core.faces.detect import DetectedFace, FaceDetector
from facex_core.image_files import read_image_file
from facex_core.testing import onnx_models
from facex_core.testing.model_folder import PACK, write_extractors

pytest_plugins = ["train_fixtures", "face0_fixtures"]

# The annotated test faces: ../shared/faces beside the checkout, or where FACEX_TEST_FACES says.
FACES_DIR = Path(os.environ.get("FACEX_TEST_FACES") or Path(__file__).resolve().parents[1].parent / "shared" / "faces")
FACES_MISSING = None if (FACES_DIR / "annotations.json").is_file() else (
    f"the annotated test faces are missing ({FACES_DIR / 'annotations.json'}); put ../shared/faces beside the "
    "checkout or set FACEX_TEST_FACES")
NODES_DIR = Path(__file__).resolve().parents[1] / "nodes"
# The node ids this pack declares, read from nodes/ (its modules import ComfyUI, tier 1 cannot).
PACK_NODE_IDS = frozenset(re.findall(r'node_id="(\w+)"', "".join(p.read_text() for p in NODES_DIR.glob("*.py"))))


@dataclass(frozen=True)
class AnnotatedImage:
    name: str  # path relative to FACES_DIR
    entry: dict

    @property
    def path(self) -> Path:
        return FACES_DIR / self.name

    @property
    def faces(self) -> list[dict]:
        return self.entry.get("faces") or []

    def detections(self, quality: tuple[str, ...] = ("good", "approximate", "poor")) -> list[DetectedFace]:
        """The annotated faces as detector output (dlib box, 5 points), left to right."""
        return [
            DetectedFace(box=np.array(f["bbox"], float), kps=np.array(f["landmarks_5"], float), score=1.0)
            for f in self.faces
            if f["landmarks_quality"] in quality
        ]


def require_faces() -> None:
    """Skip the calling test, or the whole module when called while it is collected, if the
    annotated faces are missing."""
    if FACES_MISSING:
        pytest.skip(FACES_MISSING, allow_module_level=True)


# What a test that reads the faces names, in its own code or in a fixture it uses.
FACE_USES = re.compile(r"\b(FACES_DIR|annotated|image_tensor|decodable_with_good_faces|planted_detector|"
                       r"models_with_detector|ANNOTATIONS)\b")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without the annotated faces, every test that reads them skips and says why; the rest run."""
    if not FACES_MISSING:
        return
    for item in items:
        fixtures = [definitions[-1].func for definitions in item._fixtureinfo.name2fixturedefs.values()]
        paths = {name for name, value in vars(item.module).items()  # module constants such as ASTRONAUT
                 if isinstance(value, Path) and value.is_relative_to(FACES_DIR)}
        uses = re.compile(FACE_USES.pattern + "".join(rf"|\b{name}\b" for name in paths))
        if any(uses.search(_source(function)) for function in (item.function, *fixtures)):
            item.add_marker(pytest.mark.skip(reason=FACES_MISSING))


def _source(function) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):  # built without Python source
        return ""


ANNOTATIONS = {} if FACES_MISSING else json.loads((FACES_DIR / "annotations.json").read_text())["images"]


def annotated(name: str) -> AnnotatedImage:
    require_faces()
    return AnnotatedImage(name, ANNOTATIONS[name])


def decodable_with_good_faces() -> list[AnnotatedImage]:
    """Every image (bad/ ones included when they decode) with at least one 'good' face."""
    require_faces()
    return [
        AnnotatedImage(name, entry)
        for name, entry in ANNOTATIONS.items()
        if entry.get("faces") and any(f["landmarks_quality"] == "good" for f in entry["faces"])
    ]


def planted_detector_file(path: Path, images: list[AnnotatedImage], keyed: bool = False) -> Path:
    """A SCRFD-layout ONNX file that 'detects' the annotated faces of `images`: in any image
    (all of them), or with `keyed` only each image's own faces in that image."""
    planted = []
    for image in images:
        pixels = read_image_file(image.path)
        scale = onnx_models.letterbox_scale(*pixels.shape[:2])
        faces = [onnx_models.PlantedFace(np.array(f["bbox"], float) * scale, np.array(f["landmarks_5"], float) * scale)
                 for f in image.faces]
        planted.append(onnx_models.PlantedImage(faces, onnx_models.detector_input_mean(pixels) if keyed else None))
    onnx.save(onnx_models.scrfd_planted(planted), str(path))
    return path


def models_with_detector(root: Path, shared: Path, images: list[AnnotatedImage], keyed: bool = False) -> Path:
    """A models folder under `root` using the extractors of `shared` (linked, not copied) and a
    detector that finds the faces of `images` (with `keyed`, each image's own faces only)."""
    models = root / "models"
    (models / PACK).mkdir(parents=True)
    (models / PACK / "w600k_r50.onnx").symlink_to(shared / PACK / "w600k_r50.onnx")
    for folder in ("facex_extractors", "clip_vision"):
        (models / folder).symlink_to(shared / folder)
    planted_detector_file(models / PACK / "det_10g.onnx", images, keyed)
    return models


@pytest.fixture
def planted_detector(tmp_path):
    """Factory: a FaceDetector that finds the annotated faces of the named image."""

    def make(*names: str) -> FaceDetector:
        file = planted_detector_file(tmp_path / "det_10g.onnx", [annotated(name) for name in names])
        return FaceDetector(file, device="cpu")

    return make


@pytest.fixture(scope="session")
def real_scrfd(tmp_path_factory) -> Path:
    """The real SCRFD-2.5G of the scrfd==0.3.0 source archive (skips when the registry is unreachable)."""
    return fetch_real_scrfd(tmp_path_factory.mktemp("scrfd"))


@pytest.fixture(scope="session")
def empty_detector_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("det") / "scrfd_10g_bnkps.onnx"
    onnx.save(onnx_models.scrfd_empty(), str(path))
    return path


@pytest.fixture(scope="session")
def arcface_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arcface") / "w600k_r50.onnx"
    onnx.save(onnx_models.arcface(**onnx_models.TINY_ARCFACE), str(path))
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A ComfyUI models folder holding every extractor in its published layout (random weights)
    and a detector that finds no face."""
    root = write_extractors(tmp_path_factory.mktemp("models"))
    onnx.save(onnx_models.scrfd_empty(), str(root / PACK / "det_10g.onnx"))
    return root


def image_tensor(name: str) -> torch.Tensor:
    """[1, H, W, 3] float batch of an annotated image."""
    require_faces()
    return torch.from_numpy(read_image_file(FACES_DIR / name)).float()[None] / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.fixture(scope="session")
def comfy_base(tmp_path_factory):
    """A ComfyUI base directory with this pack in custom_nodes and every model file a FaceX
    graph needs (tier 2)."""
    from comfy_server import COMFYUI_PATH, SKIP_REASON, ComfyServer

    if not COMFYUI_PATH:
        pytest.skip(SKIP_REASON)
    import comfy_models

    base = tmp_path_factory.mktemp("comfy")
    ComfyServer(base)  # lays out the folders and links the pack
    comfy_models.populate(base)
    return base


@pytest.fixture(scope="session")
def comfy_server(comfy_base):
    """A running ComfyUI over comfy_base."""
    from comfy_server import ComfyServer

    server = ComfyServer(comfy_base).start()
    yield server
    server.stop()
