"""The paper's metrics, on tensors the extractors already produce.

- identity similarity: cosine of ArcFace embeddings, generated vs source (higher is better);
- expression, pose and gaze error: L2 distance between the extractor outputs of generated
  and target faces (3DMM expression coefficients; head angles in radians; gaze yaw/pitch in
  radians), averaged over faces;
- FID: the Frechet distance between Gaussians fitted to two feature sets;
- reconstruction: SSIM (Gaussian window 11, sigma 1.5, per channel, averaged), PSNR in dB
  and RMSE, on images in 0..1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from kornia.metrics import ssim as kornia_ssim
from scipy import linalg


def identity_similarity(generated: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Per-face cosine similarity of [N, D] embeddings (one source may serve all faces)."""
    return F.cosine_similarity(generated, source.expand_as(generated), dim=-1)


def l2_error(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-face Euclidean distance of [N, D] vectors."""
    return (generated - target.expand_as(generated)).norm(dim=-1)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two [N, D] feature sets: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2)."""
    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError("FID needs at least two feature vectors per set")
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    shift = ((mean_a - mean_b) ** 2).sum()
    distance = shift + np.trace(cov_a) + np.trace(cov_b) - 2 * _trace_sqrt_product(cov_a, cov_b)
    return float(max(distance, 0.0))


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr((S_a S_b)^1/2) = sum of the square roots of the eigenvalues of S_a^1/2 S_b S_a^1/2,
    a symmetric matrix: two symmetric eigendecompositions, far faster than a general matrix
    square root at D = 2048, and exact for covariances that are singular (N <= D)."""
    values, vectors = linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    inner = linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(np.sqrt(inner.clip(min=0)).sum())


def _chw(images: torch.Tensor) -> torch.Tensor:
    """[N, H, W, 3] in 0..1 to [N, 3, H, W] float."""
    return images.permute(0, 3, 1, 2).float()


def ssim(generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of [N, H, W, 3] images in 0..1."""
    scores = kornia_ssim(_chw(generated), _chw(reference), window_size=11, max_val=1.0, padding="valid")
    return scores.flatten(1).mean(1)


def psnr(generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in 0..1 (inf for identical images)."""
    mse = ((generated.float() - reference.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def rmse(generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image root mean squared error of images in 0..1."""
    return ((generated.float() - reference.float()) ** 2).flatten(1).mean(1).sqrt()
