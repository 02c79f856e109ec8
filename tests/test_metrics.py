"""The evaluation metrics against values computed by hand or by an independent library."""

import math

import numpy as np
import pytest
import torch
from conftest import image_tensor
from skimage.metrics import structural_similarity

from facex_core.eval.metrics import frechet_distance, identity_similarity, l2_error, psnr, rmse, ssim


def test_cosine_of_known_vectors():
    generated = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    source = torch.tensor([[3.0, 0.0]])
    assert identity_similarity(generated, source).tolist() == pytest.approx([1.0, math.sqrt(0.5), -1.0])


def test_l2_error_of_known_vectors():
    assert l2_error(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0]])).tolist() == [5.0, 0.0]


def test_psnr_and_rmse_of_a_constant_offset():
    reference = torch.full((1, 8, 8, 3), 0.5)
    generated = reference + 0.1
    assert rmse(generated, reference).item() == pytest.approx(0.1, abs=1e-6)
    assert psnr(generated, reference).item() == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    assert math.isinf(psnr(reference, reference).item())


def test_ssim_is_one_for_identical_images_and_matches_scikit_image():
    face = image_tensor("portraits/real_astronaut_collins.png")[:, 100:228, 150:278]
    assert ssim(face, face).item() == pytest.approx(1.0, abs=1e-5)
    noisy = (face + 0.05 * torch.randn(face.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    reference = structural_similarity(face[0].numpy(), noisy[0].numpy(), channel_axis=2, data_range=1.0,
                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(noisy, face).item() == pytest.approx(reference, abs=2e-3)


def test_fid_of_identical_sets_is_zero_and_of_a_shifted_set_is_the_squared_shift():
    features = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = features + np.array([2.0] + [0.0] * 7)
    assert frechet_distance(features, shifted) == pytest.approx(4.0, abs=1e-6)


def test_fid_of_two_known_gaussians():
    """Diagonal covariances: FID = |mu_a - mu_b|^2 + sum (s_a + s_b - 2 sqrt(s_a s_b)) over dimensions."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200000, 2)) * np.sqrt([1.0, 4.0])
    b = rng.normal(size=(200000, 2)) * np.sqrt([4.0, 4.0]) + [1.0, 0.0]
    expected = 1.0 + (1 + 4 - 2 * 2) + (4 + 4 - 2 * 4)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.05)
    with pytest.raises(ValueError, match="at least two"):
        frechet_distance(a[:1], b[:1])
