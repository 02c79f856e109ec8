"""Deep3DFaceRecon: strict loading of the epoch_20.pth layout and its own 224 alignment."""

import numpy as np
import pytest
import torch
from conftest import annotated, image_tensor
from PIL import Image

from facex_core.errors import ModelFileError
from facex_core.faces.crops import align_faces
from facex_core.ford.motion import (
    COEFFICIENT_LAYOUT,
    TEMPLATE_3D,
    MotionExtractor,
    ReconNet,
    fit_scale_and_centre,
    recon_crop,
    split_coefficients,
)
from facex_core.ford.resnet import ResNet
from facex_core.testing import checkpoints


@pytest.fixture(scope="module")
def deep3d_file(tmp_path_factory):
    return checkpoints.write_deep3d(tmp_path_factory.mktemp("deep3d") / "epoch_20.pth")


@pytest.fixture(scope="module")
def faces():
    image = annotated("portraits/real_obama_official_portrait.jpg")
    return align_faces(image_tensor(image.name), [image.detections()], 256)


def test_torchvision_bottleneck_strides_in_the_3x3_conv():
    net = ResNet("resnet50")
    first = net.layer2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    assert first.downsample[0].stride == (2, 2)
    assert [stage.shape[-1] for stage in net.stages(torch.zeros(1, 3, 224, 224))] == [56, 28, 14, 7]


def test_basic_block_strides_in_its_first_conv():
    first = ResNet("resnet18").layer3[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)


def test_published_layout_loads_strictly_with_optimizer_entries_present(deep3d_file, faces):
    extractor = MotionExtractor.from_file(deep3d_file)
    motion = extractor.extract(faces)
    shapes = {name: tuple(getattr(motion, name).shape) for name, _ in COEFFICIENT_LAYOUT}
    assert shapes == {"identity": (1, 80), "expression": (1, 64), "texture": (1, 80), "angles": (1, 3),
                      "lighting": (1, 27), "translation": (1, 3)}
    assert torch.isfinite(motion.expression).all()


def test_input_is_the_224_crop_in_0_1_without_mean_or_std(deep3d_file, faces):
    """The extractor feeds the network its own crop unnormalised: the coefficients equal
    the network applied by hand to recon_crop's [0, 1] output."""
    extractor = MotionExtractor.from_file(deep3d_file)
    crop = recon_crop(faces.crops[0].permute(2, 0, 1), faces.crop_kps[0].numpy())
    assert crop.shape == (3, 224, 224) and float(crop.min()) >= 0 and float(crop.max()) <= 1
    with torch.no_grad():
        by_hand = split_coefficients(extractor.network(crop[None]))
    # the same network on the same crop, batched by the extractor: float32 rounding
    torch.testing.assert_close(extractor.extract(faces).expression, by_hand["expression"], rtol=0, atol=1e-5)


def test_the_257_values_split_as_published():
    values = torch.arange(257.0)[None]
    parts = split_coefficients(values)
    assert parts["expression"][0, 0] == 80 and parts["texture"][0, 0] == 144
    assert parts["angles"][0].tolist() == [224, 225, 226]
    assert parts["lighting"][0, 0] == 227 and parts["translation"][0].tolist() == [254, 255, 256]
    assert sum(width for _, width in COEFFICIENT_LAYOUT) == 257


def test_pos_fit_recovers_scale_and_centre_of_a_projected_template():
    scale, centre, height = 180.0, np.array([300.0, 210.0]), 512
    projected = TEMPLATE_3D[:, :2] * scale + centre
    kps = projected.copy()
    kps[:, 1] = height - 1 - kps[:, 1]
    found_centre, found_scale = fit_scale_and_centre(kps, height)
    assert found_scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(found_centre, centre, rtol=1e-9, atol=1e-9)  # exact points, float64 least squares


def test_recon_crop_matches_the_reference_recipe_done_with_pil(faces):
    """FACTS.md's recipe written with PIL (resize by 102/s, bicubic, crop 224 at the computed
    corner) gives the same pixels as our torch implementation."""
    image = faces.crops[0]
    kps = faces.crop_kps[0].numpy().astype(np.float64)
    height, width = image.shape[:2]
    centre, scale = fit_scale_and_centre(kps, height)
    factor = 102.0 / scale
    new_w, new_h = int(width * factor), int(height * factor)
    left = int(new_w / 2 - 112 + (centre[0] - width / 2) * factor)
    top = int(new_h / 2 - 112 + (height / 2 - centre[1]) * factor)
    pil = Image.fromarray((image.numpy() * 255).round().astype(np.uint8)).resize((new_w, new_h), Image.BICUBIC)
    reference = np.asarray(pil.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    ours = recon_crop(image.permute(2, 0, 1), kps).permute(1, 2, 0).numpy()
    assert np.abs(ours - reference).mean() < 0.01


def test_missing_head_is_named(tmp_path):
    state = checkpoints.random_state(checkpoints.deep3d_shapes())
    del state["final_layers.3.bias"]
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": state}, path)
    with pytest.raises(ModelFileError, match=r"missing keys: final_layers\.3\.bias"):
        MotionExtractor.from_file(path)


def test_misshapen_key_is_named_with_both_shapes(tmp_path):
    state = checkpoints.random_state(checkpoints.deep3d_shapes())
    state["final_layers.1.weight"] = torch.zeros(65, 2048, 1, 1)
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": state}, path)
    with pytest.raises(ModelFileError,
                       match=r"final_layers\.1\.weight \(65, 2048, 1, 1\) \(expected \(64, 2048, 1, 1\)\)"):
        MotionExtractor.from_file(path)


def test_a_checkpoint_without_net_recon_is_refused(tmp_path):
    path = tmp_path / "epoch_20.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(ModelFileError, match="no 'net_recon' entry"):
        MotionExtractor.from_file(path)


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path, deep3d_file):
    path = tmp_path / "epoch_20.pth"
    path.write_bytes(deep3d_file.read_bytes()[: 1 << 20])
    with pytest.raises(ModelFileError, match="corrupt, truncated"):
        MotionExtractor.from_file(path)


def test_pickled_objects_are_refused(tmp_path):
    """weights_only loading: a file that would run code on unpickling is rejected."""
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": ReconNet().state_dict(), "hook": Image.new("RGB", (1, 1))}, path)
    with pytest.raises(ModelFileError, match="could not be read"):
        MotionExtractor.from_file(path)
