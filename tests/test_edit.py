"""`python -m facex_core edit` end to end on random-weight models in the published layouts."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from comfy_models import tiny_facex
from conftest import FACES_DIR, annotated, image_tensor, models_with_detector
from PIL import Image

from facex_core.__main__ import main
from facex_core.faces.crops import align_faces
from facex_core.faces.paste import face_coverage
from facex_core.image_files import read_image_file
from facex_core.model.weights import save_facex
from facex_core.testing.sd_checkpoint import tiny_sd, write_single_file

SOURCE = "same_identity/ai_ltx2_woman/frame_000.png"
TARGET = "same_identity/ai_ltx2_woman/frame_120.png"


ANIMATION_FRAMES = ("same_identity/ai_ltx2_woman/frame_040.png", "bad/no_face_coffee.png",
                    "same_identity/ai_ltx2_woman/frame_093.png")


def with_tiny_models(models: Path) -> Path:
    """`models` with a tiny SD1.5 checkpoint in checkpoints/ and a random FaceX file in facex/."""
    unet, vae, text_encoder = tiny_sd()
    (models / "checkpoints").mkdir()
    write_single_file(models / "checkpoints" / "tiny_sd15.safetensors", unet, vae, text_encoder, torch.float16)
    save_facex(tiny_facex(unet, zero=False), models / "facex" / "facex_tiny.safetensors",
               {"recognition": "w600k_r50.onnx"})
    return models


@pytest.fixture(scope="module")
def setup(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("edit")
    models = with_tiny_models(models_with_detector(root, models_dir, [annotated(SOURCE)]))
    return {"checkpoint": models / "checkpoints" / "tiny_sd15.safetensors",
            "facex": models / "facex" / "facex_tiny.safetensors",
            "models": models, "root": root}


def edit(setup, task: str, *extra: str, by_name: bool = False) -> tuple[int, np.ndarray | None]:
    """Run `edit`; with by_name the checkpoint and FaceX file are given as bare names."""
    out = setup["root"] / f"{task}.png"
    files = [setup[key].name if by_name else str(setup[key]) for key in ("checkpoint", "facex")]
    code = main(["--models-dir", str(setup["models"]), "--device", "cpu", "edit", "--task", task,
                 "--target", str(annotated(TARGET).path), "--checkpoint", files[0], "--facex", files[1],
                 "--base-config", "tiny_sd15", "--out", str(out), "--steps", "2", *extra])
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


def test_motion_editing_finds_bare_file_names_in_the_models_folder(setup, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the names resolve under models/checkpoints and models/facex, not here
    code, result = edit(setup, "motion_editing", "--yaw", "20", "--gaze", "10", "0", by_name=True)
    assert code == 0 and result.shape == read_image_file(annotated(TARGET).path).shape


@pytest.fixture(scope="module")
def animation_models(tmp_path_factory, models_dir) -> Path:
    """Models whose detector finds each annotated frame's own face, and none in the coffee photo."""
    root = tmp_path_factory.mktemp("animation")
    frames = [annotated(name) for name in (SOURCE, *ANIMATION_FRAMES) if annotated(name).faces]
    return with_tiny_models(models_with_detector(root, models_dir, frames, keyed=True))


@pytest.mark.slow
def test_animation_drives_the_source_with_a_folder_of_frames_and_keeps_faceless_frames(animation_models, tmp_path,
                                                                                      capsys):
    frames = tmp_path / "driving"
    frames.mkdir()
    for index, name in enumerate(ANIMATION_FRAMES):
        (frames / f"{index:03d}{Path(name).suffix}").symlink_to(FACES_DIR / name)
    out = tmp_path / "animated"
    code = main(["edit", "--task", "animation", "--source", str(annotated(SOURCE).path), "--target", str(frames),
                 "--checkpoint", "tiny_sd15.safetensors", "--facex", "facex_tiny.safetensors", "--out", str(out),
                 "--models-dir", str(animation_models), "--base-config", "tiny_sd15", "--device", "cpu",
                 "--steps", "2"])
    assert code == 0
    written = sorted(out.iterdir())
    assert [path.name for path in written] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    assert "1 frame(s) without a face kept as they were: driving frame 1" in capsys.readouterr().out
    for path, name in zip(written, ANIMATION_FRAMES, strict=True):
        result, original = read_image_file(path), read_image_file(FACES_DIR / name)
        changed = (result != original).any(-1)
        if not annotated(name).faces:
            assert not changed.any()  # the faceless frame comes back as it was
            continue
        reach = face_coverage(align_faces(image_tensor(name), [annotated(name).detections()], 256), 1)[0].numpy() > 0
        assert changed.mean() > 0.01 and not changed[~reach].any()


@pytest.mark.slow
def test_animation_reads_and_writes_video(setup, tmp_path):
    video = tmp_path / "driving.mp4"
    frames = [read_image_file(FACES_DIR / name) for name in ("same_identity/ai_ltx2_woman/frame_013.png", TARGET)]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "animated.avi"
    code = main(["edit", "--task", "animation", "--source", str(annotated(SOURCE).path), "--target", str(video),
                 "--checkpoint", str(setup["checkpoint"]), "--facex", str(setup["facex"]), "--out", str(out),
                 "--models-dir", str(setup["models"]), "--base-config", "tiny_sd15", "--device", "cpu", "--steps", "2"])
    assert code == 0
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2 and capture.get(cv2.CAP_PROP_FPS) == 10.0
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == frames[0].shape


def test_missing_files_are_all_listed(tmp_path, capsys):
    code = main(["--models-dir", str(tmp_path), "edit", "--task", "reenactment",
                 "--source", str(annotated(SOURCE).path),
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
