"""FaceXFormer: strict loading of the published layout, and the architecture facts that key
names and shapes cannot show (windowing, shifts and their mask, relative-position indexing,
patch-merging order, which stages are fused in which order, token order, parsing), each
against a reference computed by hand here."""

import argparse
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from facex_core.errors import ImageInputError, ModelFileError
from facex_core.ford.facexformer import (
    FACEXFORMER_B,
    FACEXFORMER_TINY,
    INPUT_SIZE,
    Attention,
    FaceXFormer,
    RandomPositionEncoding,
)
from facex_core.ford.swin import PatchMerging, ShiftedWindowAttention, merge_2x2, relative_position_index
from facex_core.testing.facexformer_checkpoint import (
    facexformer_shapes,
    facexformer_state,
    write_facexformer_checkpoint,
)

# The published order of the task tokens (authors' FaceDecoder), written out independently.
TOKEN_ORDER = ("landmarks", "pose", "attribute", "visibility", "age", "gender", "race")
OUTPUT_OF_TOKEN = {"landmarks": "landmarks", "pose": "pose", "attribute": "attributes", "visibility": "visibility",
                   "age": "age", "gender": "gender", "race": "race"}
# torchvision's Swin_B_Weights meta: 87,768,224 parameters including the 1024 -> 1000 classifier.
SWIN_B_PARAMETERS_WITHOUT_HEAD = 87_768_224 - (1024 * 1000 + 1000)
# Float32 results of one computation done in two orders (batched vs single, fused kernel vs
# explicit softmax) differ by rounding, ~1e-6 relative on values of order 1; the bugs these
# tests look for (a wrong window, mask, order or batch mix) change values by order 0.1 or more.
ATOL = 1e-5


# ---------------------------------------------------------------- loading the published layout


def test_published_swin_b_layout_loads_strictly(tmp_path):
    path = write_facexformer_checkpoint(tmp_path / "model.pt", FACEXFORMER_B, seed=3, dtype=torch.float16)
    network = FaceXFormer.from_file(path)
    written = torch.load(path, weights_only=True)["state_dict_backbone"]
    state = network.state_dict()
    # Swin-B 351 (patch embedding 4, 24 blocks of 14, 3 mergings of 3, final norm 2), decoder 144
    # (2 layers of 36, final attention and norm 10, 8 token tables, upscaling 6, 8 MLPs of 6),
    # position encoding 1, linear_c 8, linear_fuse 1
    assert len(state) == len(facexformer_shapes(FACEXFORMER_B)) == len(written) == 505
    for key in ("backbone.0.0.0.weight", "backbone.0.5.17.attn.qkv.weight", "backbone.0.6.reduction.weight",
                "backbone.1.weight", "linear_fuse.weight", "pe_layer.positional_encoding_gaussian_matrix",
                "face_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight",
                "face_decoder.race_prediction_head.layers.2.bias"):
        assert state[key].dtype == torch.float32
        assert torch.equal(state[key], written[key].float()), key
    # the synthesiser's index table and the network's own, written independently, agree
    assert torch.equal(written["backbone.0.7.1.attn.relative_position_index"], relative_position_index(7))
    assert sum(p.numel() for p in network.backbone.parameters()) == SWIN_B_PARAMETERS_WITHOUT_HEAD
    assert not network.training


def test_swin_b_shapes_follow_torchvision():
    shapes = {key: tuple(value.shape) for key, value in FaceXFormer(FACEXFORMER_B).state_dict().items()}
    assert shapes["backbone.0.0.0.weight"] == (128, 3, 4, 4)
    assert shapes["backbone.0.5.17.attn.relative_position_bias_table"] == (169, 16)
    assert shapes["backbone.0.5.17.attn.relative_position_index"] == (2401,)
    assert shapes["backbone.0.7.1.mlp.3.weight"] == (1024, 4096)
    assert shapes["backbone.0.6.norm.weight"] == (2048,) and shapes["backbone.0.6.reduction.weight"] == (1024, 2048)
    assert shapes["backbone.1.weight"] == (1024,)
    assert [shapes[f"linear_c.{i}.proj.weight"] for i in range(4)] == [(256, 128), (256, 256), (256, 512), (256, 1024)]
    assert shapes["linear_fuse.weight"] == (256, 1024, 1, 1)
    assert shapes["face_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"] == (128, 256)
    assert shapes["face_decoder.transformer.layers.0.mlp.lin1.weight"] == (2048, 256)
    assert shapes["face_decoder.output_upscaling.3.weight"] == (64, 32, 2, 2)
    assert shapes["face_decoder.mask_tokens.weight"] == (11, 256)


def write_tiny(path, state):
    torch.save({"state_dict_backbone": state}, path)
    return path


def test_a_missing_key_is_named(tmp_path):
    state = facexformer_state(FACEXFORMER_TINY)
    del state["backbone.0.3.1.attn.relative_position_bias_table"]
    with pytest.raises(ModelFileError, match=r"missing keys: backbone\.0\.3\.1\.attn\.relative_position_bias_table"):
        FaceXFormer.from_file(write_tiny(tmp_path / "model.pt", state), config=FACEXFORMER_TINY)


def test_a_misshapen_key_is_named_with_both_shapes(tmp_path):
    state = facexformer_state(FACEXFORMER_TINY)
    state["face_decoder.mask_tokens.weight"] = torch.zeros(10, 32)
    with pytest.raises(ModelFileError, match=r"face_decoder\.mask_tokens\.weight \(10, 32\) \(expected \(11, 32\)\)"):
        FaceXFormer.from_file(write_tiny(tmp_path / "model.pt", state), config=FACEXFORMER_TINY)


def test_a_file_without_state_dict_backbone_names_the_entry(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": facexformer_state(FACEXFORMER_TINY)}, path)
    with pytest.raises(ModelFileError, match=r"no 'state_dict_backbone' entry \(found: state_dict\)"):
        FaceXFormer.from_file(path, config=FACEXFORMER_TINY)


def test_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict_backbone": facexformer_state(FACEXFORMER_TINY), "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(ModelFileError, match="could not be read"):
        FaceXFormer.from_file(path, config=FACEXFORMER_TINY)


# ---------------------------------------------------------------- Swin: windows, shifts, bias, merging


def brute_force_window_attention(attn: ShiftedWindowAttention, x: torch.Tensor, shift: int) -> torch.Tensor:
    """Attention over the whole (zero-padded) map, each query restricted by hand to the keys
    that share its window after a cyclic roll by -shift and that lie on the same side of the
    wrap-around (rows/columns < shift came round from the other edge); bias by relative
    position inside the window."""
    _, h, w, c = x.shape
    win = attn.window
    hp, wp = -(-h // win) * win, -(-w // win) * win
    x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))[0].reshape(hp * wp, c)
    ys, xs = torch.div(torch.arange(hp * wp), wp, rounding_mode="floor"), torch.arange(hp * wp) % wp
    rolled_y, rolled_x = (ys - shift) % hp, (xs - shift) % wp  # where each token sits after the roll
    window_id = (rolled_y // win) * (wp // win) + rolled_x // win
    region = (ys < shift).long() * 2 + (xs < shift).long()
    allowed = (window_id[:, None] == window_id[None, :]) & (region[:, None] == region[None, :])
    dy = (rolled_y % win)[:, None] - (rolled_y % win)[None, :]
    dx = (rolled_x % win)[:, None] - (rolled_x % win)[None, :]
    bias = attn.relative_position_bias_table[(dy + win - 1) * (2 * win - 1) + (dx + win - 1)]  # [N, N, heads]
    heads, head_dim = attn.num_heads, c // attn.num_heads
    q, k, v = attn.qkv(x).split(c, dim=-1)
    outputs = []
    for head in range(heads):
        part = slice(head * head_dim, (head + 1) * head_dim)
        logits = q[:, part] @ k[:, part].T * head_dim ** -0.5 + bias[..., head]
        outputs.append(logits.masked_fill(~allowed, float("-inf")).softmax(-1) @ v[:, part])
    out = attn.proj(torch.cat(outputs, dim=-1)).view(hp, wp, c)
    return out[:h, :w][None]


def window_module(shift: int, dim: int = 8, heads: int = 2) -> ShiftedWindowAttention:
    torch.manual_seed(1)
    attn = ShiftedWindowAttention(dim, heads, window=7, shift=shift)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()  # large enough that a wrong index shows
    return attn


@pytest.mark.parametrize("size, shift", [(14, 0), (14, 3), (9, 3), (7, 0)])
@torch.no_grad()
def test_window_attention_matches_the_brute_force_reference(size, shift):
    """(9, 3): a 9x9 map is padded to 14x14 and still shifted, as in torchvision."""
    attn = window_module(shift)
    x = torch.randn(1, size, size, 8)
    torch.testing.assert_close(attn(x), brute_force_window_attention(attn, x, shift), rtol=0, atol=ATOL)


@torch.no_grad()
def changed_tokens(attn: ShiftedWindowAttention, size: int, y: int, x: int) -> set[tuple[int, int]]:
    """Which output tokens move when the input token (y, x) is perturbed."""
    torch.manual_seed(2)
    inputs = torch.randn(1, size, size, 8)
    moved = inputs.clone()
    moved[0, y, x] += 3.0
    # unaffected tokens reproduce bit for bit (other windows, or keys masked by e^-100); affected
    # ones move by ~0.1 for a perturbation of 3
    diff = (attn(moved) - attn(inputs)).abs().amax(-1)[0]
    return {(int(r), int(c)) for r, c in (diff > 1e-6).nonzero()}


def block(rows: range, cols: range) -> set[tuple[int, int]]:
    return {(r, c) for r in rows for c in cols}


def test_windows_are_7x7_without_shift():
    attn = window_module(shift=0)
    assert changed_tokens(attn, 14, 5, 5) == block(range(0, 7), range(0, 7))
    assert changed_tokens(attn, 14, 8, 2) == block(range(7, 14), range(0, 7))


def test_shifted_windows_straddle_the_borders_and_wrapped_tokens_stay_apart():
    """Shift 3 on 14x14: token (5, 5) rolls to (2, 2), whose window holds original rows and
    columns 3..9; token (0, 0) wraps round to (11, 11) and only meets the other wrapped tokens
    (rows and columns 0..2); (12, 5) shares rolled rows 7..13 with wrapped rows 0..2 but not
    their region, so it meets rows 10..13 only."""
    attn = window_module(shift=3)
    assert changed_tokens(attn, 14, 5, 5) == block(range(3, 10), range(3, 10))
    assert changed_tokens(attn, 14, 0, 0) == block(range(0, 3), range(0, 3))
    assert changed_tokens(attn, 14, 12, 5) == block(range(10, 14), range(3, 10))


@torch.no_grad()
def test_no_shift_when_the_window_covers_the_map():
    """The last Swin stage at 224 is 7x7: its odd blocks run unshifted, one window for all."""
    shifted, plain = window_module(shift=3), window_module(shift=0)
    x = torch.randn(1, 7, 7, 8)
    assert torch.equal(shifted(x), plain(x))
    assert changed_tokens(shifted, 7, 0, 0) == block(range(7), range(7))


def test_blocks_alternate_shift_0_and_3_in_every_stage():
    features = FaceXFormer(FACEXFORMER_TINY).backbone[0]
    assert [[blk.attn.shift for blk in features[i]] for i in (1, 3, 5, 7)] == [[0, 3]] * 4
    assert [blk.attn.window for blk in features[5]] == [7, 7]


def test_relative_position_index_is_the_brute_force_table():
    index = ShiftedWindowAttention(8, 2, window=7, shift=0).relative_position_index
    cells = [(y, x) for y in range(7) for x in range(7)]
    expected = [(yq - yk + 6) * 13 + (xq - xk + 6) for yq, xq in cells for yk, xk in cells]
    assert index.tolist() == expected
    # query (0, 0) with key (0, 0), with key (6, 6), and query (6, 6) with key (0, 0)
    assert (int(index[0]), int(index[48]), int(index[48 * 49])) == (84, 0, 168)


def test_patch_merging_takes_even_even_odd_even_even_odd_odd_odd():
    x = torch.arange(16.0).view(1, 4, 4, 1)  # value = 4 * row + col
    merged = merge_2x2(x)
    assert merged.shape == (1, 2, 2, 4)
    assert merged[0, 0, 0].tolist() == [0, 4, 1, 5]
    assert merged[0, 0, 1].tolist() == [2, 6, 3, 7]
    assert merged[0, 1, 0].tolist() == [8, 12, 9, 13]
    assert merge_2x2(torch.ones(1, 3, 3, 1))[0, 1, 1].tolist() == [1, 0, 0, 0]  # odd side padded with zeros


@torch.no_grad()
def test_patch_merging_normalises_the_4c_vector_before_reducing():
    merging = PatchMerging(1)
    merging.reduction.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))
    out = merging(torch.arange(16.0).view(1, 4, 4, 1))[0, 0, 0]
    # [0, 4, 1, 5]: mean 2.5, variance 4.25, so first and last normalise to -/+2.5 / sqrt(4.25 + 1e-5)
    assert out.tolist() == pytest.approx([-1.2126766, 1.2126766], abs=1e-6)


# ---------------------------------------------------------------- the decoder's parts


@torch.no_grad()
def test_decoder_attention_is_scaled_by_the_head_width():
    torch.manual_seed(4)
    attn = Attention(8, num_heads=2, downsample=2)  # 4 inner channels, 2 per head
    q, k, v = torch.randn(1, 3, 8), torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    qp, kp, vp = attn.q_proj(q)[0], attn.k_proj(k)[0], attn.v_proj(v)[0]
    heads = [(qp[:, h * 2:h * 2 + 2] @ kp[:, h * 2:h * 2 + 2].T / math.sqrt(2)).softmax(-1) @ vp[:, h * 2:h * 2 + 2]
             for h in range(2)]
    torch.testing.assert_close(attn(q, k, v)[0], attn.out_proj(torch.cat(heads, -1)), rtol=0, atol=ATOL)


def test_position_encoding_of_one_pixel_by_hand():
    pe = RandomPositionEncoding(4)
    pe.positional_encoding_gaussian_matrix.copy_(torch.tensor([[0.5, 0.0], [0.0, 0.25]]))
    # pixel (row 0, col 1) of 2x2: centre x = 0.75, y = 0.25 -> [-1, 1] gives (0.5, -0.5);
    # angles 2 pi (0.5 * 0.5, -0.5 * 0.25) = (pi / 2, -pi / 4); channels sin, sin, cos, cos
    encoding = pe(2, 2)
    assert encoding.shape == (4, 2, 2)
    half = math.sqrt(0.5)
    assert encoding[:, 0, 1].tolist() == pytest.approx([1.0, -half, 0.0, half], abs=1e-6)


# ---------------------------------------------------------------- the whole tiny network


WATCHED = (
    [f"backbone.0.{i}" for i in range(8)] + [f"linear_c.{i}" for i in range(4)]
    + ["linear_fuse", "face_decoder.transformer", "face_decoder.output_upscaling",
       "face_decoder.output_hypernetwork_mlps", "face_decoder.transformer.layers.0",
       "face_decoder.transformer.layers.0.norm1", "face_decoder.transformer.layers.1",
       "face_decoder.transformer.layers.1.norm1"]
    + [f"face_decoder.{task}_prediction_head" for task in TOKEN_ORDER]
)


@pytest.fixture(scope="module")
def tiny():
    """One forward of the tiny network on two images, with the inputs and outputs of the
    modules in WATCHED recorded."""
    torch.manual_seed(0)
    network = FaceXFormer(FACEXFORMER_TINY).eval()
    inputs, outputs, hooks = {}, {}, []
    modules = dict(network.named_modules())
    for name in WATCHED:
        def record(module, args, output, name=name):
            inputs[name], outputs[name] = args, output
        hooks.append(modules[name].register_forward_hook(record))
    x = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        out = network(x)
    for hook in hooks:
        hook.remove()
    return SimpleNamespace(network=network, x=x, out=out, inputs=inputs, outputs=outputs)


def test_every_output_has_its_documented_shape_and_is_finite(tiny):
    shapes = {"landmarks": (2, 68, 2), "pose": (2, 3), "attributes": (2, 40), "visibility": (2, 29), "age": (2, 8),
              "gender": (2, 2), "race": (2, 5), "parsing": (2, 11, 224, 224)}
    for name, shape in shapes.items():
        value = getattr(tiny.out, name)
        assert tuple(value.shape) == shape, name
        assert torch.isfinite(value).all(), name


@torch.no_grad()
def test_one_image_does_not_depend_on_the_other_in_the_batch(tiny):
    alone = tiny.network(tiny.x[1:])
    for name, value in vars(alone).items():
        torch.testing.assert_close(value[0], getattr(tiny.out, name)[1], rtol=1e-4, atol=1e-4, msg=name)


def test_the_four_block_stages_feed_linear_c(tiny):
    """linear_c.i reads the output of features[2i + 1] (not the patch merging after it), at
    56, 28, 14 and 7 pixels for a 224 input."""
    for i, size in enumerate((56, 28, 14, 7)):
        stage_output = tiny.outputs[f"backbone.0.{2 * i + 1}"]
        assert stage_output.shape == (2, size, size, 16 * 2**i)
        assert torch.equal(tiny.inputs[f"linear_c.{i}"][0], stage_output)


def test_fusion_concatenates_the_deepest_stage_first_upsampled_to_56(tiny):
    fused_input = tiny.inputs["linear_fuse"][0]
    width = FACEXFORMER_TINY.decoder_dim
    assert fused_input.shape == (2, 4 * width, 56, 56)
    for i in range(4):
        projected = tiny.outputs[f"linear_c.{i}"]
        expected = F.interpolate(projected, size=(56, 56), mode="bilinear", align_corners=False)
        block_of_stage = fused_input[:, (3 - i) * width:(4 - i) * width]
        torch.testing.assert_close(block_of_stage, expected, rtol=0, atol=0)


def test_task_tokens_enter_in_the_published_order(tiny):
    decoder = tiny.network.face_decoder
    tokens = tiny.inputs["face_decoder.transformer"][2]
    assert tokens.shape == (2, 18, FACEXFORMER_TINY.decoder_dim)
    for index, task in enumerate(TOKEN_ORDER):
        assert torch.equal(tokens[:, index], getattr(decoder, f"{task}_token").weight[0].expand(2, -1)), task
    assert torch.equal(tokens[0, 7:], decoder.mask_tokens.weight)


def test_each_head_reads_its_own_token_and_fills_its_own_output(tiny):
    hs = tiny.outputs["face_decoder.transformer"][0]
    for index, task in enumerate(TOKEN_ORDER):
        head = f"face_decoder.{task}_prediction_head"
        assert torch.equal(tiny.inputs[head][0], hs[:, index]), task
        if task != "landmarks":
            assert torch.equal(getattr(tiny.out, OUTPUT_OF_TOKEN[task]), tiny.outputs[head]), task
    assert torch.equal(tiny.inputs["face_decoder.output_hypernetwork_mlps"][0], hs[:, 7:])


def test_landmarks_are_68_points_with_x_first(tiny):
    raw = tiny.outputs["face_decoder.landmarks_prediction_head"]  # [B, 136] = x0, y0, x1, y1, ...
    assert raw.shape == (2, 136) and tiny.out.landmarks.shape == (2, 68, 2)
    assert torch.equal(tiny.out.landmarks[:, :, 0], raw[:, 0::2])
    assert torch.equal(tiny.out.landmarks[:, :, 1], raw[:, 1::2])


def test_parsing_is_the_hypernetwork_of_the_mask_tokens_times_the_upscaled_map(tiny):
    hyper = tiny.outputs["face_decoder.output_hypernetwork_mlps"]  # [B, 11, C/8]
    upscaled = tiny.outputs["face_decoder.output_upscaling"]  # [B, C/8, 224, 224]
    assert hyper.shape == (2, 11, 4) and upscaled.shape == (2, 4, 224, 224)
    expected = torch.einsum("bkc,bchw->bkhw", hyper, upscaled)
    torch.testing.assert_close(tiny.out.parsing, expected, rtol=0, atol=ATOL)


@torch.no_grad()
def test_first_decoder_layer_self_attention_has_no_position_encoding_and_no_residual(tiny):
    transformer = tiny.network.face_decoder.transformer
    tokens = tiny.inputs["face_decoder.transformer"][2]
    first, second = transformer.layers
    torch.testing.assert_close(tiny.inputs["face_decoder.transformer.layers.0.norm1"][0],
                               first.self_attn(tokens, tokens, tokens), rtol=0, atol=ATOL)
    queries = tiny.inputs["face_decoder.transformer.layers.1"][0]
    with_pe = queries + tokens
    torch.testing.assert_close(tiny.inputs["face_decoder.transformer.layers.1.norm1"][0],
                               queries + second.self_attn(with_pe, with_pe, queries), rtol=0, atol=ATOL)


def test_a_crop_of_another_size_is_refused_before_any_work(tiny):
    with pytest.raises(ImageInputError, match=r"\[B, 3, 224, 224\], got \(1, 3, 256, 256\); resize"):
        tiny.network(torch.zeros(1, 3, 256, 256))
