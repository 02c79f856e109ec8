"""The FRC in a diffusers UNet: zero-init identity, Eq. 3 by hand, gradients, detach, K/V once."""

import math

import pytest
import torch
from diffusers import UNet2DConditionModel

from facex_core.errors import ModelFileError
from facex_core.model.config import FaceXConfig
from facex_core.model.diffusers_binding import DiffusersFRC, block_specs, transformer_blocks
from facex_core.model.facex import FaceXModel, drop_condition

CONTEXT = 768


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, sample_size=16,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CONTEXT, attention_head_dim=4,
    )
    for parameter in unet.parameters():  # diffusers zero-inits some outputs; make every path count
        if parameter.abs().sum() == 0:
            torch.nn.init.normal_(parameter, std=0.02)
    return unet.eval().requires_grad_(False)


def tiny_facex(unet: UNet2DConditionModel, seed: int = 1, randomise_frc: bool = False) -> FaceXModel:
    torch.manual_seed(seed)
    config = FaceXConfig("sd15", CONTEXT, 64, block_specs(unet), width=32, region_dim=16, clip_dim=32,
                         clip_layers=(1, 2, 2), adapter_layers=1, adapter_heads=2)
    model = FaceXModel(config)
    if randomise_frc:
        for layer in model.frc:
            torch.nn.init.normal_(layer.zero_proj.weight, std=0.2)
            torch.nn.init.normal_(layer.zero_proj.bias, std=0.2)
    return model


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(7)
    latents = torch.randn(2, 4, 16, 16, generator=gen)
    text = torch.randn(2, 5, CONTEXT, generator=gen)
    context = torch.randn(2, 11, CONTEXT, generator=gen)
    return latents, torch.tensor([500, 500]), text, context


def run(unet, inputs):
    latents, timesteps, text, _ = inputs
    with torch.no_grad():
        return unet(latents, timesteps, encoder_hidden_states=text).sample


def test_zero_initialised_frc_leaves_the_unet_output_unchanged(inputs):
    unet = tiny_unet()
    before = run(unet, inputs)
    with DiffusersFRC(unet, tiny_facex(unet)) as frc:
        frc.set_context(inputs[3])
        patched = run(unet, inputs)
    assert torch.equal(patched, before)  # the zero projection adds exactly 0: exactness is the claim


def test_trained_frc_changes_the_output_and_detaching_restores_it_bit_for_bit(inputs):
    unet = tiny_unet()
    before = run(unet, inputs)
    frc = DiffusersFRC(unet, tiny_facex(unet, randomise_frc=True)).attach()
    frc.set_context(inputs[3])
    patched = run(unet, inputs)
    frc.detach()
    assert float((patched - before).abs().max()) > 1e-3
    assert torch.equal(run(unet, inputs), before)


def test_gradients_reach_only_facex_parameters(inputs):
    unet = tiny_unet()
    facex = tiny_facex(unet, randomise_frc=True)
    latents, timesteps, text, shared = inputs
    context = shared.clone().requires_grad_(True)
    with DiffusersFRC(unet, facex) as frc:
        frc.set_context(context, cache=False)
        unet(latents, timesteps, encoder_hidden_states=text).sample.square().mean().backward()
    assert all(p.grad is None for p in unet.parameters())
    frc_grads = [p.grad for p in facex.frc.parameters()]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in frc_grads)
    assert context.grad is not None and float(context.grad.abs().sum()) > 0


def test_one_block_equals_equation_3_computed_by_hand():
    unet = tiny_unet()
    facex = tiny_facex(unet, randomise_frc=True)
    block, layer = transformer_blocks(unet)[0], facex.frc[0]
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 64, 32, generator=gen)
    text = torch.randn(2, 5, CONTEXT, generator=gen)
    f_sd = torch.randn(2, 9, CONTEXT, generator=gen)
    with torch.no_grad():
        x1 = x + block.attn1(block.norm1(x))
        x2 = x1 + block.attn2(block.norm2(x1), encoder_hidden_states=text)
        heads, dim_head = layer.heads, layer.dim_head
        q = layer.to_q(layer.norm(x2)).view(2, -1, heads, dim_head).transpose(1, 2)
        k = layer.to_k(f_sd).view(2, -1, heads, dim_head).transpose(1, 2)
        v = layer.to_v(f_sd).view(2, -1, heads, dim_head).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim_head), -1)
        attended = (weights @ v).transpose(1, 2).reshape(2, 64, heads * dim_head)
        x3 = x2 + layer.zero_proj(layer.to_out(attended))
        expected = x3 + block.ff(block.norm3(x3))
        with DiffusersFRC(unet, facex) as frc:
            frc.set_context(f_sd)
            bound = block(x, encoder_hidden_states=text)
    # Eq. 3 by hand and through the hooks run the same operations, grouped differently by the
    # attention kernels; float32 rounding for activations of order 1. A missing term moves it by ~1e-1.
    torch.testing.assert_close(bound, expected, rtol=0, atol=1e-5)


def test_keys_and_values_are_computed_once_per_sampling_run(inputs):
    unet = tiny_unet()
    facex = tiny_facex(unet, randomise_frc=True)
    calls = []
    for layer in facex.frc:
        layer.to_k.register_forward_hook(lambda *args: calls.append(1))
    with DiffusersFRC(unet, facex) as frc:
        frc.set_context(inputs[3])
        for _ in range(3):
            run(unet, inputs)
    assert len(calls) == len(facex.frc)


def test_each_sample_is_conditioned_by_its_own_context_and_the_null_row(inputs):
    unet = tiny_unet()
    facex = tiny_facex(unet, randomise_frc=True)
    latents, timesteps, text, _ = inputs
    condition = torch.randn(1, facex.config.context_tokens, CONTEXT, generator=torch.Generator().manual_seed(5))
    pair = torch.cat([facex.null(1).detach(), condition], 0)
    with DiffusersFRC(unet, facex) as frc:
        frc.set_context(pair)
        batched = run(unet, inputs)
        for index in range(2):
            frc.set_context(pair[index:index + 1])
            single = unet(latents[index:index + 1], timesteps[:1], encoder_hidden_states=text[index:index + 1]).sample
            # batch size changes the order of float32 sums in the kernels, nothing else
            torch.testing.assert_close(batched[index], single[0], rtol=0, atol=1e-5)


def test_condition_dropout_replaces_exactly_the_marked_rows_by_the_null_context():
    context, null = torch.ones(4, 3, 2), torch.full((3, 2), -1.0)
    dropped = drop_condition(context, null, torch.tensor([False, True, False, True]))
    assert dropped[:, 0, 0].tolist() == [1.0, -1.0, 1.0, -1.0]
    assert torch.equal(dropped[1], null)


def test_a_facex_model_for_another_layout_is_refused():
    unet = tiny_unet()
    sd15 = FaceXModel(FaceXConfig.for_family("sd15", width=32, region_dim=16, clip_dim=32, clip_layers=(1, 2, 2),
                                             adapter_layers=1, adapter_heads=2))
    with pytest.raises(ModelFileError, match=r"trained for sd15 \(16 transformer blocks, context width 768\)"):
        DiffusersFRC(unet, sd15)


def test_family_layouts_have_the_documented_block_counts():
    for family, count, context in (("sd15", 16, 768), ("sd2", 16, 1024), ("sdxl", 70, 2048)):
        config = FaceXConfig.for_family(family)
        assert len(config.blocks) == count and config.context_dim == context
    assert FaceXConfig.for_family("sd15").blocks[0].heads == 8
    assert FaceXConfig.for_family("sd2").blocks[0].heads == 5
