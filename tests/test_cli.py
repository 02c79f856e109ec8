"""Every command line as a user types it: a wrong invocation is one named error and exit code 2,
in well under a second per check and with no model file present; common options go before or
after the subcommand; the detector can be asked what it sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FACES_DIR, annotated, planted_detector_file

from facex_core.__main__ import main as facex_main
from facex_core.eval.__main__ import main as eval_main
from facex_core.eval.detection import match_faces
from facex_core.models.__main__ import main as models_main
from facex_core.testing.model_folder import PACK
from facex_core.train.__main__ import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TARGET = "{faces}/same_identity/ai_ltx2_woman/frame_120.png"
SOURCE = "{faces}/same_identity/ai_ltx2_woman/frame_000.png"
MODELS = ["--checkpoint", "v1-5-pruned-emaonly.safetensors", "--facex", "facex_sd15.safetensors"]
SWAP = ["edit", "--task", "face_swap", "--target", TARGET, "--source", SOURCE, *MODELS, "--out", "{tmp}/out.png"]
PER_CHECK_SECONDS = 5.0  # the acceptance bound; the checks themselves take milliseconds, the rest is Python starting


def swap(**changes: str) -> list[str]:
    """The face swap invocation with some flags' values replaced (flags not in it are added)."""
    argv = list(SWAP)
    for flag, value in changes.items():
        flag = "--" + flag.replace("_", "-")
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


def edit(task: str, *extra: str) -> list[str]:
    return ["edit", "--task", task, "--target", TARGET, *MODELS, "--out", "{tmp}/out.png", *extra]


# (id, module, arguments, what the error must name, whether it is one line)
BAD_INVOCATIONS = [
    ("steps-zero", "facex_core", swap(steps="0"), ["--steps 0", "from 1 to 1000"], True),
    ("steps-negative", "facex_core", swap(steps="-3"), ["--steps -3"], True),
    ("steps-above-the-noise-schedule", "facex_core", swap(steps="1001"), ["--steps 1001", "1000 steps"], True),
    ("guidance-negative", "facex_core", swap(guidance="-0.5"), ["--guidance -0.5", "at least 0"], True),
    ("unknown-task", "facex_core", edit("beautify"), ["--task", "beautify", "face_swap"], False),
    ("target-missing", "facex_core", swap(target="{tmp}/nope.png"), ["--target", "nope.png", "does not exist"], True),
    ("target-empty", "facex_core", swap(target="{faces}/bad/empty.png"), ["--target", "empty.png", "empty"], True),
    ("target-truncated", "facex_core", swap(target="{faces}/bad/truncated.jpg"), ["--target", "truncated"], True),
    ("target-not-an-image", "facex_core", swap(target="{faces}/bad/text_not_image.png"),
     ["--target", "text_not_image.png", "not an image"], True),
    ("target-is-a-directory", "facex_core", swap(target="{faces}/portraits"), ["--target", "is a directory"], True),
    ("source-is-a-directory", "facex_core", swap(source="{faces}"), ["--source", "is a directory"], True),
    ("out-is-a-directory", "facex_core", swap(out="{tmp}"), ["--out", "is a directory"], True),
    ("out-without-extension", "facex_core", swap(out="{tmp}/result"), ["--out", "no extension", ".png"], True),
    ("out-unknown-extension", "facex_core", swap(out="{tmp}/result.xyz"), ["--out", ".xyz", ".png"], True),
    ("out-in-a-missing-folder", "facex_core", swap(out="{tmp}/missing/result.png"),
     ["--out", "missing", "does not exist"], True),
    ("regions-typo", "facex_core", edit("attribute_editing", "--reference", SOURCE, "--regions", "hiar,eyebrows"),
     ["--regions", "hiar", "regions are eyebrows, eyes, nose"], True),
    ("regions-input-typo", "facex_core", edit("mixture_editing", "--source", SOURCE, "--regions", "eyes=sorce"),
     ["--regions", "eyes=sorce", "('source', 'target', 'reference')"], True),
    ("mixture-without-regions", "facex_core", edit("mixture_editing", "--source", SOURCE), ["--regions"], True),
    ("attribute-editing-without-reference", "facex_core", edit("attribute_editing"), ["needs --reference"], True),
    ("inpainting-without-hole", "facex_core", edit("inpainting"), ["needs --hole"], True),
    ("face-swap-without-source", "facex_core", edit("face_swap"), ["face_swap needs --source"], True),
    ("hole-of-another-size", "facex_core", edit("inpainting", "--hole", "{faces}/portraits/ai_baby.png"),
     ["--hole", "draw the mask at the target image's size"], True),
    ("input-the-task-does-not-read", "facex_core", swap(reference=SOURCE), ["--reference", "not read by face_swap"],
     True),
    ("motion-flag-for-another-task", "facex_core", swap(yaw="10"), ["--yaw", "only motion_editing"], True),
    ("motion-editing-without-a-change", "facex_core", edit("motion_editing"), ["--yaw", "needs a change"], True),
    ("yaw-out-of-range", "facex_core", edit("motion_editing", "--yaw", "270"), ["--yaw 270", "-180 to 180"], True),
    ("animation-of-one-image", "facex_core", edit("animation", "--source", SOURCE),
     ["--target", "reenactment"], True),
    ("device-typo", "facex_core", swap(device="cdua"), ["--device cdua", "cpu, cuda"], True),
    ("model-files-missing", "facex_core", swap(),
     ["--checkpoint", "{tmp}/models/checkpoints/v1-5-pruned-emaonly.safetensors", "--facex",
      "no published FaceX weights exist yet", "python -m facex_core.train", "No model file for the detection step"],
     False),
    ("extract-out-not-safetensors", "facex_core", ["extract", "--image", TARGET, "--out", "{tmp}/faces.png"],
     ["--out", ".safetensors"], True),
    ("detect-image-missing", "facex_core", ["detect", "--image", "{tmp}/none.jpg"], ["--image", "none.jpg"], True),
    ("detect-threshold-out-of-range", "facex_core", ["detect", "--image", TARGET, "--threshold", "1.5"],
     ["--threshold 1.5"], True),
    ("analyze-image-missing", "facex_core", ["analyze", "--image", "{tmp}/none.jpg"], ["--image", "none.jpg"], True),
    ("analyze-masks-is-a-file", "facex_core", ["analyze", "--image", TARGET, "--masks", TARGET],
     ["--masks", "is a file"], True),
    ("analyze-index-without-face-index", "facex_core", ["analyze", "--image", TARGET, "--index", "1"],
     ["--index 1", "--face index"], True),
    ("analyze-facexformer-missing", "facex_core", ["analyze", "--image", TARGET, "--facexformer", "{tmp}/model.pt"],
     ["--facexformer", "model.pt was not found"], True),
    ("set-wrong-type", "facex_core.train", ["train", "--config", "generalist", "--set", "steps=many"],
     ["--set steps=many", "takes an int"], True),
    ("set-out-of-range", "facex_core.train", ["train", "--config", "generalist", "--set", "condition_dropout=1.5"],
     ["--set condition_dropout=1.5", "up to (not including) 1"], True),
    ("set-without-a-value", "facex_core.train", ["train", "--config", "generalist", "--set", "steps"],
     ["--set steps", "KEY=VALUE"], True),
    ("set-unknown-setting", "facex_core.train", ["train", "--config", "generalist", "--set", "lr=0.1"],
     ["--set lr=0.1", "learning_rate"], True),
    ("config-unknown", "facex_core.train", ["train", "--config", "generalst"],
     ["--config generalst", "face0, face_swap, generalist, generalist_sd2_512, generalist_sd2_768, reenactment"],
     True),
    ("export-of-a-missing-checkpoint", "facex_core.train",
     ["export", "--checkpoint", "{tmp}/runs/generalist/checkpoints/step_0001000"], ["step_0001000", "does not exist"],
     True),
    ("prepare-without-data", "facex_core.train",
     ["prepare", "--data", "{tmp}/clips", "--out", "{tmp}/prepared", "--checkpoint", "v1-5-pruned-emaonly.safetensors"],
     ["--data", "clips", "does not exist"], True),
    ("download-unknown-key", "facex_core.models", ["download", "buffalo_l/det10g"],
     ["buffalo_l/det10g", "buffalo_l/det_10g"], True),
    ("eval-pairs-missing", "facex_core.eval", ["reenactment", "--pairs", "{tmp}/pairs.csv", *MODELS],
     ["pairs.csv", "does not exist"], True),
    ("eval-steps-zero", "facex_core.eval", ["reenactment", "--pairs", "{tmp}/pairs.csv", *MODELS, "--steps", "0"],
     ["--steps 0"], True),
]


@pytest.mark.parametrize("module, argv, needles, one_line", [case[1:] for case in BAD_INVOCATIONS],
                         ids=[case[0] for case in BAD_INVOCATIONS])
def test_a_bad_invocation_is_one_named_error_and_exit_code_2_before_anything_loads(module, argv, needles, one_line,
                                                                                    tmp_path):
    (tmp_path / "models").mkdir()
    values = {"tmp": tmp_path, "faces": FACES_DIR}
    env = os.environ | {"FACEX_MODELS_DIR": str(tmp_path / "models"), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", module, *(part.format(**values) for part in argv)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    if one_line:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    else:  # argparse's usage then its error line, or our error listing several files
        assert lines[0].startswith("error: ") or ": error: " in lines[-1], lines
    for needle in needles:
        assert needle.format(**values) in done.stderr, (needle, done.stderr)
    assert took < PER_CHECK_SECONDS, took
    assert list((tmp_path / "models").iterdir()) == []  # nothing written, nothing fetched


def _outputs(main, argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# every command, with --models-dir given before and after the subcommand
COMMANDS = [
    (facex_main, ["doctor"]),
    (facex_main, ["detect", "--image", TARGET]),
    (facex_main, ["extract", "--image", TARGET, "--out", "{tmp}/faces.safetensors"]),
    (facex_main, ["analyze", "--image", TARGET]),
    (facex_main, swap()),
    (models_main, ["check"]),
    (models_main, ["list"]),
    (models_main, ["download", "bisenet/79999_iter"]),
    (train_main, ["prepare", "--data", "{faces}/same_identity", "--out", "{tmp}/prepared",
                  "--checkpoint", "v1-5-pruned-emaonly.safetensors"]),
    (train_main, ["train", "--config", "generalist"]),
    (train_main, ["export", "--checkpoint", "{tmp}/step_0000001"]),
    (eval_main, ["reenactment", "--pairs", "{tmp}/pairs.csv", *MODELS]),
]


@pytest.mark.parametrize("main, argv", COMMANDS, ids=[f"{main.__module__}-{argv[0]}" for main, argv in COMMANDS])
def test_models_dir_goes_before_or_after_the_subcommand(main, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # nothing is found through the working folder
    models = tmp_path / "my models"
    models.mkdir()
    (tmp_path / "pairs.csv").write_text(f"source,target\n{SOURCE},{TARGET}\n".format(faces=FACES_DIR))
    argv = [part.format(tmp=tmp_path, faces=FACES_DIR) for part in argv]
    before = _outputs(main, ["--models-dir", str(models), *argv], capsys)
    after = _outputs(main, [argv[0], "--models-dir", str(models), *argv[1:]], capsys)
    assert before == after
    if main is not train_main or argv[0] != "export":  # export reads its checkpoint first: nothing to look up yet
        assert str(models) in before[1], before[1]


def test_device_after_the_subcommand_wins_over_the_one_before(tmp_path, capsys):
    code, output = _outputs(facex_main, ["--device", "cpu", *[p.format(tmp=tmp_path, faces=FACES_DIR) for p in swap()],
                                         "--device", "cdua"], capsys)
    assert code == 2 and "--device cdua" in output


def test_training_takes_no_device_flag(capsys):
    code, output = _outputs(train_main, ["--device", "cuda", "train", "--config", "generalist"], capsys)
    assert code == 2 and "accelerate launch" in output


def _detect_json(argv: list[str], capsys) -> dict:
    assert facex_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_detect_prints_each_face_left_to_right_with_box_points_and_score(tmp_path, capsys):
    image = annotated("multi/real_obama_biden_oval_office.jpg")
    detector = planted_detector_file(tmp_path / "det_10g.onnx", [image])
    found = _detect_json(["detect", "--image", str(image.path), "--detector", str(detector)], capsys)["faces"]
    truth = sorted(image.faces, key=lambda face: face["bbox"][0])
    assert len(found) == len(truth) == 2
    for face, expected in zip(found, truth, strict=True):
        # the planted detector returns the annotation; JSON rounds to 0.1 px
        np.testing.assert_allclose(face["box"], expected["bbox"], atol=0.051)
        np.testing.assert_allclose(list(face["points"].values()), expected["landmarks_5"], atol=0.051)
        assert list(face["points"]) == ["left_eye", "right_eye", "nose", "left_mouth", "right_mouth"]
    assert facex_main(["detect", "--image", str(image.path), "--detector", str(detector)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"2 face(s) in {image.path}") and "left_eye" in text and "score" in text


def test_detect_uses_the_detector_of_the_models_folder(tmp_path, capsys):
    image = annotated("portraits/real_astronaut_collins.png")
    (tmp_path / PACK).mkdir(parents=True)
    planted_detector_file(tmp_path / PACK / "det_10g.onnx", [image])
    result = _detect_json(["detect", "--models-dir", str(tmp_path), "--image", str(image.path)], capsys)
    assert result["detector"] == str(tmp_path / PACK / "det_10g.onnx") and len(result["faces"]) == 1


@pytest.mark.parametrize("name", ["multi/real_obama_biden_oval_office.jpg", "multi/real_group_t1.jpg"])
def test_detect_with_the_real_scrfd_finds_the_annotated_faces(name, real_scrfd, capsys):
    """A real trained detector through the command: every well-annotated face is found."""
    image = annotated(name)
    found = _detect_json(["detect", "--image", str(image.path), "--detector", str(real_scrfd)], capsys)["faces"]
    truths = [np.array(face["landmarks_5"]) for face in image.faces if face["landmarks_quality"] == "good"]
    matches = match_faces(name, [np.array(list(face["points"].values())) for face in found], truths)
    assert all(match.error is not None for match in matches), matches
    assert all(face["score"] >= 0.5 for face in found)
