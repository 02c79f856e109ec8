"""The FRC in a diffusers UNet: zero-init identity, Eq. 3 by hand, gradients, detach, K/V once."""

import math
from functools import partial

import pytest
import torch
from diffusers import UNet2DConditionModel

from facex_core.errors import BatchSizeError, ModelFileError
from facex_core.model.config import FaceXConfig
from facex_core.model.diffusers_binding import DiffusersFRC, block_specs, transformer_blocks
from facex_core.model.facex import FaceXModel, check_reference, drop_condition
from facex_core.model.frc import PreparedContext, SamplingContext, chunk_contexts, frc_on_chunks

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
        layer.prepare = partial(lambda prepare, *args, **kwargs: calls.append(1) or prepare(*args, **kwargs),
                                layer.prepare)
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


# The chunked batches ComfyUI runs: cond_or_uncond lists each chunk as conditional (0) or unconditional (1).
LAYOUTS = [[0], [1, 0], [0, 1]]


def _layer_and_contexts(faces: int):
    """A trained-looking FRC layer of the tiny UNet, f_SD of `faces` faces and the null context."""
    unet = tiny_unet()
    facex = tiny_facex(unet, randomise_frc=True)
    gen = torch.Generator().manual_seed(11)
    context = torch.randn(faces, facex.config.context_tokens, CONTEXT, generator=gen)
    sampling = SamplingContext(context, facex.null(1)[0].detach())
    return facex, sampling


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("faces, rows", [(1, 1), (1, 4), (3, 3)], ids=["one-face-one-latent", "one-face-4-latents",
                                                                       "3-faces-3-latents"])
def test_each_chunk_attends_to_its_own_context_like_a_batch_built_row_by_row(layout, faces, rows):
    """Against the reference a user could write by hand: every row's keys stacked explicitly."""
    facex, sampling = _layer_and_contexts(faces)
    layer = facex.frc[0]
    hidden = torch.randn(rows * len(layout), 7, layer.to_q.in_features, generator=torch.Generator().manual_seed(3))
    conditional, null = sampling.layer_contexts(facex, 0, hidden)
    parts = chunk_contexts(conditional, null, layout, hidden.shape[0])
    assert [(part.start, part.stop) for part, _ in parts] == [(i * rows, (i + 1) * rows) for i in range(len(layout))]
    assert [context is null for _, context in parts] == [kind == 1 for kind in layout]
    with torch.no_grad():
        chunked = frc_on_chunks(layer, hidden, parts)
        rows_keys = torch.cat([(null if kind else conditional).keys.expand(rows, -1, -1, -1) for kind in layout])
        rows_values = torch.cat([(null if kind else conditional).values.expand(rows, -1, -1, -1) for kind in layout])
        reference = layer(hidden, PreparedContext(rows_keys, rows_values, conditional.output))
    # the same attention on the same rows; only the kernels' batch split differs
    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-6)
    assert chunked.abs().max() > 1e-3  # the FRC is trained-looking: the comparison is not of zeros


def test_faces_that_match_neither_one_nor_the_latent_batch_are_a_named_batch_error():
    facex, sampling = _layer_and_contexts(3)
    conditional, null = sampling.layer_contexts(facex, 0, torch.zeros(1))
    with pytest.raises(BatchSizeError, match="given 3 faces but the latent batch holds 2 images per condition"):
        chunk_contexts(conditional, null, [1, 0], 4)


def test_the_cache_holds_one_copy_per_face_however_many_latents_use_it_and_is_released():
    """16 latents from one face: the prepared keys and values are one face's, not 16 rows'."""
    facex, sampling = _layer_and_contexts(1)
    hidden = torch.zeros(32, 1, 1)  # 16 latents, conditional and unconditional chunks
    for index in range(len(facex.frc)):
        conditional, null = sampling.layer_contexts(facex, index, hidden)
        chunk_contexts(conditional, null, [1, 0], hidden.shape[0])
    tokens, element = facex.config.context_tokens, 4  # float32
    expected = sum(2 * 2 * tokens * layer.heads * layer.dim_head * element  # keys and values, face and null
                   + (layer.to_out.out_features * layer.to_out.in_features + layer.to_out.out_features) * element
                   for layer in facex.frc)  # the fused output projection, shared by face and null
    assert sampling.nbytes == expected
    sampling.release()
    assert sampling.nbytes == 0


@pytest.mark.parametrize("faces, shape, words", [
    (3, (1, 64, 64, 3), "The representation holds 3 face(s) but the reference I_R holds 1 image(s)"),
    (1, (3, 64, 64, 3), "The representation holds 1 face(s) but the reference I_R holds 3 image(s)"),
    (2, (2, 128, 128, 3), "cut at 128x128 px, but this FaceX model works on 64 px crops; cut the faces at 64 px"),
])
def test_a_reference_for_other_faces_or_another_crop_size_is_named(faces, shape, words):
    """N representations with one I_R (or the reverse) would otherwise broadcast or fail deep
    inside torch.cat; a 512 px crop for a 256 px model would fail in the patch embedding."""
    config = tiny_facex(tiny_unet()).config
    check_reference(config, 2, torch.zeros(2, 64, 64, 3))
    with pytest.raises(BatchSizeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_reference(config, faces, torch.zeros(shape))
