"""The FID Inception network on a file in the published pt_inception layout (random values).

Inception at 299x299 costs about 6 GFLOPs per image, so the features of the few faces used
are computed once per module.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import image_tensor

from facex_core.errors import ImageInputError, ModelFileError, ModelFileMissingError
from facex_core.eval.inception import FEATURE_DIM, InceptionFeatures
from facex_core.eval.metrics import frechet_distance
from facex_core.eval.tables import INCEPTION_WEIGHTS
from facex_core.testing.inception import fid_inception_shapes, write_fid_inception

# 94 conv layers x (conv.weight + 5 BatchNorm entries) + fc.weight and fc.bias. The file holds
# num_batches_tracked: PyTorch 0.4.0, which predates it, reports those keys as unexpected
# when loading it (pytorch-fid issue #34).
PUBLISHED_KEY_COUNT = 94 * 6 + 2


def _halved(images: torch.Tensor) -> torch.Tensor:
    """[N, H, W, 3] to [N, H/2, W/2, 3] by 2x2 averaging."""
    return F.avg_pool2d(images.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    return write_fid_inception(tmp_path_factory.mktemp("fid") / INCEPTION_WEIGHTS)


@pytest.fixture(scope="module")
def inception(weights_file):
    return InceptionFeatures.from_file(weights_file)


@pytest.fixture(scope="module")
def faces():
    """Two faces at 512x512 and at 256x256."""
    astronaut = image_tensor("portraits/real_astronaut_collins.png")
    biden = _halved(image_tensor("portraits/real_biden_portrait.jpg"))
    large = torch.cat([astronaut, biden])
    return {512: large, 256: _halved(large)}


@pytest.fixture(scope="module")
def single_features(inception, faces):
    """Features of each face on its own, per size."""
    return {size: np.concatenate([inception.features(face[None]) for face in images])
            for size, images in faces.items()}


def test_the_synthesised_file_has_the_published_key_count_and_loads_strictly(weights_file, inception):
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    assert len(state) == len(fid_inception_shapes()) == PUBLISHED_KEY_COUNT
    assert tuple(state["fc.weight"].shape) == (1008, FEATURE_DIM)
    assert "Mixed_5b.branch1x1.bn.num_batches_tracked" in state
    assert not any(key.startswith("AuxLogits") for key in state)
    assert set(inception.network.state_dict()) == set(state)


def test_features_are_2048_float64_finite_for_any_input_size(single_features):
    for features in single_features.values():
        assert features.shape == (2, FEATURE_DIM) and features.dtype == np.float64
        assert np.isfinite(features).all()


def test_features_are_deterministic(inception, faces, single_features):
    np.testing.assert_array_equal(inception.features(faces[256][:1]), single_features[256][:1])


def test_the_same_face_at_two_sizes_gives_close_features(single_features):
    """Both sizes are resized bilinearly to 299, so they differ far less than two faces do."""
    small, large = single_features[256], single_features[512]
    across_sizes = np.linalg.norm(small - large, axis=1)
    across_faces = np.linalg.norm(large[0] - large[1])
    assert across_sizes.max() < 0.5 * across_faces


def test_a_batch_gives_the_features_of_each_image_alone(inception, faces, single_features):
    np.testing.assert_allclose(inception.features(faces[256]), single_features[256], atol=1e-5, rtol=0)


def test_fid_of_identical_feature_sets_is_zero(single_features):
    features = np.concatenate(list(single_features.values()))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_images_that_are_not_nhwc_rgb_are_refused(inception):
    with pytest.raises(ImageInputError, match="N, H, W, 3"):
        inception.features(torch.zeros(1, 3, 64, 64))


def _drop(state: dict, key: str) -> None:
    del state[key]


def _reshape(state: dict, key: str) -> None:
    state[key] = state[key][:-1]


@pytest.mark.parametrize("change, key, problem", [
    (_drop, "Mixed_6e.branch7x7dbl_3.conv.weight", "missing keys"),
    (_reshape, "Mixed_7c.branch_pool.bn.running_var", "wrong shapes"),
    (_reshape, "fc.weight", "wrong shapes"),
])
def test_a_file_with_a_missing_or_misshapen_key_is_refused(tmp_path, weights_file, change, key, problem):
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    change(state, key)
    path = tmp_path / INCEPTION_WEIGHTS
    torch.save(state, path)
    with pytest.raises(ModelFileError) as error:
        InceptionFeatures.from_file(path)
    message = str(error.value)
    assert str(path) in message and problem in message and key in message
    assert f"Download {INCEPTION_WEIGHTS} from the pytorch-fid GitHub release" in message


def test_a_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(ModelFileMissingError, match=f"{INCEPTION_WEIGHTS} from the pytorch-fid GitHub release"):
        InceptionFeatures.from_file(tmp_path / INCEPTION_WEIGHTS)


# The FID graph's pooling inside the blocks, against torchvision's: the pool branch is the
# block's last output channels, so it can be recomputed from the block's own branch_pool conv.
POOLS = {
    "average, padding excluded": lambda x: F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False),
    "average, padding included": lambda x: F.avg_pool2d(x, 3, stride=1, padding=1),
    "max": lambda x: F.max_pool2d(x, 3, stride=1, padding=1),
}


@pytest.mark.parametrize("block, channels, fid_pool, torchvision_pool", [
    ("Mixed_5b", 192, "average, padding excluded", "average, padding included"),  # InceptionA
    ("Mixed_6b", 768, "average, padding excluded", "average, padding included"),  # InceptionC
    ("Mixed_7b", 1280, "average, padding excluded", "average, padding included"),  # first InceptionE
    ("Mixed_7c", 2048, "max", "average, padding included"),  # last InceptionE
])
def test_the_pool_branch_pools_as_the_fid_graph_does(inception, block, channels, fid_pool, torchvision_pool):
    module = getattr(inception.network, block)
    x = torch.rand(1, channels, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pooled = module(x)[:, -module.branch_pool.conv.out_channels:]
        expected = module.branch_pool(POOLS[fid_pool](x))
        other = module.branch_pool(POOLS[torchvision_pool](x))
    torch.testing.assert_close(pooled, expected)
    assert not torch.allclose(pooled, other, atol=1e-4)
