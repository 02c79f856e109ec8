"""Data preparation on real frames: shards, what they hold, skipped frames, resume, ranks, layouts."""

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import FACES_DIR, annotated, image_tensor, require_faces
from safetensors.torch import load_file
from train_fixtures import CLIP_FOLDERS, make_preparer

from facex_core.errors import ImageInputError, UsageError
from facex_core.faces.crops import align_faces
from facex_core.frames import BadFrame, Frame, read_frames
from facex_core.model.sampling import encode
from facex_core.train.__main__ import main as train_main
from facex_core.train.clips import find_clips
from facex_core.train.prepare import Slot, prepare, shard_metadata

require_faces()  # the module lists files of ../shared/faces while it is collected
WOMAN_FRAMES = sorted(p.name for p in (FACES_DIR / CLIP_FOLDERS["woman"]).iterdir())


def shard(data, name):
    return load_file(str(data.prepared / "shards" / f"{name}.safetensors"))


def test_one_shard_per_clip_holding_every_frame_with_a_face(train_data):
    assert train_data.counts == {"clips": 2, "written": 2, "skipped": 0, "already_done": 0, "frames": 18}
    woman = shard(train_data, "woman")
    assert woman["crops"].dtype == torch.uint8 and woman["crops"].shape == (10, 256, 256, 3)
    assert woman["parsing"].dtype == torch.uint8 and woman["parsing"].shape == (10, 256, 256)
    assert woman["identity_tokens"].shape == (10, 49, 512) and woman["identity_tokens"].dtype == torch.float16
    assert woman["latents"].shape == (10, 4, 32, 32) and woman["latents"].dtype == torch.float16
    assert woman["3dmm_expression"].shape == (10, 64) and woman["gaze"].shape == (10, 2)
    assert woman["frame_index"].tolist() == list(range(10))
    metadata = shard_metadata(train_data.prepared / "shards" / "woman.safetensors")
    assert metadata["frames"] == "10" and metadata["resolution"] == "256"
    assert json.loads(metadata["extractors"])["recognition"] == "w600k_r50.onnx"


def test_stored_crops_are_the_aligned_faces_and_latents_their_vae_encoding(train_data):
    woman = shard(train_data, "woman")
    name = f"{CLIP_FOLDERS['woman']}/{WOMAN_FRAMES[3]}"
    expected = align_faces(image_tensor(name), [annotated(name).detections()], 256).crops[0]
    # rounding to uint8, and detector keypoints in float32
    assert (woman["crops"][3].float() / 255 - expected).abs().max() <= 1 / 255
    vae = make_preparer(train_data.models, train_data.checkpoint).vae
    with torch.no_grad():
        latents = encode(vae, expected[None])
    assert (woman["latents"][3:4].float() - latents).abs().max() < 2e-3 * latents.abs().max()  # fp16 storage


def test_a_truncated_frame_and_a_frame_without_a_face_are_skipped_and_logged(train_data):
    performer = shard(train_data, "performer")
    # frames in name order: frame_090, frame_100 (no face), frame_105 ... frame_205, frame_999 (truncated)
    assert performer["frame_index"].tolist() == [0, 2, 3, 4, 5, 6, 7, 8]
    events = [json.loads(line) for line in (train_data.prepared / "log" / "rank0.jsonl").read_text().splitlines()]
    assert {(e["event"], e["clip"], e["frame"]) for e in events} == {("no_face", "performer", 1),
                                                                     ("bad_frame", "performer", 9)}
    assert "frame_999.jpg" in next(e["reason"] for e in events if e["event"] == "bad_frame")


def test_a_second_run_resumes_and_redoes_nothing(train_data):
    shards = sorted((train_data.prepared / "shards").glob("*.safetensors"))
    stamps = [path.stat().st_mtime_ns for path in shards]
    counts = prepare(train_data.data, train_data.prepared, make_preparer(train_data.models, train_data.checkpoint))
    assert counts["already_done"] == 2 and counts["written"] == 0
    assert [path.stat().st_mtime_ns for path in shards] == stamps


def test_two_ranks_split_the_clips_and_together_write_the_same_shards(train_data, tmp_path):
    preparer = make_preparer(train_data.models, train_data.checkpoint, max_frames=3)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "woman.safetensors.partial").write_bytes(b"killed mid-write")
    counts = [prepare(train_data.data, tmp_path, preparer, Slot(rank, 2)) for rank in (0, 1)]
    assert [c["written"] for c in counts] == [1, 1]  # the partial file did not count as done
    for name in CLIP_FOLDERS:
        ours, single = load_file(str(tmp_path / "shards" / f"{name}.safetensors")), shard(train_data, name)
        count = len(ours["frame_index"])
        assert ours["frame_index"].tolist() == single["frame_index"][:count].tolist()
        for key, tensor in single.items():
            # other extractor batches sum in another float32 order, and latents and maps are stored in fp16
            torch.testing.assert_close(ours[key].float(), tensor[:count].float(), rtol=1e-3, atol=1e-3, msg=key)


def test_torchrun_s_environment_gives_the_share(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Slot.from_environment() == Slot(1, 3, "cuda:1")
    assert Slot.from_environment(device="cpu") == Slot(1, 3, "cpu")


def test_the_prepare_command_writes_shards_and_says_what_it_did(train_data, tmp_path, capsys):
    code = train_main(["prepare", "--data", str(train_data.data), "--out", str(tmp_path), "--checkpoint",
                       str(train_data.checkpoint), "--base-config", "micro_sd15",
                       "--models-dir", str(train_data.models),
                       "--every", "3", "--max-frames", "2", "--device", "cpu"])
    assert code == 0
    assert "rank 0: 2 shard(s) with 4 frames written" in capsys.readouterr().out
    assert load_file(str(tmp_path / "shards" / "woman.safetensors"))["frame_index"].tolist() == [0, 3]


def test_rank_outside_the_world_is_refused():
    with pytest.raises(UsageError, match="--rank 2 is outside 0..1"):
        Slot.from_environment(rank=2, world=2)


def write_video(path, frames, fps=10):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_celebv_hq_layout_names_clips_by_its_info_file_and_reports_missing_ones(tmp_path):
    frames = [(image_tensor(f"{CLIP_FOLDERS['woman']}/{name}")[0] * 255).byte().numpy() for name in WOMAN_FRAMES[:4]]
    processed = tmp_path / "downloaded_celebvhq" / "processed"
    processed.mkdir(parents=True)
    for key in ("abc_0", "abc_1"):
        write_video(processed / f"{key}.mp4", frames)
    clip = {"ytb_id": "abc", "duration": {"start_sec": 0, "end_sec": 1}}
    info = {"clips": {key: clip for key in ("abc_0", "abc_1", "gone_0")}}
    (tmp_path / "celebvhq_info.json").write_text(json.dumps(info))
    listing = find_clips(tmp_path)
    assert [clip.name for clip in listing.clips] == ["abc_0", "abc_1"] and listing.missing == ["gone_0"]
    decoded = list(read_frames(listing.clips[0].path))
    assert [type(f) for f in decoded] == [Frame] * 4
    assert decoded[0].pixels.shape == frames[0].shape
    assert np.abs(decoded[0].pixels.astype(float) - frames[0]).mean() < 8  # lossy codec, same picture


def test_plain_layout_finds_videos_and_frame_folders_and_strides_frames(tmp_path):
    frames = [(image_tensor(f"{CLIP_FOLDERS['woman']}/{name}")[0] * 255).byte().numpy() for name in WOMAN_FRAMES[:6]]
    (tmp_path / "talks").mkdir()
    write_video(tmp_path / "talks" / "one.mp4", frames)
    (tmp_path / "stills").symlink_to(FACES_DIR / CLIP_FOLDERS["woman"])
    listing = find_clips(tmp_path)
    assert [clip.name for clip in listing.clips] == ["stills", "talks__one"]
    strided = list(read_frames(listing.clips[1].path, every=2, limit=2))
    assert [f.index for f in strided] == [0, 2]


def test_a_damaged_video_is_logged_not_fatal(tmp_path):
    frames = [(image_tensor(f"{CLIP_FOLDERS['woman']}/{name}")[0] * 255).byte().numpy() for name in WOMAN_FRAMES[:6]]
    video = write_video(tmp_path / "clip.mp4", frames)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    decoded = list(read_frames(find_clips(tmp_path).clips[0].path))
    assert isinstance(decoded[-1], BadFrame) and len(decoded) < 6


def test_a_folder_without_clips_is_a_clear_error(tmp_path):
    with pytest.raises(ImageInputError, match="No videos .* or frame folders were found"):
        find_clips(tmp_path)
