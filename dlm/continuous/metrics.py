"""Sample-quality distances for low-dimensional samples: sliced Wasserstein-2 and the RBF-kernel MMD²."""

from __future__ import annotations

import torch
from torch import Tensor


def sliced_wasserstein(x: Tensor, y: Tensor, projections: int = 256, generator: torch.Generator | None = None) -> float:
    """SW₂(x, y) = (E_θ W₂²(θᵀx, θᵀy))^{1/2} over random unit θ (Rabin et al., 2011); y's quantiles at x's levels."""
    theta = torch.randn(x.shape[1], projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = (theta.T @ x.to(torch.float64).T).sort(dim=-1).values  # [P, N], one projection per row
    py = (theta.T @ y.to(torch.float64).T).sort(dim=-1).values
    if py.shape[1] != px.shape[1]:
        position = (torch.arange(px.shape[1], dtype=torch.float64) + 0.5) / px.shape[1] * py.shape[1] - 0.5
        lo = position.floor().clamp(0, py.shape[1] - 1).long()
        hi = (lo + 1).clamp(max=py.shape[1] - 1)
        frac = (position - lo).clamp(0, 1)
        py = py[:, lo] * (1 - frac) + py[:, hi] * frac
    return (px - py).square().mean().sqrt().item()


def mmd2(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] = (0.05, 0.2, 1.0)) -> float:
    """Unbiased MMD² with a sum of RBF kernels exp(−‖a − b‖²/(2ℓ²)) (Gretton et al., JMLR'12)."""
    x, y = x.to(torch.float64), y.to(torch.float64)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        sq = torch.cdist(a, b).square()
        return sum(torch.exp(-sq / (2 * ell**2)) for ell in bandwidths)

    n, m = x.shape[0], y.shape[0]
    kxx, kyy = kernel(x, x), kernel(y, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return (within_x + within_y - 2 * kernel(x, y).mean()).item()
