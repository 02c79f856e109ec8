"""Stable Diffusion single files: a random-weight file in the original layout loads through
diffusers' converter with the kept configs, offline and exactly; every kept config has its
family's architecture; wrong files get errors that say what is wrong."""

from __future__ import annotations

import socket

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from diffusers.models.attention import BasicTransformerBlock
from safetensors import safe_open
from safetensors.torch import save_file

from facex_core.errors import ModelFileError, ModelFileMissingError
from facex_core.model import sd_checkpoint
from facex_core.testing.sd_checkpoint import rename, tiny_sd, unet_module_map, write_single_file


@pytest.fixture(scope="module")
def tiny():
    return tiny_sd(seed=0)


@pytest.fixture(scope="module")
def tiny_file(tiny, tmp_path_factory):
    return write_single_file(tmp_path_factory.mktemp("sd") / "tiny_sd15.safetensors", *tiny)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_single_file_has_the_original_layout(tiny_file):
    with safe_open(str(tiny_file), "pt") as file:
        shapes = {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}  # noqa: SIM118 - a safetensors file is not iterable
    assert {key.split(".", 1)[0] for key in shapes} == {"model", "first_stage_model", "cond_stage_model"}
    assert shapes["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 768)
    assert shapes["model.diffusion_model.input_blocks.1.1.proj_in.weight"] == (320, 320, 1, 1)
    assert shapes["model.diffusion_model.output_blocks.1.0.skip_connection.weight"] == (320, 640, 1, 1)
    assert shapes["model.diffusion_model.middle_block.2.emb_layers.1.weight"] == (320, 1280)
    assert shapes["model.diffusion_model.out.2.weight"] == (4, 320, 3, 3)
    assert shapes["first_stage_model.encoder.mid.attn_1.q.weight"] == (512, 512, 1, 1)
    assert shapes["first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"] == (128, 256, 1, 1)
    assert shapes["first_stage_model.decoder.up.3.upsample.conv.weight"] == (512, 512, 3, 3)
    assert shapes["cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight"] == (3072, 768)
    diffusers_words = ("down_blocks", "up_blocks", "mid_block", "resnets", "time_embedding", "conv_norm_out",
                       "group_norm")
    assert not any(word in key for key in shapes for word in diffusers_words)


def test_round_trip_is_exact(tiny, tiny_file, no_network):
    parts = sd_checkpoint.load_single_file(tiny_file, "tiny_sd15")
    for original, loaded in zip(tiny, (parts.unet, parts.vae, parts.text_encoder), strict=True):
        expected, got = original.state_dict(), loaded.state_dict()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[key], expected[key]) for key in expected)
    generator = torch.Generator().manual_seed(1)
    latent, context = torch.randn(1, 4, 16, 16, generator=generator), torch.randn(1, 77, 768, generator=generator)
    with torch.no_grad():
        before = tiny[0](latent, 500, encoder_hidden_states=context).sample
        after = parts.unet(latent, 500, encoder_hidden_states=context).sample
    # The weights are bit-exact (above). The forward pass is not bit-exact: tensors read from
    # the file keep its unaligned offsets, and CPU kernels sum in another order for unaligned
    # memory (1.8e-6 measured; a clone of the same weights gives 0). 1e-5 is float32 rounding
    # over the UNet's depth at outputs of order 1; a wrong weight moves them by ~1e-2.
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert before.std() > 0.1  # informative: no zero output convolution
    assert parts.scheduler_config["beta_schedule"] == "scaled_linear"
    assert parts.scheduler_config["steps_offset"] == 1


@pytest.mark.parametrize(
    "name, blocks, context",
    [("sd15", 16, 768), ("sd2", 16, 1024), ("sd2_base", 16, 1024), ("sdxl", 70, 2048), ("tiny_sd15", 4, 768),
     ("micro_sd2", 4, 1024)],
)
def test_kept_unet_configs(name, blocks, context):
    with torch.device("meta"):
        unet = sd_checkpoint.build_unet(name)
    assert sum(isinstance(module, BasicTransformerBlock) for module in unet.modules()) == blocks
    assert unet.config.cross_attention_dim == context
    # the writer's original names map back onto exactly this UNet through diffusers' converter
    state = unet.state_dict()
    converted = convert_ldm_unet_checkpoint(rename(state, unet_module_map(unet.config), sd_checkpoint.UNET_PREFIX),
                                            dict(unet.config))
    assert {key: value.shape for key, value in converted.items()} == {key: value.shape for key, value in state.items()}


def test_kept_sd15_vae_and_text_encoder_configs():
    with torch.device("meta"):
        vae, text_encoder = sd_checkpoint.build_vae("sd15"), sd_checkpoint.build_text_encoder("sd15")
    assert sum(parameter.numel() for parameter in vae.parameters()) == 83_653_863
    assert sum(parameter.numel() for parameter in text_encoder.parameters()) == 123_060_480


def test_missing_file(tmp_path):
    path = tmp_path / "v1-5-pruned-emaonly.safetensors"
    with pytest.raises(ModelFileMissingError, match="v1-5-pruned-emaonly.safetensors"):
        sd_checkpoint.load_single_file(path)


def _unet_keys(path, context: int, **more: torch.Tensor):
    key = "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"
    save_file({key: torch.zeros(640, context), **more}, str(path))
    return path


def test_truncated_file(tmp_path):
    path = _unet_keys(tmp_path / "model.safetensors", 768)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="could not be read"):
        sd_checkpoint.load_single_file(path)


@pytest.mark.parametrize("context, family", [(2048, "SDXL"), (1024, "SD2.x")])
def test_other_family(tmp_path, context, family):
    with pytest.raises(ModelFileError, match=f"looks like an {family} checkpoint, but an SD1.5 one"):
        sd_checkpoint.load_single_file(_unet_keys(tmp_path / "model.safetensors", context), "sd15")


def test_not_a_stable_diffusion_file(tmp_path):
    path = tmp_path / "vae.safetensors"
    save_file({"first_stage_model.encoder.conv_in.weight": torch.zeros(128, 3, 3, 3)}, str(path))
    with pytest.raises(ModelFileError, match="not a Stable Diffusion checkpoint"):
        sd_checkpoint.load_single_file(path)


def test_unet_only_file(tmp_path):
    with pytest.raises(ModelFileError, match="no VAE weights"):
        sd_checkpoint.load_single_file(_unet_keys(tmp_path / "unet.safetensors", 768))


def test_an_sd2_file_needs_its_openclip_text_encoder(tmp_path):
    vae = {"first_stage_model.encoder.conv_in.weight": torch.zeros(128, 3, 3, 3)}
    path = _unet_keys(tmp_path / "sd2.safetensors", 1024, **vae)
    with pytest.raises(ModelFileError, match=r"no text encoder weights \('cond_stage_model\.model\.\.\.\.'\)"):
        sd_checkpoint.load_single_file(path, "sd2")
