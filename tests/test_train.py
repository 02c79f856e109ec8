"""The trainer on tiny networks and real frames: it learns, resumes exactly, averages
gradients across processes like one process, and exports a file `edit` runs."""

import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import FACES_DIR, annotated, image_tensor
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from train_fixtures import CLIP_FOLDERS, TrainData, tiny_run
from train_gradients import next_batch_gradients, two_gloo_processes

from facex_core.__main__ import main as facex_main
from facex_core.errors import ConfigError
from facex_core.faces.crops import align_faces
from facex_core.faces.paste import face_coverage
from facex_core.ford.checkpoint import under_prefix
from facex_core.ford.clip_vision import ClipVisionEncoder
from facex_core.image_files import read_image_file
from facex_core.model.weights import load_facex
from facex_core.train.__main__ import main as train_main
from facex_core.train.checkpoints import complete_checkpoints, fine_tune_start, latest_checkpoint, read_checkpoint
from facex_core.train.config import TrainConfig
from facex_core.train.engine import micro_batch_size
from facex_core.train.step import draw
from facex_core.train.trainer import Trainer

HERE = Path(__file__).parent


@pytest.mark.slow
def test_a_200_step_overfit_run_halves_its_loss(train_data, tmp_path):
    """One sample per step (the least compute that still overfits): the mean loss of the last
    20 steps was 0.41 of the first 20's when this was written."""
    trainer = Trainer(tiny_run(train_data, tmp_path, steps=200, learning_rate=1e-3, batch=1, micro_batch=1))
    trainer.run()
    start, end = statistics.mean(trainer.losses[:20]), statistics.mean(trainer.losses[-20:])
    assert end < 0.5 * start, (start, end)


def test_the_zero_initialised_frc_trains_from_the_frozen_unet_s_own_loss(tiny_trainer):
    """Before any step the FRC adds nothing: the loss is the plain UNet's on the same draws."""
    model = tiny_trainer.accelerator.unwrap_model(tiny_trainer.model)
    batch = next(iter(tiny_trainer.loader(1)))
    with torch.no_grad():
        loss = model(batch)
        latents = batch["target"]["latents"]
        draws = draw(batch["sample"], 0, tuple(latents.shape[1:]), 1000, 0.1)
        noisy = model.scheduler.add_noise(latents, draws.noise, draws.timesteps)
        tiny_trainer.binding.detach()
        try:
            plain = model.binding.unet(noisy, draws.timesteps,
                                       encoder_hidden_states=model.text.expand(2, -1, -1)).sample
        finally:
            tiny_trainer.binding.attach()
    # the FRC adds exactly 0; the trainer reduces the same squared errors in its own order
    torch.testing.assert_close(loss, F.mse_loss(plain, draws.noise), rtol=0, atol=1e-6)


def shipped_way(train_data: TrainData, live_start: Path, output: Path, **settings) -> TrainConfig:
    """A tiny run trained as the shipped configs train: gradient checkpointing on and each
    step's batch in micro-batches of 1 (accumulation), from live FRC projections (live_start)."""
    values = dict(micro_batch=1, gradient_checkpointing=True, init_from=str(live_start))
    return tiny_run(train_data, output, **(values | settings))


@pytest.mark.slow
def test_an_interrupted_and_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one(train_data, live_start,
                                                                                         tmp_path):
    config = shipped_way(train_data, live_start, tmp_path / "whole", steps=4, checkpoint_every=2, learning_rate=1e-3)
    whole = Trainer(config)
    assert whole.accumulation == 2
    whole.run()
    interrupted = replace(config, output=str(tmp_path / "interrupted"))
    Trainer(interrupted).run(until=3)  # stops after step 3: the last checkpoint is step 3
    (tmp_path / "interrupted" / "checkpoints" / "step_0000004.partial").mkdir()  # a crash while saving
    resumed = Trainer(interrupted)
    assert resumed.step == 3
    resumed.run()
    pairs = zip(whole.facex.state_dict().items(), resumed.facex.state_dict().values(), strict=True)
    for (name, expected), actual in pairs:
        assert torch.equal(expected, actual), name
    assert whole.losses[3:] == resumed.losses
    start = read_checkpoint(live_start).facex_model().state_dict()
    moved = {name: not torch.equal(value, start[name]) for name, value in resumed.facex.named_parameters()}
    assert all(moved.values()), [name for name, did in moved.items() if not did]  # equal because trained alike


@pytest.mark.slow
def test_an_interrupted_and_resumed_fp16_run_ends_as_an_uninterrupted_one(train_data, live_start, tmp_path,
                                                                          record_property):
    """The paper's V100 path: fp16 with accelerate's loss scaler, whose state the checkpoint
    carries. In its own process (accelerate fixes the precision once per process); on a
    CPU with accelerate's GPU fp16 switched on there (train_fp16.py says how)."""
    config = tiny_run(train_data, tmp_path / "unused", steps=2, checkpoint_every=1, learning_rate=1e-3,
                      mixed_precision="fp16", init_from=str(live_start))
    (tmp_path / "fp16.json").write_text(json.dumps(config.to_dict()))
    env = os.environ | {"PYTHONPATH": str(HERE.parent)}
    done = subprocess.run([sys.executable, str(HERE / "train_fp16.py"), str(tmp_path / "fp16.json"), "1",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ends = {}
    for name in ("whole", "resumed"):
        with safe_open(str(tmp_path / f"{name}.safetensors"), "pt") as handle:
            ends[name] = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    (whole, whole_parameters), (resumed, resumed_parameters) = ends["whole"], ends["resumed"]
    device = whole["device"]
    record_property("device", device)
    print(f"fp16 resume test ran on {device}")
    # the checkpoint resumed from holds a scaler that has moved: a fresh one would differ from it
    saved = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "step_0000001").state["grad_scaler"]
    fresh = torch.amp.GradScaler(torch.device(device).type, growth_interval=2)
    assert (saved["scale"], saved["_growth_tracker"]) != (fresh.get_scale(), 0), (device, saved)
    assert json.loads(resumed["grad_scaler"]) == json.loads(whole["grad_scaler"]), device
    assert json.loads(resumed["losses"]) == json.loads(whole["losses"])[1:], device
    assert all(math.isfinite(loss) for loss in json.loads(whole["losses"]))
    assert whole_parameters.keys() == resumed_parameters.keys()
    for name, expected in whole_parameters.items():
        assert torch.equal(expected, resumed_parameters[name]), (device, name)
    start = read_checkpoint(live_start).facex_model().state_dict()
    still = [name for name, value in whole_parameters.items() if torch.equal(value, start[name])]
    assert still == [], still  # every parameter trained: no step was lost to a skipped (non-finite) update


def test_fp16_without_a_cuda_gpu_is_refused_before_anything_loads(train_data, tmp_path):
    """accelerate gives fp16 its loss scaler only on CUDA; without one fp16 gradients underflow."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU, where fp16 trains with accelerate's GradScaler")
    config = tiny_run(train_data, tmp_path / "run", mixed_precision="fp16")
    (tmp_path / "fp16.json").write_text(json.dumps(config.to_dict()))
    env = os.environ | {"PYTHONPATH": str(HERE.parent)}
    done = subprocess.run([sys.executable, "-m", "facex_core.train", "train", "--config", str(tmp_path / "fp16.json")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "mixed_precision fp16 needs a CUDA GPU" in done.stderr and "use bf16 or no" in done.stderr
    assert not (tmp_path / "run").exists()


def test_resuming_with_other_settings_is_refused(train_data, tmp_path):
    config = tiny_run(train_data, tmp_path, steps=1)
    Trainer(config).run()
    with pytest.raises(Exception, match="holds a run with other batch, seed"):
        Trainer(replace(config, batch=4, seed=5, steps=2))


def test_gradient_checkpointing_changes_no_gradient(train_data, live_start, tmp_path):
    plain = next_batch_gradients(Trainer(tiny_run(train_data, tmp_path / "a", init_from=str(live_start))))
    checkpointed = next_batch_gradients(Trainer(tiny_run(train_data, tmp_path / "b", gradient_checkpointing=True,
                                                          init_from=str(live_start))))
    assert plain.keys() == checkpointed.keys()
    # with live FRC projections every gradient is non-zero (a batch of 2 drops no condition: null_context has none)
    zero = [name for name, gradient in plain.items() if not gradient.any()]
    assert zero == ["null_context"], zero
    for name in plain:
        # the recomputed forward runs the same kernels; only float32 accumulation order may differ
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_the_micro_batch_fits_the_process_count():
    assert [micro_batch_size(32, world, 8) for world in (1, 2, 4, 8)] == [8, 8, 8, 4]
    assert micro_batch_size(32, 2, 3) == 2
    with pytest.raises(ConfigError, match="A batch of 32 cannot be split evenly over 3 processes"):
        micro_batch_size(32, 3, 8)


@pytest.mark.slow
def test_two_gloo_processes_average_the_gradients_of_one_process_on_the_same_batch(train_data, live_start,
                                                                                   tmp_path):
    """As shipped: DDP, gradient checkpointing and accumulation (2 micro-batches of 1 per
    process), from live FRC projections, on a batch of 4 that drops one sample's condition
    (sample 3), so that every trainable parameter, null_context included, has a gradient."""
    gradients = two_gloo_processes(shipped_way(train_data, live_start, tmp_path / "two", batch=4), tmp_path)
    two = load_file(str(gradients))
    one_process = Trainer(shipped_way(train_data, live_start, tmp_path / "one", batch=4, micro_batch=4))
    one = next_batch_gradients(one_process)
    assert one_process.accumulation == 1
    trainable = {name for name, parameter in one_process.facex.named_parameters() if parameter.requires_grad}
    assert two.keys() == one.keys() == trainable
    zero = [name for gradients in (one, two) for name, gradient in gradients.items() if not gradient.any()]
    assert not zero, zero
    for name in one:
        # gloo's all-reduce and the accumulation sum the four samples in another order than one process does
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-7, msg=name)
    with safe_open(str(gradients), "pt") as handle:
        assert handle.metadata() == {"processes": "2", "backend": "gloo", "accumulation": "2"}


@pytest.fixture(scope="module")
def exported(train_data, tmp_path_factory):
    """A finished 2-step run through the command line, and its exported weight file."""
    output = tmp_path_factory.mktemp("exported")
    config = tiny_run(train_data, output / "run", steps=2, validate_every=2, validation_samples=2, validation_steps=2,
                      validation_clips=1)
    (output / "config.json").write_text(json.dumps(config.to_dict()))
    assert train_main(["train", "--config", str(output / "config.json"), "--set", "learning_rate=0.001"]) == 0
    return output / "run"


def test_a_finished_run_exports_a_weight_file_that_loads(exported, train_data):
    loaded = load_facex(exported / "facex_head_swap.safetensors")
    assert loaded.metadata["region_encoder"] == "clip_vision:clip-vit-large-patch14.safetensors"
    assert json.loads(loaded.metadata["extractors"])["recon3d"] == "epoch_20.pth"
    trained = load_file(str(latest_checkpoint(exported).folder / "trainable.safetensors"))
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, trained[f"facex.{name}"].half().float()), name  # export is exactly a cast to fp16
    again = exported / "again.safetensors"
    assert train_main(["export", "--checkpoint", str(latest_checkpoint(exported).folder), "--out", str(again)]) == 0
    assert load_file(str(again)).keys() == load_file(str(exported / "facex_head_swap.safetensors")).keys()


def test_the_exported_file_drives_the_edit_command(exported, train_data, tmp_path):
    frames = sorted((FACES_DIR / CLIP_FOLDERS["woman"]).iterdir())
    out = tmp_path / "swapped.png"
    code = facex_main(["--models-dir", str(train_data.models), "--device", "cpu", "edit", "--task", "head_swap",
                       "--source", str(frames[0]), "--target", str(frames[5]),
                       "--checkpoint", str(train_data.checkpoint),
                       "--facex", str(exported / "facex_head_swap.safetensors"), "--base-config", "micro_sd15",
                       "--out", str(out), "--steps", "2"])
    target = read_image_file(frames[5])
    result = np.asarray(Image.open(out))
    assert code == 0 and result.shape == target.shape
    name = f"{CLIP_FOLDERS['woman']}/{frames[5].name}"
    reach = face_coverage(align_faces(image_tensor(name), [annotated(name).detections()], 256), 1)[0].numpy() > 0
    changed = (result != target).any(-1)
    assert changed.mean() > 0.05 and not changed[~reach].any()  # the face changed, nothing outside its crop


def test_validation_grids_are_saved_and_logged(exported):
    grid = np.asarray(Image.open(exported / "validation" / "step_0000002.png"))
    assert grid.shape == (2 * 256, 4 * 256, 3)
    assert list((exported / "logs").rglob("events.out.tfevents.*"))


def test_validation_clips_are_held_out_of_training(train_data, tmp_path):
    trainer = Trainer(tiny_run(train_data, tmp_path / "a", validation_clips=1))
    assert [info.clip for info in trainer.stream.shards] == ["performer"]
    assert [info.clip for info in trainer.validation_stream.shards] == ["woman"]
    with pytest.raises(Exception, match="holds 2 clip.s.; holding out 2 for validation leaves none"):
        Trainer(tiny_run(train_data, tmp_path / "b", validation_clips=2))


def test_checkpoints_keep_only_the_newest(train_data, tmp_path):
    Trainer(tiny_run(train_data, tmp_path, steps=4, checkpoint_every=1, keep_checkpoints=2)).run()
    assert [path.name for path in complete_checkpoints(tmp_path)] == ["step_0000003", "step_0000004"]


def test_a_fine_tuned_clip_trains_and_travels_in_the_weight_file(train_data, tmp_path):
    """Two steps: the first only moves the zero-initialised projections (nothing upstream of
    them has a gradient yet), the second reaches CLIP."""
    out = Trainer(tiny_run(train_data, tmp_path, steps=2, finetune_clip=True, learning_rate=1e-3)).run()
    loaded = load_facex(out)
    assert loaded.metadata["region_encoder"] == "embedded"
    original = ClipVisionEncoder.from_path(train_data.models / "clip_vision" / "clip-vit-large-patch14.safetensors")
    tuned = ClipVisionEncoder.from_state(loaded.clip_state, out)
    name = "vision_model.encoder.layers.0.mlp.fc1.weight"
    assert not torch.equal(original.model.state_dict()[name].half(), tuned.model.state_dict()[name].half())
    # a later stage with CLIP frozen keeps the tuned CLIP it starts from, and its file carries it on
    stage = Trainer(tiny_run(train_data, tmp_path / "stage", task="face_swap", steps=1, init_from=str(out))).run()
    assert load_facex(stage).metadata["region_encoder"] == "embedded"
    assert torch.equal(load_facex(stage).clip_state[name], loaded.clip_state[name])


def test_a_fine_tune_stage_starts_from_the_generalist_s_float32_checkpoint(exported, train_data, tmp_path):
    """Exactly the weights training reached, which the fp16 export rounds."""
    folder = latest_checkpoint(exported).folder
    trained = under_prefix(load_file(str(folder / "trainable.safetensors")), "facex.")
    assert not all(torch.equal(value, value.half().float()) for value in trained.values())
    current = Trainer(tiny_run(train_data, tmp_path, task="reenactment", init_from=str(folder))).facex.state_dict()
    assert current.keys() == trained.keys()
    assert all(torch.equal(value, current[key]) for key, value in trained.items())
    as_file, _ = fine_tune_start(folder / "trainable.safetensors", "cpu")  # the checkpoint's weight file works too
    assert all(torch.equal(value, as_file.state_dict()[key]) for key, value in trained.items())


def test_an_init_from_that_is_no_checkpoint_is_named_before_anything_loads(train_data, tmp_path, capsys):
    clip = train_data.models / "clip_vision" / "clip-vit-large-patch14.safetensors"
    code = train_main(["train", "--config", "reenactment", "--set", f"checkpoint={train_data.checkpoint}",
                       "--set", f"prepared={train_data.prepared}", "--set", f"output={tmp_path / 'run'}",
                       "--set", f"clip_vision={clip}",
                       "--set", f"init_from={tmp_path / 'generalist' / 'checkpoints' / 'step_0020000'}"])
    error = capsys.readouterr().err
    assert code == 2 and "init_from (--set init_from=PATH): The checkpoint" in error and "does not exist" in error
    assert not (tmp_path / "run").exists()


def test_a_fine_tune_stage_starts_from_the_generalist_file(exported, train_data, tmp_path):
    generalist = exported / "facex_head_swap.safetensors"
    trainer = Trainer(tiny_run(train_data, tmp_path, task="reenactment", steps=1, init_from=str(generalist)))
    current = trainer.facex.state_dict()
    assert all(torch.equal(value, current[key]) for key, value in load_facex(generalist).model.state_dict().items())
    out = trainer.run()
    assert out.name == "facex_reenactment.safetensors"
    assert load_facex(out).metadata["region_encoder"] == "clip_vision:clip-vit-large-patch14.safetensors"


@pytest.mark.slow
def test_bf16_training_runs_from_the_command_line(train_data, tmp_path):
    """In its own process: accelerate fixes the precision once per process."""
    config = tiny_run(train_data, tmp_path / "run", steps=2, mixed_precision="bf16")
    (tmp_path / "bf16.json").write_text(json.dumps(config.to_dict()))
    env = os.environ | {"PYTHONPATH": str(HERE.parent)}
    done = subprocess.run([sys.executable, "-m", "facex_core.train", "train", "--config", str(tmp_path / "bf16.json")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = latest_checkpoint(tmp_path / "run").weights
    assert all(value.dtype == torch.float32 and value.isfinite().all() for value in trained.values())  # master weights
    initial = Trainer(tiny_run(train_data, tmp_path / "fresh")).facex.state_dict()
    assert not torch.equal(trained["facex.frc.0.zero_proj.weight"], initial["frc.0.zero_proj.weight"])


def test_the_paper_s_recipe_ships_as_three_configs():
    stages = {name: TrainConfig.from_file(name) for name in ("generalist", "reenactment", "face_swap")}
    assert {name: (c.task, c.steps) for name, c in stages.items()} == {
        "generalist": ("head_swap", 20_000), "reenactment": ("reenactment", 15_000), "face_swap": ("face_swap", 5_000)}
    for config in stages.values():
        recipe = (config.batch, config.learning_rate, config.condition_dropout, config.mixed_precision)
        assert recipe == (32, 1e-5, 0.1, "bf16")
    generalist = stages["generalist"]
    last_checkpoint = f"{generalist.output}/checkpoints/step_{generalist.steps:07d}"  # float32, kept: the run's last
    assert stages["reenactment"].init_from == stages["face_swap"].init_from == last_checkpoint
    assert TrainConfig.from_file("generalist",
                                 ["steps=10", "output=runs/x", "finetune_clip=true"]).finetune_clip is True
    with pytest.raises(ConfigError, match="unknown setting 'stepz'"):
        TrainConfig.from_file("generalist", ["stepz=1"])
    with pytest.raises(ConfigError, match="task 'inpainting' cannot be trained from frame pairs"):
        TrainConfig.from_file("generalist", ["task=inpainting"])
