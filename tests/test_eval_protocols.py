"""The paper's evaluation protocols end to end on random-weight models, checked against the
extractors, the CLIP encoder and the metrics called directly on the generated crops.

Generating and measuring a pair costs seconds on a CPU, so the reenactment run is shared
by the module and every generated crop is recorded as the editor returns it.
"""

import json
import math
import os
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from comfy_models import tiny_facex
from conftest import FACES_DIR, annotated, models_with_detector

from facex_core.edit import FaceXEditor
from facex_core.eval.__main__ import main
from facex_core.eval.inception import FEATURE_DIM
from facex_core.eval.metrics import frechet_distance, psnr, rmse, ssim
from facex_core.eval.pairs import PairsFileError, read_pairs
from facex_core.eval.protocols import (
    FidFeatures,
    PairResult,
    Report,
    clip_fid_features,
    evaluate,
    fid_of,
    format_table,
    inception_fid_features,
)
from facex_core.eval.tables import INCEPTION_WEIGHTS, PROTOCOLS
from facex_core.faces.crops import align_faces, detect_and_align
from facex_core.faces.detect import DetectedFace
from facex_core.images import load_image_batch
from facex_core.model.sampling import DEFAULT_SAMPLING, SamplingSettings
from facex_core.model.weights import save_facex
from facex_core.models.locate import roots_from_models_dir
from facex_core.testing.inception import write_fid_inception
from facex_core.testing.sd_checkpoint import tiny_sd, write_single_file

GLASSES_MAN = "portraits/ai_glasses_man.png"
ASTRONAUT = "portraits/real_astronaut_collins.png"
FRAME_0 = "same_identity/ai_ltx2_woman/frame_000.png"
FRAME_40 = "same_identity/ai_ltx2_woman/frame_040.png"
NO_FACE = "bad/no_face_coffee.png"
SETTINGS = SamplingSettings(steps=2, guidance=3.0, seed=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("eval")
    # micro_sd15: tiny_sd15's UNet with a 32-channel VAE, which encodes and decodes crops fast on a CPU
    unet, vae, text_encoder = tiny_sd("micro_sd15")
    checkpoint = write_single_file(root / "micro_sd15.safetensors", unet, vae, text_encoder, torch.float16)
    weights = save_facex(tiny_facex(unet, zero=False), root / "facex_tiny.safetensors",
                         {"recognition": "w600k_r50.onnx"})
    # keyed: each image shows only its own faces, so the coffee cup shows none
    faces = [annotated(name) for name in (GLASSES_MAN, ASTRONAUT, FRAME_0, FRAME_40)]
    models = models_with_detector(root, models_dir, faces, keyed=True)
    return {"checkpoint": checkpoint, "facex": weights, "models": models, "root": root}


@pytest.fixture(scope="module")
def editor(setup):
    roots = roots_from_models_dir(setup["models"])
    return FaceXEditor.open(setup["checkpoint"], setup["facex"], roots, "micro_sd15", "cpu")


def write_pairs(folder, pairs: list[tuple[str, str]]):
    """A pairs CSV in `folder` naming the test faces relative to it."""
    relative = lambda name: os.path.relpath(FACES_DIR / name, folder)  # noqa: E731
    path = folder / "pairs.csv"
    path.write_text("source,target\n" + "".join(f"{relative(s)},{relative(t)}\n" for s, t in pairs))
    return path


@contextmanager
def recorded_generations():
    """Every (job, Generated) that any FaceXEditor returns while the block runs."""
    records, generate = [], FaceXEditor.generate

    def recording(self, job, settings=DEFAULT_SAMPLING):
        generated = generate(self, job, settings)
        records.append((job, generated))
        return generated

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FaceXEditor, "generate", recording)
        yield records


@pytest.fixture(scope="module")
def reenactment(setup, editor, tmp_path_factory):
    listed = [(GLASSES_MAN, FRAME_0), (ASTRONAUT, FRAME_40), (GLASSES_MAN, NO_FACE)]
    pairs = read_pairs(write_pairs(tmp_path_factory.mktemp("pairs"), listed))
    fid_network = clip_fid_features(editor, roots_from_models_dir(setup["models"]))
    with recorded_generations() as records:
        report = evaluate(editor, PROTOCOLS["reenactment"], pairs, SETTINGS, fid_network)
    return report, records


def table_rows(table: str) -> list[str]:
    return [line for line in table.splitlines() if line.startswith("|")]


def test_reenactment_table_has_the_paper_columns_and_one_method_row(reenactment):
    report, _ = reenactment
    table = format_table(report)
    header, rule, row = table_rows(table)
    assert header == ("| Method | ID similarity ↑ | Expression error ↓ | Pose error (rad) ↓ "
                      "| Gaze error (rad) ↓ | FID (CLIP ViT-L/14) ↓ |")
    assert rule.count("|") == header.count("|")
    name, *values = [cell.strip() for cell in row.strip("|").split("|")]
    means = report.means
    assert name == "FaceX (ours)"
    assert [float(v) for v in values] == pytest.approx(
        [means["identity"], means["expression"], means["pose"], means["gaze"], report.fid.value], abs=1e-2)
    assert "Pairs evaluated: 2; skipped: 1." in table
    assert "FID features: CLIP ViT-L/14 projected image embeddings" in table


def test_identity_and_motion_errors_are_the_extractor_outputs_compared(reenactment, editor):
    """Identity: cosine of the generated and source ArcFace embeddings; expression, pose and
    gaze: Euclidean distance of the generated and target outputs (first pair)."""
    report, records = reenactment
    extractors = editor.extractors
    for (job, generated), result in zip(records, report.pairs, strict=True):
        assert (str(job.source), str(job.target)) == (result.source, result.target) and job.task == "reenactment"
        source = detect_and_align(load_image_batch(job.source), editor.detector, generated.crops.shape[1])
        made = generated.target.faces.with_crops(generated.crops)
        cosine = F.cosine_similarity(extractors.identity.encode(made).embedding,
                                     extractors.identity.encode(source).embedding)
        assert result.values["identity"] == pytest.approx(cosine.item(), abs=1e-5)
    (_, generated), first = records[0], report.pairs[0]
    made, target = generated.target.faces.with_crops(generated.crops), generated.target.faces
    motion_made, motion_target = extractors.motion.extract(made), extractors.motion.extract(target)
    expected = {
        "expression": (motion_made.expression - motion_target.expression)[0].norm(),
        "pose": (motion_made.angles - motion_target.angles)[0].norm(),
        "gaze": (extractors.gaze.extract(made) - extractors.gaze.extract(target))[0].norm(),
    }
    for key, value in expected.items():
        assert first.values[key] == pytest.approx(value.item(), rel=1e-5, abs=1e-6)
    assert first.values["expression"] > 0 and first.values["pose"] > 0  # random weights: nothing matches by chance


def test_the_generated_face_is_measured_on_its_own_detection_when_one_is_found(setup, editor):
    """A generated face need not sit where the target's was: when the detector finds it in the
    generated crop, that detection aligns it, not the target's keypoints. With the keyed test
    detector (no face in random crops) the fallback, the crop as generated, is used and said."""
    pair = read_pairs(write_pairs(setup["root"], [(GLASSES_MAN, FRAME_0)]))
    with recorded_generations() as records:
        fallback = evaluate(editor, PROTOCOLS["reenactment"], pair, SETTINGS)
    assert [p.redetected for p in fallback.pairs] == [False]
    assert "measured on their own detection: 0 of 1" in format_table(fallback)
    [(_, generated)] = records
    shifted = generated.target.faces.crop_kps[0].numpy() + np.array([4.0, -3.0])  # the face moved in the crop
    moved = DetectedFace(box=np.array([0.0, 0.0, 60.0, 60.0]), kps=shifted.astype(np.float64), score=0.9)
    detect, crop_hw = editor.detector.detect, tuple(generated.crops.shape[1:3])

    def detect_moved_in_crops(image, *args):
        return [moved] if image.shape[:2] == crop_hw else detect(image, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(editor.detector, "detect", detect_moved_in_crops)
        measured = evaluate(editor, PROTOCOLS["reenactment"], pair, SETTINGS)
    assert [p.redetected for p in measured.pairs] == [True]
    realigned = align_faces(generated.crops, [[moved]], generated.crops.shape[1])
    expected = editor.extractors.motion.extract(realigned).angles
    target_angles = editor.extractors.motion.extract(generated.target.faces).angles
    assert measured.pairs[0].values["pose"] == pytest.approx((expected - target_angles)[0].norm().item(), rel=1e-5)
    assert measured.pairs[0].values["pose"] != pytest.approx(fallback.pairs[0].values["pose"], rel=1e-3)


def test_a_pair_without_a_face_is_skipped_and_reported_while_the_others_are_evaluated(reenactment):
    report, records = reenactment
    coffee = str(FACES_DIR / NO_FACE)
    assert len(report.pairs) == len(records) == 2
    assert [(pair.target, pair.reason) for pair in report.skipped] == [(coffee, f"no face was found in {coffee}")]
    assert f"Skipped {FACES_DIR / GLASSES_MAN} -> {coffee}: no face was found" in format_table(report)
    assert report.to_json()["skipped"][0]["target"] == coffee


def test_fid_is_the_frechet_distance_of_clip_image_embeddings(reenactment, editor):
    report, records = reenactment

    @torch.no_grad()
    def embeddings(crops):
        return editor.clip.model(pixel_values=editor.clip.preprocess(crops)).image_embeds.double().numpy()

    generated = np.concatenate([embeddings(g.crops) for _, g in records])
    real = np.concatenate([embeddings(g.target.faces.crops) for _, g in records])
    assert report.fid.network == "CLIP ViT-L/14" and generated.shape == (2, editor.clip.model.config.projection_dim)
    assert math.isfinite(report.fid.value) and report.fid.value > 0
    assert report.fid.value == pytest.approx(frechet_distance(generated, real), rel=1e-6)


def test_reconstruction_from_the_command_line_matches_ssim_psnr_rmse_of_the_crops(setup, tmp_path, capsys):
    """The ground truth is the target's aligned crop, the one the generated crop is aligned to."""
    out = tmp_path / "reconstruction.json"
    pairs = write_pairs(tmp_path, [(FRAME_0, FRAME_40)])
    with recorded_generations() as records:
        code = main(["reconstruction", "--pairs", str(pairs), "--checkpoint", str(setup["checkpoint"]),
                     "--facex", str(setup["facex"]), "--models-dir", str(setup["models"]),
                     "--base-config", "micro_sd15", "--device", "cpu", "--steps", "2", "--method", "Mine",
                     "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    header, _, row = table_rows(printed)
    assert header == "| Method | SSIM ↑ | PSNR (dB) ↑ | RMSE ↓ |" and row.startswith("| Mine |")
    assert "FID" not in printed
    [(job, generated)] = records
    assert job.task == "reenactment"
    results = json.loads(out.read_text())
    expected = {name: metric(generated.crops, generated.target.faces.crops).item()
                for name, metric in (("ssim", ssim), ("psnr", psnr), ("rmse", rmse))}
    assert results["pairs_evaluated"] == 1 and results["fid"] is None
    assert results["pairs"][0]["values"] == pytest.approx(expected, rel=1e-6)
    assert results["means"] == pytest.approx(expected, rel=1e-6)
    assert 0 < expected["rmse"] < 1 and expected["ssim"] < 1


def test_a_missing_pairs_file_exits_2_with_a_clear_message(tmp_path, capsys):
    missing = tmp_path / "pairs.csv"
    code = main(["reenactment", "--pairs", str(missing), "--checkpoint", str(tmp_path / "sd.safetensors"),
                 "--facex", str(tmp_path / "facex.safetensors"), "--models-dir", str(tmp_path)])
    assert code == 2
    assert f"error: The pairs file {missing} does not exist" in capsys.readouterr().err


def test_inception_fid_without_its_weights_file_is_a_usage_error(tmp_path, capsys):
    code = main(["face_swap", "--pairs", str(tmp_path / "p.csv"), "--checkpoint", "sd", "--facex", "fx",
                 "--fid-network", "inception"])
    assert code == 2
    assert "error: --fid-network inception needs --inception-weights" in capsys.readouterr().err


def test_pairs_file_problems_are_all_listed(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    path = tmp_path / "pairs.csv"
    path.write_text("src,tgt\na.png,a.png\n")
    with pytest.raises(PairsFileError, match="has no column source or target; its header is 'src,tgt'"):
        read_pairs(path)
    path.write_text("source,target\na.png,missing.png\na.png,\n")
    with pytest.raises(PairsFileError) as error:
        read_pairs(path)
    assert f"line 2: {tmp_path / 'missing.png'} does not exist" in str(error.value)
    assert "line 3: a source and a target path are both needed" in str(error.value)
    path.write_text("source,target\n")
    with pytest.raises(PairsFileError, match="lists no pairs"):
        read_pairs(path)


def test_fid_of_fewer_than_two_pairs_is_reported_as_not_computed():
    network = FidFeatures("CLIP ViT-L/14", "test features", lambda crops: np.zeros((len(crops), 4)))
    fid = fid_of(network, [np.ones((1, 4))], [np.zeros((1, 4))])
    assert fid.value is None and "needs at least 2 evaluated pairs, 1 was evaluated" in fid.note
    values = {"identity": 0.5, "expression": 1.25, "pose": 0.125, "gaze": 0.0625}
    report = Report(PROTOCOLS["face_swap"], "Mine", SETTINGS, [PairResult("s.png", "t.png", values, True)], [], fid)
    table = format_table(report)
    header, _, row = table_rows(table)
    assert header.startswith(
        "| Method | ID similarity ↑ | Expression error ↓ | Pose error (rad) ↓ | Gaze error (rad) ↓ | FID (CLIP")
    assert row == "| Mine | 0.5000 | 1.2500 | 0.1250 | 0.0625 | n/a |"
    assert table.startswith("Table 2: face swap") and "FID not computed: it needs at least 2" in table


def test_inception_plugs_in_as_the_fid_network(tmp_path):
    network = inception_fid_features(write_fid_inception(tmp_path / INCEPTION_WEIGHTS), "cpu")
    crops = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    features = network.features(crops)
    assert features.shape == (2, FEATURE_DIM) and np.isfinite(features).all()
    assert network.name == "Inception-v3" and INCEPTION_WEIGHTS in network.detail
