"""Fréchet distance between two sets of features (Heusel et al., NeurIPS'17, "GANs Trained by a Two Time-Scale
Update Rule ..."): the 2-Wasserstein distance² between Gaussians fitted to each set,

    FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{½} Σ₂ Σ₁^{½})^{½},

with the matrix square roots from symmetric eigendecompositions in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor


def psd_sqrt(matrix: Tensor) -> Tensor:
    """The symmetric square root of a positive semi-definite matrix (negative rounding eigenvalues clipped to 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_from_moments(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{½} Σ₂ Σ₁^{½})^{½}."""
    root1 = psd_sqrt(cov1)
    cross = psd_sqrt(root1 @ cov2 @ root1)
    return float((mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * cross.trace())


def frechet_distance(features1: Tensor, features2: Tensor) -> float:
    """Fréchet distance between Gaussians fitted (mean, unbiased covariance) to features [N₁, F] and [N₂, F]."""
    a, b = features1.double(), features2.double()
    return frechet_from_moments(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
