"""SD2.x end to end on CPU with micro_sd2 (the SD2 layout: linear transformer projections,
64-wide heads, context width 1024, an OpenCLIP text encoder, v-prediction): the single file
loads exactly through diffusers' converter, the loss target is the velocity of the
scheduler's own schedule, and prepare -> train -> export -> edit runs through the commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ANNOTATIONS, FACES_DIR, annotated, image_tensor, models_with_detector
from PIL import Image
from safetensors import safe_open
from train_fixtures import CLIP_FOLDERS, TINY_MODEL, TrainData, frame_data_folder, tiny_run

from facex_core.__main__ import main as facex_main
from facex_core.errors import FaceXError
from facex_core.faces.crops import align_faces
from facex_core.faces.paste import face_coverage
from facex_core.image_files import read_image_file
from facex_core.model import sd_checkpoint
from facex_core.model.config import FAMILIES, FaceXConfig
from facex_core.model.diffusers_binding import block_specs
from facex_core.model.facex import FaceXModel
from facex_core.model.kept_configs import scheduler_config
from facex_core.model.sampling import END_OF_TEXT, PROMPT_LENGTH, START_OF_TEXT, empty_prompt
from facex_core.model.weights import load_facex, save_facex
from facex_core.testing.sd_checkpoint import tiny_sd, write_single_file
from facex_core.train.__main__ import main as train_main
from facex_core.train.checkpoints import latest_checkpoint
from facex_core.train.config import TrainConfig
from facex_core.train.step import draw
from facex_core.train.trainer import Trainer

BASE_CONFIG = "micro_sd2"


@pytest.fixture(scope="module")
def micro():
    return tiny_sd(BASE_CONFIG)


@pytest.fixture(scope="module")
def sd2_data(micro, tmp_path_factory, models_dir) -> TrainData:
    """A micro_sd2 checkpoint (fp16, as released files are) and two frames of each clip
    prepared with its VAE through the prepare command."""
    root = tmp_path_factory.mktemp("sd2")
    checkpoint = write_single_file(root / "micro_sd2.safetensors", *micro, torch.float16)
    frames = [annotated(name) for name in ANNOTATIONS if name.startswith(tuple(CLIP_FOLDERS.values()))]
    models = models_with_detector(root, models_dir, frames, keyed=True)
    data = frame_data_folder(root)
    code = train_main(["prepare", "--data", str(data), "--out", str(root / "prepared"), "--checkpoint", str(checkpoint),
                       "--base-config", BASE_CONFIG, "--models-dir", str(models), "--every", "3", "--max-frames", "2",
                       "--device", "cpu"])
    assert code == 0
    return TrainData(root, checkpoint, models, data, root / "prepared", {})


def test_kept_sd2_configs_are_the_published_architectures():
    """Parameter counts of stabilityai/stable-diffusion-2-1 (UNet, VAE, text encoder) and its
    base: both have the SD2 block layout; only the 768 model predicts the velocity."""
    for name, prediction in (("sd2", "v_prediction"), ("sd2_base", "epsilon")):
        with torch.device("meta"):
            parts = (sd_checkpoint.build_unet(name), sd_checkpoint.build_vae(name),
                     sd_checkpoint.build_text_encoder(name))
        assert [sum(p.numel() for p in part.parameters()) for part in parts] == [865_910_724, 83_653_863, 340_387_840]
        assert block_specs(parts[0]) == FAMILIES["sd2"].blocks()
        assert scheduler_config(name)["prediction_type"] == prediction


def test_the_single_file_has_openclip_names_and_loads_exactly(micro, sd2_data):
    with safe_open(str(sd2_data.checkpoint), "pt") as file:
        shapes = {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}  # noqa: SIM118 - a safetensors file is not iterable
    clip = "cond_stage_model.model."
    assert shapes[f"{clip}transformer.resblocks.0.attn.in_proj_weight"] == (3 * 1024, 1024)
    assert shapes[f"{clip}transformer.resblocks.1.mlp.c_fc.weight"] == (4096, 1024)
    assert f"{clip}transformer.resblocks.2.ln_1.weight" in shapes  # the block SD2 skips (penultimate layer)
    assert not any(key.startswith("cond_stage_model.transformer.") for key in shapes)
    assert shapes["model.diffusion_model.input_blocks.1.1.proj_in.weight"] == (64, 64)  # linear, not 1x1 conv
    assert shapes["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (64, 1024)

    parts = sd_checkpoint.load_single_file(sd2_data.checkpoint, BASE_CONFIG)
    for original, loaded in zip(micro, (parts.unet, parts.vae, parts.text_encoder), strict=True):
        expected, got = original.state_dict(), loaded.state_dict()
        assert got.keys() == expected.keys()
        for key in expected:  # the file is fp16: the loaded weights are exactly the fp16 rounding
            torch.testing.assert_close(got[key], expected[key].half().float(), rtol=0, atol=0, msg=key)
    assert parts.scheduler_config["prediction_type"] == "v_prediction"


def test_sd2_empty_prompt_pads_with_zero_as_openclip_does(micro):
    text_encoder = micro[2]
    ids = torch.zeros(1, PROMPT_LENGTH, dtype=torch.long)
    ids[0, :2] = torch.tensor([START_OF_TEXT, END_OF_TEXT])
    with torch.no_grad():
        expected = text_encoder(input_ids=ids).last_hidden_state
        end_padded = text_encoder(input_ids=torch.where(ids == 0, END_OF_TEXT, ids)).last_hidden_state
    assert torch.equal(empty_prompt(text_encoder), expected)
    # the padding matters: with SD1.x's end-token padding the padded positions differ
    assert (expected[0, 2:] - end_padded[0, 2:]).abs().mean() > 0.1


def test_the_v_prediction_loss_is_the_velocity_of_the_scheduler_s_schedule(sd2_data, tmp_path):
    """v = sqrt(abar_t) * eps - sqrt(1 - abar_t) * x0, with abar from the kept scheduler's
    scaled-linear betas computed here in float64; the zero-initialised FRC adds nothing, so
    the plain UNet's prediction on the same draws gives the same loss."""
    trainer = Trainer(tiny_run(sd2_data, tmp_path, base_config=BASE_CONFIG))
    model = trainer.accelerator.unwrap_model(trainer.model)
    batch = next(iter(trainer.loader(1)))
    schedule = scheduler_config(BASE_CONFIG)
    betas = torch.linspace(schedule["beta_start"] ** 0.5, schedule["beta_end"] ** 0.5, schedule["num_train_timesteps"],
                           dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    torch.testing.assert_close(model.scheduler.alphas_cumprod.double(), alphas_cumprod, rtol=1e-6, atol=0)
    x0 = batch["target"]["latents"].double()
    draws = draw(batch["sample"], 0, tuple(x0.shape[1:]), schedule["num_train_timesteps"], 0.1)
    alpha = alphas_cumprod[draws.timesteps].sqrt()[:, None, None, None]
    sigma = (1 - alphas_cumprod[draws.timesteps]).sqrt()[:, None, None, None]
    eps = draws.noise.double()
    noisy, velocity = alpha * x0 + sigma * eps, alpha * eps - sigma * x0
    with torch.no_grad():
        loss = model(batch)
        trainer.binding.detach()
        try:
            prediction = model.binding.unet(noisy.float(), draws.timesteps,
                                            encoder_hidden_states=model.text.expand(len(x0), -1, -1)).sample
        finally:
            trainer.binding.attach()
    by_hand = F.mse_loss(prediction.double(), velocity)
    # float32 noising against float64 here: the UNet input differs by ~1e-7, the loss by less than 1e-5
    torch.testing.assert_close(loss.double(), by_hand, rtol=1e-5, atol=0)
    # the test tells the targets apart: the noise target gives another loss on these draws
    assert abs(float(F.mse_loss(prediction.double(), eps)) - float(by_hand)) > 0.01


def test_prepare_train_export_and_edit_run_end_to_end(sd2_data, tmp_path):
    assert len(list((sd2_data.prepared / "shards").glob("*.safetensors"))) == 2
    config = tiny_run(sd2_data, tmp_path / "run", base_config=BASE_CONFIG, steps=2, learning_rate=1e-3)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    assert train_main(["train", "--config", str(tmp_path / "config.json")]) == 0
    exported = tmp_path / "facex_sd2.safetensors"
    assert train_main(["export", "--checkpoint", str(latest_checkpoint(tmp_path / "run").folder),
                       "--out", str(exported)]) == 0
    loaded = load_facex(exported)
    assert loaded.metadata["family"] == "sd2" and loaded.metadata["context_dim"] == "1024"
    assert any(layer.zero_proj.weight.abs().max() > 0 for layer in loaded.model.frc)  # the FRC trained

    frames = sorted((FACES_DIR / CLIP_FOLDERS["woman"]).iterdir())
    out = tmp_path / "swapped.png"
    code = facex_main(["--models-dir", str(sd2_data.models), "--device", "cpu", "edit", "--task", "head_swap",
                       "--source", str(frames[0]), "--target", str(frames[5]), "--checkpoint",
                       str(sd2_data.checkpoint), "--facex", str(exported), "--base-config", BASE_CONFIG,
                       "--out", str(out), "--steps", "2"])
    target, result = read_image_file(frames[5]), np.asarray(Image.open(out))
    assert code == 0 and result.shape == target.shape
    name = f"{CLIP_FOLDERS['woman']}/{frames[5].name}"
    reach = face_coverage(align_faces(image_tensor(name), [annotated(name).detections()], 256), 1)[0].numpy() > 0
    changed = (result != target).any(-1)
    assert changed.mean() > 0.05 and not changed[~reach].any()  # the face changed, nothing outside its crop


def test_an_sd15_facex_file_cannot_initialise_an_sd2_run(sd2_data, tmp_path):
    """The FRC layers are sized by the context width (768 vs 1024) and the heads: a run for
    SD2 starts from scratch, and an SD1.5 generalist as init_from is refused before training."""
    sd15 = save_facex(FaceXModel(FaceXConfig.for_family("sd15", 256, **TINY_MODEL)), tmp_path / "sd15.safetensors",
                      {"recognition": "w600k_r50.onnx"})
    with pytest.raises(FaceXError, match="init_from .* trained for sd15 .* context width 768"):
        Trainer(tiny_run(sd2_data, tmp_path / "sd2", base_config=BASE_CONFIG, init_from=str(sd15)))


@pytest.mark.parametrize("recipe, base_config, prediction, size", [("generalist_sd2_512", "sd2_base", "epsilon", 512),
                                                                   ("generalist_sd2_768", "sd2", "v_prediction", 768)])
def test_the_sd2_recipes_train_from_scratch_on_their_own_checkpoint(recipe, base_config, prediction, size):
    config = TrainConfig.from_file(recipe)
    assert (config.base_config, config.init_from) == (base_config, None)
    assert scheduler_config(config.base_config)["prediction_type"] == prediction
    assert config.prepared.endswith(f"_{size}") and config.batch == 32 and config.steps == 20_000
