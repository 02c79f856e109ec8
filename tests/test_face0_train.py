"""The Face0 training stage on tiny models and real portraits: preparation keeps the faces of
at least 20 px and stores what training reads, the step conditions as the guidance needs,
the run learns, resumes exactly, and exports a file the Face0 loader and ComfyUI's LoRA
key mapping read."""

import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from face0_fixtures import BASE_CONFIG, RESOLUTION, SHARD_SIZE, SIDECAR, TOO_SMALL, UNREADABLE, USABLE, tiny_face0_run
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from train_gradients import next_batch_gradients, two_gloo_processes

from facex_core.errors import ConfigError, FaceXError, UsageError
from facex_core.face0.projector import Face0Config
from facex_core.face0.weights import load_face0, merge_unet_patches
from facex_core.faces.detect import DetectedFace
from facex_core.image_files import read_image_file
from facex_core.model import sd_checkpoint
from facex_core.model.prompts import encode_prompts
from facex_core.model.sampling import decode, encode
from facex_core.model.sd_checkpoint import load_text_encoder, load_unet, load_vae
from facex_core.testing.sd_checkpoint import unet_module_map
from facex_core.train.__main__ import main as train_main
from facex_core.train.__main__ import run_config
from facex_core.train.checkpoints import latest_checkpoint
from facex_core.train.face0.captions import CaptionSource, captioned_images, read_caption_file
from facex_core.train.face0.config import LORA_LAYERS, Face0TrainConfig
from facex_core.train.face0.dataset import Face0Stream, read_face0_shards
from facex_core.train.face0.prepare import SquareCrop, training_face
from facex_core.train.face0.step import ConditionDropout
from facex_core.train.face0.trainer import LORA_SELECTORS, Face0Trainer, add_lora, lora_modules
from facex_core.train.grids import VALIDATION_SEED_OFFSET
from facex_core.train.step import draw

# --- captions ---


def test_captions_come_from_a_caption_file_a_sidecar_or_the_template(tmp_path):
    for name in ("a.png", "b.jpg", "sub/c.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "b.txt").write_text("  a woman outdoors \n")
    images, left_out = captioned_images(tmp_path, CaptionSource(template="a face"))
    assert [(image.name, image.caption, image.source) for image in images] == [
        ("a.png", "a face", "template"), ("b.jpg", "a woman outdoors", "sidecar"), ("sub/c.png", "a face", "template")]
    assert left_out == []
    (tmp_path / "captions.csv").write_text('image,text\nsub/c.png,"a child, smiling"\nmissing.png,nobody\n')
    images, left_out = captioned_images(tmp_path, CaptionSource(tmp_path / "captions.csv", "image", "text"))
    assert [(image.name, image.caption, image.source) for image in images] == [
        ("sub/c.png", "a child, smiling", "file")]
    assert left_out == [("a.png", "not listed in captions.csv"), ("b.jpg", "not listed in captions.csv"),
                        ("missing.png", "listed in captions.csv but no image file")]
    (tmp_path / "captions.jsonl").write_text('{"file": "a.png", "caption": "x"}\n\n{"file": "b.jpg", "caption": "y"}\n')
    assert read_caption_file(CaptionSource(tmp_path / "captions.jsonl")) == {"a.png": "x", "b.jpg": "y"}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("c.csv", "file,label\na.png,x\n", r"line 2: no 'caption' \(it has 'file', 'label'\); name the columns"),
    ("c.jsonl", '{"file": "a.png", "caption": "x"}\n{"file": "a.png", "caption": "y"}\n',
     "line 2: a.png is listed twice"),
    ("c.jsonl", '{"file": "a.png", "caption": 3}\n', "line 1: the file and the caption must be text"),
    ("c.jsonl", "[1, 2]\n", "line 1: a JSON list, not an object"),
    ("c.txt", "a.png x\n", r"a \.csv \(with a header row\) or a \.jsonl"),
])
def test_a_malformed_caption_file_is_named_with_its_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=message):
        read_caption_file(CaptionSource(tmp_path / name))


# --- preparation ---


def face(box: tuple[float, float, float, float]) -> DetectedFace:
    return DetectedFace(np.array(box, float), np.zeros((5, 2)), 1.0)


def test_the_training_face_is_the_largest_in_the_centre_square_and_at_least_20_px():
    crop = SquareCrop.of(400, 800, 64)  # the square is x 200..600, scaled by 64 / 400
    assert (crop.left, crop.top, crop.scale) == (200, 0, 0.16)
    np.testing.assert_allclose(crop.box(np.array([200.0, 0, 600, 400])), [0, 0, 64, 64])
    outside, small, large = face((0, 0, 190, 190)), face((300, 100, 430, 230)), face((380, 100, 520, 240))
    # the largest face of the image lies outside the square; of those inside, the larger is chosen
    assert training_face([outside, small, large], crop, 20.0) == (large, "")
    chosen, reason = training_face([small], crop, 21.0)  # 130 px * 0.16 = 20.8 px
    assert chosen is None and reason == "the largest face is 21 px in the 64 px training image, below 21"
    assert training_face([outside], crop, 20.0) == (None, "no face inside the centre square the model trains on")
    assert training_face([], crop, 20.0) == (None, "no face found")


def test_preparation_keeps_the_faces_of_at_least_20_px_and_logs_the_rest(face0_data):
    # by name the last shard holds real_obama_official_portrait.jpg (19.2 px) and truncated.jpg: none usable
    assert face0_data.counts == {"shards": 3, "written": 2, "already_done": 0, "images": len(USABLE),
                                 "skipped_images": len(TOO_SMALL) + len(UNREADABLE)}
    skipped = json.loads((face0_data.prepared / "shards" / "images_00002.skipped.json").read_text())
    assert skipped == {"images": ["real_obama_official_portrait.jpg", "truncated.jpg"]}
    events = {entry["image"]: entry for entry in map(json.loads, (face0_data.prepared / "log" / "rank0.jsonl")
                                                     .read_text().splitlines())}
    for name, size in TOO_SMALL.items():
        assert events[name.split("/")[1]]["reason"] == f"the largest face is {size:.0f} px in the 64 px training " \
                                                      "image, below 20"
    assert events["no_face_coffee.png"]["reason"] == "no face found"
    assert events["truncated.jpg"]["event"] == "bad_image" and "truncated" in events["truncated.jpg"]["reason"]
    data = read_face0_shards(face0_data.prepared)
    assert (data.resolution, data.identity_encoder, data.checkpoint, data.base_config) == (
        RESOLUTION, "arcface", "micro_sd15.safetensors", "micro_sd15")
    names = [name for shard in data.shards for name in json.loads(shard.metadata["names"])]
    assert sorted(names) == sorted(name.split("/")[1] for name in USABLE)


def test_a_shard_holds_the_latents_the_embedding_and_the_caption_encoding(face0_data):
    path = sorted((face0_data.prepared / "shards").glob("*.safetensors"))[0]
    with safe_open(str(path), "pt") as handle:
        metadata, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    count = int(metadata["images"])
    assert {key: (tuple(value.shape), value.dtype) for key, value in tensors.items()} == {
        "latents": ((count, 4, 8, 8), torch.float16), "text": ((count, 77, 768), torch.float16),
        "embedding": ((count, 512), torch.float32), "face_box": ((count, 4), torch.float32),
        "empty_text": ((1, 77, 768), torch.float16)}
    torch.testing.assert_close(tensors["embedding"].norm(dim=-1), torch.ones(count))  # L2-normalised
    names, captions = json.loads(metadata["names"]), json.loads(metadata["captions"])
    assert dict(zip(names, captions, strict=True))[f"{SIDECAR[0]}.png"] == SIDECAR[1]
    assert set(captions) - {SIDECAR[1]} == {"a photo of a person"}
    text_encoder = load_text_encoder(face0_data.checkpoint, "micro_sd15")
    # stored in fp16: the encodings are rounded to fp16's 3 significant digits
    torch.testing.assert_close(tensors["text"].float(), encode_prompts(text_encoder, captions), rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(tensors["empty_text"].float(), encode_prompts(text_encoder, [""]), rtol=2e-3, atol=2e-3)
    pixels = SquareCrop.of(*read_image_file(face0_data.data / names[0]).shape[:2], RESOLUTION).pixels(
        read_image_file(face0_data.data / names[0]))
    latents = encode(load_vae(face0_data.checkpoint, "micro_sd15"), torch.tensor(pixels)[None].float() / 255)
    torch.testing.assert_close(tensors["latents"][0].float(), latents[0], rtol=2e-3, atol=2e-3)


def test_preparing_again_skips_the_shards_already_written(face0_data):
    from face0_fixtures import face0_preparer

    from facex_core.train.face0.prepare import prepare_face0
    from facex_core.train.prepare import Slot

    before = {path: path.stat().st_mtime_ns for path in (face0_data.prepared / "shards").iterdir()}
    images, left_out = captioned_images(face0_data.data, CaptionSource())
    counts = prepare_face0(images, left_out, face0_data.prepared, face0_preparer(face0_data.models,
                                                                                 face0_data.checkpoint), Slot(1, 2))
    assert counts == {"shards": 1, "written": 0, "already_done": 1, "images": 0, "skipped_images": 0}
    assert {path: path.stat().st_mtime_ns for path in (face0_data.prepared / "shards").iterdir()} == before
    assert len(images) == SHARD_SIZE * 2 + 2  # rank 1 of 2 owns shard 1 of 0, 1, 2


def test_prepare_face0_names_bad_arguments_before_any_model_loads(face0_data, tmp_path, capsys):
    common = ["prepare-face0", "--out", str(tmp_path / "out"), "--checkpoint", str(face0_data.checkpoint),
              "--models-dir", str(face0_data.models)]
    cases = [
        (["--data", str(face0_data.data), "--size", "100"], "--size 100: the VAE works in steps of 8 pixels"),
        (["--data", str(tmp_path / "nothing")], f"--data {tmp_path / 'nothing'} does not exist"),
        (["--data", str(face0_data.data), "--captions", str(tmp_path / "c.csv")], "no such file"),
        (["--data", str(face0_data.data), "--encoder", "facenet"], "unknown identity encoder 'facenet'"),
        (["--data", str(face0_data.data), "--encoder", "inception_resnet_v1_vggface2"],
         "face0_identity step was found. Any one of these will do:\n  - 20180402-114759-vggface2.pt"),
    ]
    for extra, message in cases:
        assert train_main(common + extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- the training step ---


def test_condition_dropout_splits_one_draw_into_the_four_conditions():
    chance = torch.tensor([0.0, 0.09, 0.1, 0.19, 0.2, 0.29, 0.31, 0.99], dtype=torch.float64)
    face_dropped, text_dropped = ConditionDropout(face=0.1, text=0.1, both=0.1).split(chance)
    assert face_dropped.tolist() == [True, True, True, True, False, False, False, False]
    assert text_dropped.tolist() == [True, True, False, False, True, True, False, False]
    # over many samples each condition comes up at its rate
    draws = draw(torch.arange(4000), 0, (1,), 1000, 0.0)
    face_dropped, text_dropped = ConditionDropout(0.1, 0.2, 0.05).split(draws.chance)
    rates = [float((face_dropped & text_dropped).float().mean()), float((face_dropped & ~text_dropped).float().mean()),
             float((~face_dropped & text_dropped).float().mean())]
    # binomial standard deviations at n = 4000 are below 0.0064: 4 of them is a bound that fails by chance ~never
    np.testing.assert_allclose(rates, [0.05, 0.1, 0.2], atol=0.026)


@pytest.fixture(scope="module")
def fresh_run(face0_data, tmp_path_factory):
    return Face0Trainer(tiny_face0_run(face0_data, tmp_path_factory.mktemp("fresh")))


def test_the_face_tokens_replace_the_last_3_positions_unless_the_face_is_dropped(fresh_run):
    model = fresh_run.training_model
    batch = next(iter(fresh_run.loader(1)))
    tokens = model.projector(batch["embedding"])
    face_dropped, text_dropped = torch.tensor([False, True]), torch.tensor([True, False])
    with torch.no_grad():
        context = model.context(batch, face_dropped, text_dropped)
    assert torch.equal(context[0, -3:], tokens[0].detach())  # face on the empty prompt
    assert torch.equal(context[0, :-3], model.empty_text[0, :-3])
    assert torch.equal(context[1], batch["text"][1])  # the caption alone


def test_before_any_step_the_lora_adds_nothing_and_the_loss_is_the_base_unet_s(fresh_run, face0_data):
    """peft's LoRA starts with B = 0: the loss is the plain UNet's on the same draws and context."""
    model = fresh_run.training_model
    batch = next(iter(fresh_run.loader(1)))
    base = load_unet(face0_data.checkpoint, "micro_sd15")
    with torch.no_grad():
        loss = model(batch)
        draws = draw(batch["sample"], 0, (4, 8, 8), 1000, 0.0)
        context = model.context(batch, *model.dropout.split(draws.chance))
        noisy = model.scheduler.add_noise(batch["latents"], draws.noise, draws.timesteps)
        plain = base(noisy, draws.timesteps, encoder_hidden_states=context).sample
    # the same float32 kernels; peft adds its zero update as a separate term, so only rounding may differ
    torch.testing.assert_close(loss, F.mse_loss(plain, draws.noise), rtol=1e-5, atol=1e-6)
    lora = [name for name, parameter in model.unet.named_parameters() if parameter.requires_grad]
    assert lora and all(".lora_A." in name or ".lora_B." in name for name in lora)
    assert {name.split(".")[-4] for name in lora} == {"to_q", "to_k", "to_v", "0"}  # <module>.lora_A.default.weight


def test_the_lora_goes_on_the_attention_projections_or_on_every_linear_layer_and_convolution(face0_data):
    unet = load_unet(face0_data.checkpoint, BASE_CONFIG)
    attention = lora_modules(unet, "attention")
    # to_q, to_k, to_v, to_out.0 of attn1 and attn2 in the micro UNet's 4 transformer blocks
    assert len(attention) == 4 * 2 * 4 and all(".attn1." in path or ".attn2." in path for path in attention)
    every = lora_modules(unet, "all")
    # conv_in, time_embedding.linear_1 and _2; per transformer block proj_in, proj_out, 8 attention projections
    # and ff.net.0.proj, ff.net.2; per resnet conv1, conv2, time_emb_proj (the up blocks' also conv_shortcut:
    # 1 down, 2 up, 2 mid resnets); conv_out
    assert len(every) == 1 + 2 + 4 * 12 + (1 * 3 + 2 * 4 + 2 * 3) + 1
    assert set(attention) < set(every) and {"conv_in", "conv_out", "up_blocks.0.resnets.1.conv_shortcut"} < set(every)
    assert tuple(LORA_SELECTORS) == LORA_LAYERS  # the config's choices are the trainer's


def test_every_trainable_parameter_gets_a_gradient_after_one_step(face0_data, tmp_path):
    """Step 1 moves the zero-initialised LoRA B; from then on A and the projector have gradients too."""
    trainer = Face0Trainer(tiny_face0_run(face0_data, tmp_path, steps=2, learning_rate=1e-3))
    batches = iter(trainer.loader(2))
    trainer.train_step([next(batches)])
    trainer.backward([next(batches)])
    missing = [name for name, parameter in trainer.model.named_parameters()
               if parameter.requires_grad and (parameter.grad is None or not parameter.grad.any())]
    assert missing == []


# --- runs: learning, resume, export ---


@pytest.mark.slow
@pytest.mark.parametrize("settings", [dict(lora_layers="all", learning_rate=5e-3),
                                      dict(unet="full", learning_rate=1e-3)], ids=["lora_all_layers", "full_unet"])
def test_a_200_step_overfit_run_halves_its_loss(face0_data, tmp_path, settings):
    """One image per step. The default LoRA (attention projections) does not halve the loss
    on the random-weight micro UNet: there it reaches the output only through frozen random
    convolutions and normalisations (measured: mean loss 1.16 -> 1.00 at lr 1e-2, rank 4);
    every layer's LoRA (rank 4: 0.91 -> 0.18) and the whole UNet do."""
    trainer = Face0Trainer(tiny_face0_run(face0_data, tmp_path, steps=200, batch=1, micro_batch=1,
                                          projector_learning_rate=1e-3, **settings))
    trainer.run()
    start, end = statistics.mean(trainer.losses[:20]), statistics.mean(trainer.losses[-20:])
    print(f"Face0 overfit {settings}: mean loss of the first 20 steps {start:.4f}, of the last 20 {end:.4f}")
    assert end < 0.5 * start, (start, end)


def trained_state(trainer: Face0Trainer) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in trainer.training_model.named_parameters()
            if value.requires_grad}


def test_an_interrupted_and_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one(face0_data, tmp_path):
    config = tiny_face0_run(face0_data, tmp_path / "whole", steps=4, checkpoint_every=2, learning_rate=1e-3,
                            micro_batch=1)
    whole = Face0Trainer(config)
    assert whole.accumulation == 2
    whole.run()
    interrupted = replace(config, output=str(tmp_path / "interrupted"))
    Face0Trainer(interrupted).run(until=2)
    resumed = Face0Trainer(interrupted)
    assert resumed.step == 2
    resumed.run()
    expected, actual = trained_state(whole), trained_state(resumed)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        assert torch.equal(value, actual[name]), name
    assert whole.losses[2:] == resumed.losses
    start = trained_state(Face0Trainer(replace(config, output=str(tmp_path / "start"))))
    still = [name for name, value in expected.items() if torch.equal(value, start[name])]
    assert still == []  # every parameter trained, so equality above is not that of untouched values


def test_resuming_with_another_lora_rank_is_refused(face0_data, tmp_path):
    config = tiny_face0_run(face0_data, tmp_path, steps=1)
    Face0Trainer(config).run()
    with pytest.raises(FaceXError, match="holds a run with other lora_rank"):
        Face0Trainer(replace(config, lora_rank=8, steps=2))


@pytest.mark.slow
def test_two_gloo_processes_average_the_gradients_of_one_process_on_the_same_batch(face0_data, tmp_path):
    """As shipped: DDP, gradient checkpointing, accumulation (2 micro-batches of 1 per process),
    the attention LoRA; one step into a run (the LoRA's B no longer zero, so every trainable
    parameter has a gradient), on a batch of 4 in which some samples drop the face (the
    projector's output is then in no sample's loss of that micro-batch: DDP must still reduce)."""
    # the second batch (samples 4-7, seed 0): face and prompt, face dropped, prompt dropped, face and prompt
    dropout = dict(face_dropout=0.3, text_dropout=0.2, both_dropout=0.0)
    start = tmp_path / "start"
    Face0Trainer(tiny_face0_run(face0_data, start, steps=1, batch=4, micro_batch=4, learning_rate=1e-3,
                                **dropout)).run()
    for name in ("one", "two"):
        shutil.copytree(start, tmp_path / name)
    settings = dict(steps=2, batch=4, learning_rate=1e-3, gradient_checkpointing=True, **dropout)
    gradients = two_gloo_processes(tiny_face0_run(face0_data, tmp_path / "two", micro_batch=1, **settings), tmp_path)
    two = load_file(str(gradients))
    one_process = Face0Trainer(tiny_face0_run(face0_data, tmp_path / "one", micro_batch=4, **settings))
    assert one_process.step == 1 and one_process.accumulation == 1
    samples = next(iter(one_process.loader(2)))["sample"]
    face_dropped, text_dropped = ConditionDropout(0.3, 0.2, 0.0).split(draw(samples, 0, (4, 8, 8), 1000, 0.0).chance)
    assert (face_dropped.tolist(), text_dropped.tolist()) == ([False, True, False, False], [False, False, True, False])
    one = next_batch_gradients(one_process)
    trainable = {name for name, parameter in one_process.training_model.named_parameters() if parameter.requires_grad}
    assert two.keys() == one.keys() == trainable
    zero = [name for gradients in (one, two) for name, gradient in gradients.items() if not gradient.any()]
    assert not zero, zero
    for name in one:
        # gloo's all-reduce and the accumulation sum the four samples in another order than one process does
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-7, msg=name)
    with safe_open(str(gradients), "pt") as handle:
        assert handle.metadata() == {"processes": "2", "backend": "gloo", "accumulation": "2"}


@pytest.fixture(scope="module")
def exported(face0_data, tmp_path_factory):
    """A finished 2-step run through the command line (its config file has "stage": "face0"),
    its LoRA on every linear layer and convolution (the attention projections among them),
    with a validation grid at step 2."""
    output = tmp_path_factory.mktemp("face0_exported")
    config = tiny_face0_run(face0_data, output / "run", steps=2, learning_rate=1e-3, lora_layers="all",
                            validate_every=2, validation_samples=2, validation_steps=2)
    (output / "config.json").write_text(json.dumps(config.to_dict()))
    assert train_main(["train", "--config", str(output / "config.json")]) == 0
    return output / "run"


def test_the_validation_grid_shows_each_image_and_what_its_caption_face_and_both_make(exported, face0_data):
    grid = np.asarray(Image.open(exported / "validation" / "step_0000002.png")).astype(np.float32)
    assert grid.shape == (2 * RESOLUTION, 4 * RESOLUTION, 3)
    assert list((exported / "logs").rglob("events.out.tfevents.*"))
    stream = Face0Stream(read_face0_shards(face0_data.prepared), VALIDATION_SEED_OFFSET)  # the run's seed is 0
    latents = torch.stack([stream[index]["latents"] for index in range(2)])
    with torch.no_grad():
        images = decode(load_vae(face0_data.checkpoint, BASE_CONFIG), latents)
    expected = images.reshape(-1, RESOLUTION, 3).numpy() * 255
    # the first column is the samples' own latents decoded; to_uint8 rounds, float32 decoders differ in the last bits
    assert np.abs(grid[:, :RESOLUTION] - expected).max() <= 1.0
    columns = [grid[:, k * RESOLUTION:(k + 1) * RESOLUTION] for k in range(1, 4)]
    # caption alone, face alone, both: three conditionings of the same noise give three images
    for first, second in ((0, 1), (0, 2), (1, 2)):
        assert np.abs(columns[first] - columns[second]).mean() > 1.0, (first, second)


def test_a_finished_run_exports_a_face0_file_that_loads(exported, face0_data):
    loaded = load_face0(exported / "face0_sd15.safetensors")
    assert loaded.config == Face0Config(identity_encoder="arcface", base_family="sd15", resolution=RESOLUTION,
                                        lora_rank=4, lora_alpha=4.0)
    trained = latest_checkpoint(exported).weights
    for name, value in loaded.projector.state_dict().items():
        assert torch.equal(value, trained[f"projector.{name}"]), name  # the projector is exported in float32
    downs = {key for key in loaded.unet_patches if key.endswith(".lora_down.weight")}
    modules = lora_modules(load_unet(face0_data.checkpoint, BASE_CONFIG), "all")
    assert downs == {f"lora_unet_{path.replace('.', '_')}.lora_down.weight" for path in modules}
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    peft_key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    assert torch.equal(loaded.unet_patches[f"{key}.lora_up.weight"], trained[f"{peft_key}.lora_B.weight"].half())
    assert float(loaded.unet_patches[f"{key}.alpha"]) == 4.0
    again = exported / "again.safetensors"
    assert train_main(["export", "--checkpoint", str(latest_checkpoint(exported).folder), "--out", str(again)]) == 0
    assert load_file(str(again)).keys() == load_file(str(exported / "face0_sd15.safetensors")).keys()


def test_the_exported_lora_maps_to_comfyui_keys_and_merges_as_peft_applies_it(exported, face0_data):
    """What the Face0 Loader hands ComfyUI: every lora_unet_<diffusers path> names a module whose
    weight the single file holds under its original name (the mapping ComfyUI's
    model_lora_keys_unet builds from unet_to_diffusers), with the shape up @ down has; and the
    patches merged into the UNet give what the trained peft LoRA gives."""
    loaded = load_face0(exported / "face0_sd15.safetensors")
    single_file = load_file(str(face0_data.checkpoint))
    base = load_unet(face0_data.checkpoint, "micro_sd15")
    originals = unet_module_map(base.config)
    modules = {name.replace(".", "_"): name for name, _ in base.named_modules()}
    for key, down in loaded.unet_patches.items():
        if not key.endswith(".lora_down.weight"):
            continue
        name = key.split(".")[0].removeprefix("lora_unet_")
        path = modules[name]
        owner = max((module for module in originals if f"{path}.".startswith(module + ".")), key=len)
        prefix, renamed = originals[owner]
        child = path[len(owner) + 1:]
        original = ".".join(filter(None, (prefix, renamed.get(child, child))))
        up = loaded.unet_patches[key.replace("lora_down", "lora_up")]
        weight = single_file[f"{sd_checkpoint.UNET_PREFIX}{original}.weight"]
        # a convolution's LoRA: down [rank, in, kh, kw], up [out, rank, 1, 1]
        assert (weight.shape[0], weight[0].numel()) == (up.shape[0], down[0].numel()), key
    merged = load_unet(face0_data.checkpoint, "micro_sd15")
    merge_unet_patches(merged, loaded.unet_patches)
    with_lora = add_lora(load_unet(face0_data.checkpoint, "micro_sd15"), 4, 4.0, "all")
    from peft.utils import set_peft_model_state_dict

    trained = {key.removeprefix("unet."): value for key, value in latest_checkpoint(exported).weights.items()
               if key.startswith("unet.")}
    set_peft_model_state_dict(with_lora, trained)
    latents, context = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.randn(1, 77, 768)
    with torch.no_grad():
        expected = with_lora(latents, 500, encoder_hidden_states=context).sample
        actual = merged(latents, 500, encoder_hidden_states=context).sample
        untouched = base(latents, 500, encoder_hidden_states=context).sample
    # the file holds the LoRA in fp16: its rounding (1e-3 relative) is all that may differ
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-3)
    assert (expected - untouched).abs().max() > 100 * (actual - expected).abs().max()  # the LoRA does something


def test_a_full_fine_tune_exports_weight_differences(face0_data, tmp_path):
    out = Face0Trainer(tiny_face0_run(face0_data, tmp_path, steps=1, unet="full", learning_rate=1e-3)).run()
    loaded = load_face0(out)
    assert loaded.config.full_unet and loaded.config.unet == "full"
    trained = latest_checkpoint(tmp_path).weights
    base = load_unet(face0_data.checkpoint, "micro_sd15").state_dict()
    name = "conv_in"
    diff = loaded.unet_patches[f"lora_unet_{name}.diff"]
    assert diff.dtype == torch.bfloat16 and diff.abs().max() > 0
    # bf16 keeps 3 significant digits of the difference
    torch.testing.assert_close(base[f"{name}.weight"] + diff.float(), trained[f"unet.{name}.weight"],
                               rtol=0, atol=float(diff.float().abs().max()) * 1e-2)


@pytest.mark.slow
def test_the_shipped_precision_bf16_trains_validates_and_exports_from_the_command_line(face0_data, tmp_path):
    """The shipped config's way (bf16, gradient checkpointing, a float32 LoRA on a bf16 UNet),
    validation grid included, in its own process: accelerate fixes the precision once per process."""
    config = tiny_face0_run(face0_data, tmp_path / "run", steps=2, learning_rate=1e-3, mixed_precision="bf16",
                            gradient_checkpointing=True, validate_every=2, validation_samples=2, validation_steps=2)
    (tmp_path / "bf16.json").write_text(json.dumps(config.to_dict()))
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "facex_core.train", "train", "--config", str(tmp_path / "bf16.json")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = latest_checkpoint(tmp_path / "run").weights
    assert all(value.isfinite().all() for value in trained.values())
    initial = Face0Trainer(tiny_face0_run(face0_data, tmp_path / "fresh")).checkpoint_contents()[0]
    assert trained.keys() == initial.keys()
    moved = [name for name in trained if not torch.equal(trained[name], initial[name])]
    lora_b = [name for name in trained if ".lora_B." in name]
    assert set(lora_b) <= set(moved) and any(name.startswith("projector.") for name in moved)
    grid = np.asarray(Image.open(tmp_path / "run" / "validation" / "step_0000002.png"))
    assert grid.shape == (2 * RESOLUTION, 4 * RESOLUTION, 3)
    loaded = load_face0(tmp_path / "run" / "face0_sd15.safetensors")
    assert loaded.projector(torch.ones(1, 512)).isfinite().all()


# --- configs ---


def test_the_face0_config_ships_with_its_stated_defaults():
    config = run_config("face0", ["output=runs/x"])
    assert isinstance(config, Face0TrainConfig)
    assert (config.stage, config.unet, config.lora_rank, config.lora_alpha, config.learning_rate,
            config.projector_learning_rate, config.face_dropout, config.text_dropout, config.both_dropout,
            config.batch, config.steps, config.mixed_precision) == (
        "face0", "lora", 64, 64.0, 1e-4, 1e-4, 0.1, 0.1, 0.1, 32, 20_000, "bf16")
    with pytest.raises(ConfigError, match="face_dropout \\+ text_dropout \\+ both_dropout is 1"):
        run_config("face0", ["face_dropout=0.5", "text_dropout=0.5"])
    with pytest.raises(ConfigError, match="unet must be one of lora, full, not 'half'"):
        run_config("face0", ["unet=half"])
    assert config.lora_layers == "attention"
    assert (config.validate_every, config.validation_samples, config.validation_steps) == (1000, 4, 30)
    with pytest.raises(ConfigError, match="lora_layers must be one of attention, all, not 'mlp'"):
        run_config("face0", ["lora_layers=mlp"])
    assert type(run_config("generalist", [])).__name__ == "TrainConfig"


def test_training_on_another_checkpoint_than_the_data_was_prepared_with_is_refused(face0_data, tmp_path):
    other = tmp_path / "other.safetensors"
    other.symlink_to(face0_data.checkpoint)
    with pytest.raises(FaceXError, match="was prepared with micro_sd15.safetensors .micro_sd15., but this run trains "
                                         "on other.safetensors"):
        Face0Trainer(tiny_face0_run(face0_data, tmp_path / "run", checkpoint=str(other)))


def test_a_sample_reads_one_image_of_the_shards(face0_data):
    stream = Face0Stream(read_face0_shards(face0_data.prepared), seed=0)
    assert stream.images == len(USABLE)
    epoch = {int(stream[sample]["embedding"].sum() * 1e4) for sample in range(stream.images)}
    assert len(epoch) == len(USABLE)  # every image once per epoch
    item = stream[5]
    assert {key: tuple(value.shape) for key, value in item.items() if key != "sample"} == {
        "latents": (4, 8, 8), "embedding": (512,), "text": (77, 768)}
    assert all(value.dtype == torch.float32 for key, value in item.items() if key != "sample")

