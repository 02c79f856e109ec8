"""CLIP region encoder: ComfyUI file and transformers folder, FPN adapter, mask pooling."""

import pytest
import torch
import torch.nn.functional as F
from conftest import annotated, image_tensor
from safetensors.torch import load_file, save_file

from facex_core.errors import ModelFileError
from facex_core.faces.crops import align_faces
from facex_core.ford.clip_vision import ClipVisionEncoder
from facex_core.ford.region_features import FPNAdapter, FPNConfig, default_clip_layers, encode_regions, mask_pool
from facex_core.ford.region_masks import region_masks
from facex_core.ford.regions import REGIONS
from facex_core.testing.checkpoints import write_clip

LAYERS = (1, 2, 2)


@pytest.fixture(scope="module")
def faces():
    image = annotated("portraits/ai_curly_hair_woman_hand_occlusion.png")
    return align_faces(image_tensor(image.name), [image.detections()], 256)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip-vit-large-patch14.safetensors")


def test_full_clip_file_loads_its_vision_tower_and_ignores_the_text_keys(clip_file, faces):
    assert any(key.startswith("text_model.") for key in load_file(str(clip_file)))
    encoder = ClipVisionEncoder.from_path(clip_file)
    assert (encoder.width, encoder.depth, encoder.grid, encoder.image_size) == (64, 3, 16, 224)
    grids = encoder.patch_grids(faces.crops, LAYERS)
    assert [tuple(g.shape) for g in grids] == [(1, 64, 16, 16)] * 3


def test_single_file_and_transformers_folder_give_the_same_grids(tmp_path, clip_file, faces):
    encoder = ClipVisionEncoder.from_path(clip_file)
    folder = tmp_path / "clip-vit-large-patch14"
    encoder.model.save_pretrained(folder)
    from_folder = ClipVisionEncoder.from_path(folder)
    with torch.no_grad():
        grids = zip(encoder.patch_grids(faces.crops, LAYERS), from_folder.patch_grids(faces.crops, LAYERS), strict=True)
        for a, b in grids:
            # the same weights from two file layouts; 1e-6 is float32 rounding for activations of order 1
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_grids_are_hidden_states_without_the_class_token(clip_file, faces):
    encoder = ClipVisionEncoder.from_path(clip_file)
    with torch.no_grad():
        pixels = encoder.preprocess(faces.crops)
        states = encoder.model(pixel_values=pixels, output_hidden_states=True).hidden_states
        grid = encoder.patch_grids(faces.crops, (2,))[0]
    torch.testing.assert_close(grid[0, :, 0, 1], states[2][0, 2], rtol=0, atol=1e-6)  # a reshape of the same tensor


def test_preprocess_is_comfyui_clip_preprocess_for_a_square_crop(clip_file, faces):
    encoder = ClipVisionEncoder.from_path(clip_file)
    x = faces.crops.permute(0, 3, 1, 2)
    resized = F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True).clamp(0, 1)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    # the same resize; normalised values reach about 2, so 1e-5 is float32 rounding
    torch.testing.assert_close(encoder.preprocess(faces.crops), (resized - mean) / std, rtol=0, atol=1e-5)


def test_vision_only_file_and_position_ids_are_accepted(tmp_path, faces):
    path = write_clip(tmp_path / "vision.safetensors", full_model=False)
    state = load_file(str(path))
    state["vision_model.embeddings.position_ids"] = torch.arange(257)[None]
    save_file(state, str(path))
    assert ClipVisionEncoder.from_path(path).patch_grids(faces.crops, (1,))[0].shape == (1, 64, 16, 16)


def test_open_clip_layout_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "open_clip.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(8, 3, 14, 14)}, str(path))
    with pytest.raises(ModelFileError, match="open_clip layout"):
        ClipVisionEncoder.from_path(path)


def test_missing_tensor_is_named(tmp_path):
    path = write_clip(tmp_path / "clip.safetensors", full_model=False)
    state = load_file(str(path))
    del state["vision_model.encoder.layers.1.mlp.fc2.bias"]
    save_file(state, str(path))
    with pytest.raises(ModelFileError, match=r"vision_model\.encoder\.layers\.1\.mlp\.fc2\.bias"):
        ClipVisionEncoder.from_path(path)


def test_default_layers_for_vit_l14_are_8_16_and_the_penultimate():
    assert default_clip_layers(24) == (8, 16, 23)


def test_fpn_adapter_restores_four_times_the_grid_resolution():
    adapter = FPNAdapter(FPNConfig(in_channels=64, width=32, levels=3))
    out = adapter([torch.randn(2, 64, 16, 16) for _ in range(3)])
    assert out.shape == (2, 32, 64, 64)
    with pytest.raises(ValueError, match="takes 3 grids"):
        adapter([torch.randn(2, 64, 16, 16)])


def test_mask_pool_averages_inside_each_region_and_marks_empty_ones():
    features = torch.zeros(1, 2, 4, 4)
    features[0, 0, :, :2] = 3.0
    features[0, 1, :, 2:] = 5.0
    masks = torch.zeros(1, 3, 8, 8)
    masks[0, 0, :, :4] = 1.0
    masks[0, 1, :, 4:] = 1.0
    pooled = mask_pool(features, masks)
    assert pooled.tokens[0, 0].tolist() == [3.0, 0.0]
    assert pooled.tokens[0, 1].tolist() == [0.0, 5.0]
    assert pooled.present[0].tolist() == [True, True, False]
    assert pooled.tokens[0, 2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_an_absent_region_sends_a_zero_gradient_in_every_training_precision(dtype):
    """fp16 features (autocast on a V100) once divided the absent region by a clamp fp16
    rounds to 0: its gradient was NaN, so the loss scaler skipped every step."""
    features = torch.rand(1, 2, 4, 4, dtype=dtype, requires_grad=True)
    masks = torch.zeros(1, 2, 8, 8)
    masks[0, 0, :, :4] = 1.0  # the second region is absent
    mask_pool(features, masks).tokens.sum().backward()
    assert features.grad.isfinite().all()
    expected = torch.zeros(2, 4, 4)
    expected[:, :, :2] = 1 / 8  # the first region's mean over its 8 cells of the 4x4 grid
    torch.testing.assert_close(features.grad[0].float(), expected, rtol=0, atol=0)  # 1/8 is exact in each dtype


def test_encode_regions_gives_one_token_per_region(clip_file, faces):
    encoder = ClipVisionEncoder.from_path(clip_file)
    adapter = FPNAdapter(FPNConfig(in_channels=64, width=32, levels=3))
    labels = torch.zeros(1, 256, 256, dtype=torch.long)
    labels[:, 64:192, 64:192] = 1
    regions = encode_regions(encoder, adapter, faces.crops, region_masks(labels), LAYERS)
    assert regions.tokens.shape == (1, len(REGIONS), 32)
    assert regions.present[0].tolist() == [name in ("skin", "background") for name in REGIONS]


def test_a_downloaded_full_clip_folder_gives_its_vision_tower(tmp_path, faces):
    """openai/clip-vit-large-patch14 as downloaded is the whole CLIPModel (text included)."""
    from transformers import CLIPConfig, CLIPModel

    from facex_core.testing.checkpoints import TINY_CLIP_VISION

    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=TINY_CLIP_VISION, projection_dim=32))
    model.save_pretrained(tmp_path / "clip-vit-large-patch14")
    encoder = ClipVisionEncoder.from_path(tmp_path / "clip-vit-large-patch14")
    with torch.no_grad():
        grid = encoder.patch_grids(faces.crops, (1,))[0]
        reference = model.vision_model(pixel_values=encoder.preprocess(faces.crops),
                                       output_hidden_states=True).hidden_states[1]
    # the same layer through two model classes; float32 rounding of one transformer layer
    torch.testing.assert_close(grid.flatten(2).transpose(1, 2), reference[:, 1:], rtol=0, atol=1e-5)
