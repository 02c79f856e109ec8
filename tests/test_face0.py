"""Face0's library parts: projector, token override, guidance, weight file, identity encoders,
and InceptionResnetV1 on a file in facenet-pytorch's published layout (random values).

InceptionResnetV1 at 160x160 costs about 1.5 GFLOPs per face, so the network and one
forward pass with its intermediate outputs are computed once per module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import annotated, image_tensor
from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from facex_core.errors import BatchSizeError, ConfigError, ImageInputError, ModelFileError, UnknownNameError
from facex_core.face0.encoders import ENCODERS, check_encoder, facenet_crop, make_encoder
from facex_core.face0.guidance import face0_guidance, needed_terms
from facex_core.face0.inception_resnet import load_inception_resnet, standardize
from facex_core.face0.projector import IDENTITY_ENCODER_NAMES, VGGFACE2, Face0Config, Face0Projector
from facex_core.face0.tokens import override_last_tokens
from facex_core.face0.weights import (
    check_base_family,
    full_unet_patches,
    kohya_to_peft,
    load_face0,
    merge_unet_patches,
    peft_to_kohya,
    read_face0_config,
    save_face0,
)
from facex_core.faces.crops import align_faces
from facex_core.model.sd_checkpoint import build_unet
from facex_core.testing.facenet_checkpoint import vggface2_shapes, write_vggface2

SMALL = Face0Config(hidden=32, lora_rank=4, lora_alpha=8.0)
BIDEN = "portraits/real_biden_portrait.jpg"  # a 423-pixel face box: the crop is shrunk
ASTRONAUT = "portraits/real_astronaut_collins.png"  # a 99-pixel face box: the crop is enlarged
PIL_ROUNDING = 1 / 255 + 1e-6  # two 8-bit roundings of half a level (see the crop tests)
# BasicConv2d layers of facenet-pytorch's InceptionResnetV1, counted in its source: stem 6,
# Block35 6 x 5, Mixed_6a 4, Block17 4 x 10, Mixed_7a 7, Block8 4 x 6 (repeat_3 and block8).
BASIC_CONVS = 6 + 6 * 5 + 4 + 4 * 10 + 7 + 4 * 6
# Each: conv.weight + 5 BatchNorm entries; 21 residual conv2d (weight, bias); last_linear.weight,
# last_bn (5 entries), logits (weight, bias).
PUBLISHED_KEY_COUNT = BASIC_CONVS * 6 + 21 * 2 + 1 + 5 + 2


# --- projector ---------------------------------------------------------------------------------

def test_the_projector_maps_embeddings_to_tokens_of_the_text_width():
    for config in (SMALL, Face0Config(hidden=32, context_dim=1024, base_family="sd2", tokens=4)):
        tokens = Face0Projector(config)(torch.randn(2, 512))
        assert tuple(tokens.shape) == (2, config.tokens, config.context_dim)


def test_the_projector_reads_the_direction_of_the_embedding_only():
    """The input is L2-normalised, so an average of embeddings works like a single one."""
    projector = Face0Projector(SMALL)
    embedding = torch.randn(3, 512)
    torch.testing.assert_close(projector(3.0 * embedding), projector(embedding), rtol=0, atol=1e-6)


def test_the_projector_starts_near_zero_with_gradients_everywhere():
    """The last layer starts at 1/100 of PyTorch's default scale (uniform within 1/sqrt(fan_in),
    so a std of 1/sqrt(3 fan_in)), zero bias; the first layer still gets a gradient at step one.
    The std of 73728 draws is within 1% of its value."""
    torch.manual_seed(0)
    projector = Face0Projector(SMALL)
    output = projector.mlp[-1]
    bound = 0.01 / SMALL.hidden**0.5
    assert output.weight.abs().max() <= bound
    assert abs(output.weight.std() / (bound / 3**0.5) - 1) < 0.01
    assert torch.count_nonzero(output.bias) == 0
    tokens = projector(torch.randn(4, 512))
    assert tokens.abs().max() < 0.01
    tokens.square().sum().backward()
    assert projector.mlp[0].weight.grad.abs().sum() > 0


def test_a_config_that_does_not_fit_its_family_or_encoder_is_refused():
    with pytest.raises(ConfigError, match="context_dim 1024 does not fit base_family 'sd15'"):
        Face0Config(context_dim=1024)
    with pytest.raises(ConfigError, match="base_family 'sd3'"):
        Face0Config(base_family="sd3")
    with pytest.raises(ConfigError, match="identity_encoder 'facenet'"):
        Face0Config(identity_encoder="facenet")


# --- token override ----------------------------------------------------------------------------

@pytest.mark.parametrize("length", [77, 154])
def test_the_face_overwrites_exactly_the_last_three_positions(length):
    context = torch.randn(2, length, 768)
    original = context.clone()
    face = torch.randn(1, 3, 768)
    result = override_last_tokens(context, face)
    changed = (result != context).any(dim=-1)
    assert changed[:, length - 3:].all() and not changed[:, :length - 3].any()
    assert torch.equal(result[:, length - 3:], face.expand(2, -1, -1))
    assert torch.equal(context, original)


def test_the_override_keeps_the_encoding_dtype_and_takes_one_face_per_row():
    context = torch.randn(2, 77, 768, dtype=torch.float16)
    faces = torch.randn(2, 3, 768)
    result = override_last_tokens(context, faces)
    assert result.dtype == torch.float16
    assert torch.equal(result[:, -3:], faces.half())


def test_the_override_refuses_another_width_or_batch():
    with pytest.raises(ModelFileError, match="768 wide but the prompt encoding is 1024 wide"):
        override_last_tokens(torch.zeros(1, 77, 1024), torch.zeros(1, 3, 768))
    with pytest.raises(BatchSizeError, match="3 faces cannot be given to a conditioning batch of 2"):
        override_last_tokens(torch.zeros(2, 77, 768), torch.zeros(3, 3, 768))


# --- guidance ----------------------------------------------------------------------------------

def _predictions(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(2, 4, 8, 8, generator=gen) for name in ("uncond", "text", "face", "both")}


def test_the_guidance_is_the_documented_formula():
    """Against the formula in float64: fp32 rounding over seven operations on values of a few
    units stays within 1e-6 absolute plus 1e-6 relative."""
    p = _predictions()
    w_text, w_face, w_both = 1.5, 2.0, 4.5
    out = face0_guidance(p["uncond"], p["text"], p["face"], p["both"], w_text, w_face, w_both)
    d = {name: value.double() for name, value in p.items()}
    expected = (d["uncond"] + w_both * (d["both"] - d["uncond"]) + w_text * (d["text"] - d["uncond"])
                + w_face * (d["face"] - d["uncond"]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)


def test_zero_text_and_face_weights_are_plain_cfg_without_their_predictions():
    p = _predictions(1)
    cfg = p["uncond"] + (p["both"] - p["uncond"]) * 7.0  # ComfyUI's cfg_function
    assert torch.equal(face0_guidance(p["uncond"], None, None, p["both"], 0.0, 0.0, 7.0), cfg)
    assert torch.equal(face0_guidance(p["uncond"], p["text"], p["face"], p["both"], 0.0, 0.0, 7.0), cfg)
    assert needed_terms(0.0, 0.0, 7.0) == ("both",)
    assert needed_terms(1.0, 2.0, 0.0) == ("text", "face")
    with pytest.raises(ValueError, match="the 'face' prediction is needed"):
        face0_guidance(p["uncond"], None, None, p["both"], 0.0, 1.0, 7.0)


# --- weight file -------------------------------------------------------------------------------

def _peft_state(rank: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """What peft's get_peft_model_state_dict gives for LoRAs on two attention projections and
    a 1x1 conv of an SD1.5 UNet."""
    gen = torch.Generator().manual_seed(seed)
    modules = {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": (320, 320),
        "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_out.0": (640, 640),
        "mid_block.attentions.0.proj_in": (1280, 1280, 1, 1),
    }
    state = {}
    for module, (c_out, c_in, *kernel) in modules.items():
        state[f"{module}.lora_A.weight"] = torch.randn(rank, c_in, *kernel, generator=gen)
        state[f"{module}.lora_B.weight"] = torch.randn(c_out, rank, *kernel, generator=gen)
    return state


def _write(tmp_path, name, config=SMALL, patches=None):
    torch.manual_seed(0)
    patches = peft_to_kohya(_peft_state(config.lora_rank), config.lora_alpha) if patches is None else patches
    return save_face0(tmp_path / name, Face0Projector(config), config, patches), patches


def _rewrite(source, target, drop=(), replace=None, metadata=None):
    """A copy of a safetensors file with keys dropped or replaced, or other metadata."""
    with safe_open(str(source), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        original = handle.metadata()
    tensors = {key: value for key, value in tensors.items() if key not in drop} | (replace or {})
    save_file(tensors, str(target), metadata=original if metadata is None else metadata)
    return target


def test_peft_loras_get_diffusers_kohya_names_with_our_alpha():
    """The key names are what diffusers' own PEFT -> kohya conversion gives (for a state dict
    with its "unet." prefix); the alpha is peft's lora_alpha, where diffusers writes the rank."""
    state = _peft_state(rank=4)
    ours = peft_to_kohya(state, alpha=8.0)
    theirs = convert_state_dict_to_kohya({f"unet.{key}": value for key, value in state.items()})
    assert set(ours) == set(theirs)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in ours
    for key, value in ours.items():
        assert torch.equal(value, torch.tensor(8.0) if key.endswith(".alpha") else theirs[key])


def test_kohya_patches_go_back_to_peft_with_the_unet_module_paths():
    state = _peft_state(rank=4)
    modules = sorted({key.rsplit(".lora_", 1)[0] for key in state}) + ["down_blocks.0.resnets.0.conv1"]
    restored, alpha = kohya_to_peft(peft_to_kohya(state, 8.0), modules)
    assert alpha == 8.0 and restored.keys() == state.keys()
    assert all(torch.equal(restored[key], state[key]) for key in state)
    with pytest.raises(ModelFileError, match="names no module of this UNet"):
        kohya_to_peft(peft_to_kohya(state, 8.0), modules[1:])


def test_the_weight_file_round_trips_with_its_metadata(tmp_path):
    path, patches = _write(tmp_path, "face0.safetensors")
    loaded = load_face0(path)
    assert loaded.config == SMALL == read_face0_config(path)
    assert loaded.unet_patches.keys() == patches.keys()
    assert all(torch.equal(loaded.unet_patches[key], value) for key, value in patches.items())
    torch.manual_seed(0)
    original = Face0Projector(SMALL).state_dict()
    assert all(torch.equal(value, original[key]) for key, value in loaded.projector.state_dict().items())
    assert not loaded.projector.training
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    assert metadata == {"format": "face0", "format_version": "1", "base_family": "sd15", "identity_encoder": "arcface",
                        "embedding_dim": "512", "context_dim": "768", "tokens": "3", "hidden": "32",
                        "resolution": "512", "lora_rank": "4", "lora_alpha": "8.0", "unet": "lora"}


def test_a_fully_fine_tuned_unet_is_stored_as_differences(tmp_path):
    config = Face0Config(hidden=32, full_unet=True, identity_encoder=VGGFACE2)
    base = {"conv_in.weight": torch.randn(32, 4, 3, 3), "conv_in.bias": torch.randn(32)}
    tuned = {key: value + 0.5 for key, value in base.items()}
    patches = full_unet_patches(tuned, base)
    assert sorted(patches) == ["lora_unet_conv_in.diff", "lora_unet_conv_in.diff_b"]
    path, _ = _write(tmp_path, "full.safetensors", config, patches)
    loaded = load_face0(path)
    assert loaded.config == config and loaded.config.unet == "full"
    assert torch.equal(loaded.unet_patches["lora_unet_conv_in.diff"], tuned["conv_in.weight"] - base["conv_in.weight"])
    assert torch.equal(loaded.unet_patches["lora_unet_conv_in.diff_b"], tuned["conv_in.bias"] - base["conv_in.bias"])


def test_merged_patches_change_the_unet_as_comfyui_applies_them():
    """W + strength * alpha / rank * up @ down for the LoRA, W + strength * diff for the
    differences, on the micro SD1.5 UNet's real module names; nothing else changes."""
    unet = build_unet("micro_sd15")
    before = {key: value.clone() for key, value in unet.state_dict().items()}
    q = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q"
    gen = torch.Generator().manual_seed(0)
    down, up = torch.randn(4, 32, generator=gen), torch.randn(32, 4, generator=gen)
    patches = peft_to_kohya({f"{q}.lora_A.weight": down, f"{q}.lora_B.weight": up}, alpha=2.0)
    patches["lora_unet_conv_out.diff_b"] = torch.full((4,), 0.25)
    merge_unet_patches(unet, patches, strength=0.5)
    after = unet.state_dict()
    torch.testing.assert_close(after[f"{q}.weight"], before[f"{q}.weight"] + 0.5 * 2.0 / 4 * up @ down)
    torch.testing.assert_close(after["conv_out.bias"], before["conv_out.bias"] + 0.125)
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed == {f"{q}.weight", "conv_out.bias"}
    with pytest.raises(ModelFileError, match="lora_unet_down_blocks_9_to_q names no module"):
        merge_unet_patches(unet, {"lora_unet_down_blocks_9_to_q.diff": torch.zeros(1)})


def test_a_file_with_a_missing_or_misshapen_key_is_refused_by_name(tmp_path):
    path, patches = _write(tmp_path, "good.safetensors")
    down = next(key for key in patches if key.endswith(".lora_down.weight"))
    cases = {
        "projector.mlp.6.bias": _rewrite(path, tmp_path / "a.safetensors", drop=["projector.mlp.6.bias"]),
        down.replace(".lora_down.weight", ".lora_up.weight"): _rewrite(
            path, tmp_path / "b.safetensors", drop=[down.replace(".lora_down.weight", ".lora_up.weight")]),
        "projector.mlp.0.weight (32, 511)": _rewrite(path, tmp_path / "c.safetensors",
                                           replace={"projector.mlp.0.weight": torch.zeros(32, 511)}),
        f"{down.split('.')[0]} (down (8, 320)": _rewrite(path, tmp_path / "d.safetensors",
                                                        replace={down: torch.zeros(8, 320)}),
        "lora_unet_x.lora_mid.weight": _rewrite(path, tmp_path / "e.safetensors",
                                                replace={"lora_unet_x.lora_mid.weight": torch.zeros(1)}),
    }
    for named, bad in cases.items():
        with pytest.raises(ModelFileError, match=named.replace("(", r"\(").replace(")", r"\)")):
            load_face0(bad)


def test_files_of_another_format_version_family_or_encoder_are_refused(tmp_path):
    path, _ = _write(tmp_path, "good.safetensors")
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    facex = _rewrite(path, tmp_path / "facex.safetensors", metadata={**metadata, "format": "facex"})
    with pytest.raises(ModelFileError, match="is a 'facex' file, not a Face0 file"):
        load_face0(facex)
    lora = _rewrite(path, tmp_path / "lora.safetensors", metadata={})
    with pytest.raises(ModelFileError, match="without a format in its metadata"):
        read_face0_config(lora)
    newer = _rewrite(path, tmp_path / "v2.safetensors", metadata={**metadata, "format_version": "2"})
    with pytest.raises(ModelFileError, match="format version 2; this suite reads version 1"):
        load_face0(newer)
    other_alpha = _rewrite(path, tmp_path / "alpha.safetensors", metadata={**metadata, "lora_alpha": "16.0"})
    with pytest.raises(ModelFileError, match="16.0 expected"):
        load_face0(other_alpha)
    config = read_face0_config(path)
    with pytest.raises(ModelFileError, match="made for sd15 .* but the model is sd2"):
        check_base_family(config, "sd2")
    with pytest.raises(ModelFileError, match="trained with the 'arcface' identity encoder, not "
                                             "'inception_resnet_v1_vggface2'"):
        check_encoder(config, VGGFACE2)
    check_encoder(config, "arcface")
    with pytest.raises(UnknownNameError, match="unknown identity encoder 'facenet'"):
        check_encoder(config, "facenet")
    assert set(ENCODERS) == set(IDENTITY_ENCODER_NAMES)


# --- InceptionResnetV1 -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vggface2_file(tmp_path_factory):
    return write_vggface2(tmp_path_factory.mktemp("facenet") / "20180402-114759-vggface2.pt")


@pytest.fixture(scope="module")
def inception_encoder(vggface2_file):
    return make_encoder(VGGFACE2, vggface2_file)


@pytest.fixture(scope="module")
def network(inception_encoder):
    """The encoder's network, loaded once for the module (the file holds 28M values)."""
    return inception_encoder.network


@pytest.fixture(scope="module")
def traced(network):
    """One forward pass of a random 160x160 input with the output of every top-level module."""
    outputs = {}
    hooks = [module.register_forward_hook(lambda _, __, out, name=name: outputs.__setitem__(name, out))
             for name, module in network.named_children()]
    x = torch.randn(1, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embedding = network(x)
    for hook in hooks:
        hook.remove()
    return x, embedding, outputs


def test_the_synthesised_file_has_the_published_layout_and_loads_strictly(vggface2_file, network):
    state = torch.load(vggface2_file, map_location="cpu", weights_only=True)
    assert len(state) == len(vggface2_shapes()) == PUBLISHED_KEY_COUNT
    assert set(network.state_dict()) == set(state)
    assert tuple(state["logits.weight"].shape) == (8631, 512)
    assert "last_linear.bias" not in state and "repeat_1.0.conv2d.bias" in state
    assert not network.training


def test_a_file_without_logits_or_of_another_shape_is_refused_by_name(vggface2_file, tmp_path):
    """The damaged copies are written in fp16 to halve the writing; the loader checks keys and shapes."""
    state = {key: value.half() if value.is_floating_point() else value
             for key, value in torch.load(vggface2_file, map_location="cpu", weights_only=True).items()}
    features_only = {key: value for key, value in state.items() if not key.startswith("logits")}
    torch.save(features_only, tmp_path / "features.pt")
    with pytest.raises(ModelFileError, match="missing keys: logits.weight, logits.bias"):
        load_inception_resnet(tmp_path / "features.pt")
    torch.save(state | {"last_linear.weight": torch.zeros(128, 1792, dtype=torch.float16)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match=r"last_linear.weight \(128, 1792\) \(expected \(512, 1792\)\)"):
        load_inception_resnet(tmp_path / "other.pt")


def test_the_strides_and_paddings_give_facenets_map_sizes(traced):
    """Keys cannot show strides, paddings or the stem's max pool; the sizes at 160 do."""
    _, embedding, outputs = traced
    sizes = {name: tuple(value.shape[1:]) for name, value in outputs.items() if value.ndim == 4}
    assert sizes == {
        "conv2d_1a": (32, 79, 79), "conv2d_2a": (32, 77, 77), "conv2d_2b": (64, 77, 77),
        "conv2d_3b": (80, 38, 38), "conv2d_4a": (192, 36, 36), "conv2d_4b": (256, 17, 17),
        "repeat_1": (256, 17, 17), "mixed_6a": (896, 8, 8), "repeat_2": (896, 8, 8),
        "mixed_7a": (1792, 3, 3), "repeat_3": (1792, 3, 3), "block8": (1792, 3, 3),
    }
    assert tuple(embedding.shape) == (1, 512)
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(1))


def test_the_head_averages_skips_dropout_and_has_no_linear_bias(network, traced):
    """embedding = normalise(BN_eps0.001(W @ mean over the 3x3 map)), by hand from the tensors:
    a dropout still active (p 0.6) would zero and rescale features and miss by far more than
    the 1e-5 that fp32 sums over 1792 products allow."""
    _, embedding, outputs = traced
    bn = network.last_bn
    linear = outputs["block8"].mean(dim=(2, 3)) @ network.last_linear.weight.T
    normed = (linear - bn.running_mean) / torch.sqrt(bn.running_var + 0.001) * bn.weight + bn.bias
    torch.testing.assert_close(embedding, F.normalize(normed, dim=1), rtol=0, atol=1e-5)


def test_basic_conv_is_a_bias_free_conv_batchnorm_eps_0001_and_relu(network):
    """conv2d_3b (1x1) with variances of 0.001, where eps 0.001 and PyTorch's 1e-5 differ by sqrt(2)."""
    layer = network.conv2d_3b
    saved = layer.bn.running_var.clone()
    layer.bn.running_var.fill_(0.001)
    x = torch.randn(1, 64, 5, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = layer(x)
    layer.bn.running_var.copy_(saved)
    conv = torch.einsum("oi,bihw->bohw", layer.conv.weight[:, :, 0, 0], x)
    shift = (conv - layer.bn.running_mean[:, None, None]) * layer.bn.weight[:, None, None]
    expected = F.relu(shift / 0.002**0.5 + layer.bn.bias[:, None, None])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
    assert (out == 0).any() and out.min() >= 0


@pytest.mark.parametrize(("block", "width", "scale", "relu"), [
    ("repeat_1.4", 256, 0.17, True), ("repeat_2.9", 896, 0.10, True),
    ("repeat_3.0", 1792, 0.20, True), ("block8", 1792, 1.0, False),
])
def test_residual_blocks_add_the_scaled_branch_sum_then_relu_except_the_last(network, block, width, scale, relu):
    """With the block's 1x1 conv2d zeroed and its bias -1, the block is x - scale (then ReLU):
    the scale and the ReLU read off exactly."""
    module = network.get_submodule(block)
    saved = {key: value.clone() for key, value in module.conv2d.state_dict().items()}
    with torch.no_grad():
        module.conv2d.weight.zero_()
        module.conv2d.bias.fill_(-1.0)
        x = torch.randn(1, width, 3, 3, generator=torch.Generator().manual_seed(2))
        out = module(x)
    module.conv2d.load_state_dict(saved)
    expected = x - torch.tensor(scale)
    torch.testing.assert_close(out, F.relu(expected) if relu else expected, rtol=0, atol=1e-6)


def _branch_outputs(module, x, count):
    with torch.no_grad():
        return [module.get_submodule(f"branch{index}")(x) for index in range(count)]


@pytest.mark.parametrize(("block", "width", "widths"), [
    ("repeat_1.0", 256, (32, 32, 32)), ("repeat_2.0", 896, (128, 128)), ("repeat_3.0", 1792, (192, 192)),
])
def test_residual_blocks_concatenate_their_branches_in_order(network, block, width, widths):
    """The input of the block's conv2d, slice by slice, is branch0, branch1, ... (each branch's
    own output computed alone)."""
    module = network.get_submodule(block)
    seen = []
    hook = module.conv2d.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    x = torch.randn(1, width, 5, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        module(x)
    hook.remove()
    assert torch.equal(seen[0], torch.cat(_branch_outputs(module, x, len(widths)), 1))
    assert seen[0].shape[1] == sum(widths)


@pytest.mark.parametrize(("block", "width", "convs"), [("mixed_6a", 256, 2), ("mixed_7a", 896, 3)])
def test_reduction_blocks_concatenate_conv_branches_then_a_max_pool(network, block, width, convs):
    module = network.get_submodule(block)
    x = torch.randn(1, width, 9, 9, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = module(x)
    pooled = F.max_pool2d(x, 3, stride=2)
    assert torch.equal(out, torch.cat([*_branch_outputs(module, x, convs), pooled], 1))
    assert out.shape[1] == {"mixed_6a": 384 + 256 + 256, "mixed_7a": 384 + 256 + 256 + 896}[block]


def test_crops_are_standardised_as_facenet_pytorch_does(network):
    """On an 80x80 crop, the smallest size whose last map is still 1x1, to save time."""
    assert torch.equal(standardize(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-127.5 / 128, 0.0, 127.5 / 128]))
    crops = torch.rand(1, 80, 80, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        direct = network((crops.permute(0, 3, 1, 2) * 255 - 127.5) / 128)
        assert torch.equal(network.embed(crops), direct)


# --- identity encoders -------------------------------------------------------------------------

def _pil_crop(name: str, box: tuple[int, int, int, int]) -> torch.Tensor:
    """facenet-pytorch's extract_face on a PIL image: img.crop(box).resize((160, 160), BILINEAR)."""
    image = Image.open(annotated(name).path).convert("RGB")
    return torch.from_numpy(np.asarray(image.crop(box).resize((160, 160), Image.BILINEAR), np.float32) / 255)


@pytest.mark.parametrize("name", [BIDEN, ASTRONAUT])
def test_the_box_crop_matches_pils_bilinear_resize(name):
    """Within one 8-bit level: PIL resizes in two passes and rounds each to 8 bits (half a level
    each; 0.91 to 0.99 levels measured). The edges are truncated as extract_face's int() does."""
    image = image_tensor(name)[0]
    x1, y1, x2, y2 = annotated(name).faces[0]["bbox"]
    ours = facenet_crop(image, (x1 + 0.7, y1 + 0.2, x2 + 0.9, y2 + 0.5))
    assert (ours - _pil_crop(name, (x1, y1, x2, y2))).abs().max() <= PIL_ROUNDING


def test_the_margin_is_in_output_pixels_and_the_box_is_clipped_to_the_image():
    """margin 20 around a 99-pixel box grows it by 20 * 99 / 140 = 14.14 pixels, half each side;
    a box beyond the image's left edge starts at 0."""
    image = image_tensor(ASTRONAUT)[0]
    x1, y1, x2, y2 = annotated(ASTRONAUT).faces[0]["bbox"]
    grown = (int(x1 - 7.07), int(y1 - 7.07), int(x2 + 7.07), int(y2 + 7.07))
    assert (facenet_crop(image, (x1, y1, x2, y2), margin=20) - _pil_crop(ASTRONAUT, grown)).abs().max() <= PIL_ROUNDING
    clipped = facenet_crop(image, (-30.0, y1, x2, y2))
    assert (clipped - _pil_crop(ASTRONAUT, (0, y1, x2, y2))).abs().max() <= PIL_ROUNDING
    with pytest.raises(ImageInputError, match="lies outside the"):
        facenet_crop(image, (-50.0, 10.0, -5.0, 40.0))


def test_both_encoders_embed_detected_faces_as_unit_vectors(inception_encoder, network, arcface_file):
    images = image_tensor(ASTRONAUT)
    faces = align_faces(images, [annotated(ASTRONAUT).detections()])
    embedding = inception_encoder.embed(images, faces)
    with torch.no_grad():
        expected = network.embed(facenet_crop(images[0], faces.boxes[0].tolist())[None])
    torch.testing.assert_close(embedding, expected, rtol=0, atol=1e-6)  # oneDNN may sum in another order
    arcface = make_encoder("arcface", arcface_file).embed(images, faces)
    for vectors in (embedding, arcface):
        assert tuple(vectors.shape) == (1, 512)
        torch.testing.assert_close(vectors.norm(dim=1), torch.ones(1))
