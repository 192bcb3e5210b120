"""Time grids t_max = t_0 > t_1 > … > t_N = t_min shared by every sampler, and the EDM noise level σ̂(t).

The EDM noise level of an affine SDE is the noise-to-signal ratio σ̂(t) = σ(t)/α(t): x_t/α(t) = x_0 + σ̂(t)·ε
(Karras et al., NeurIPS'22, "Elucidating the Design Space of Diffusion-Based Generative Models", §4).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.continuous.sde import SDE
from dlm.errors import ConfigError

SPACINGS = ("uniform", "karras")


def noise_level(sde: SDE, t: Tensor) -> Tensor:
    """EDM noise level σ̂(t) = σ(t)/α(t) (Karras et al., NeurIPS'22)."""
    mean_scale, std = sde.marginal(t)
    return std / mean_scale


def time_of_noise_level(sde: SDE, sigma: Tensor, iterations: int = 80) -> Tensor:
    """Invert the increasing map t ↦ σ̂(t) on [t_min, t_max] by bisection (clamped to the interval)."""
    lo = torch.full_like(sigma, sde.t_min, dtype=torch.float64)
    hi = torch.full_like(sigma, sde.t_max, dtype=torch.float64)
    target = sigma.to(torch.float64)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = noise_level(sde, mid) > target
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    return (0.5 * (lo + hi)).to(sigma.dtype)


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> Tensor:
    """σ_i = (σ_max^{1/ρ} + i/N (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0..N (Karras et al., NeurIPS'22, eq. 5)."""
    ramp = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    inv_rho_max, inv_rho_min = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return (inv_rho_max + ramp * (inv_rho_min - inv_rho_max)) ** rho


def time_grid(sde: SDE, steps: int, spacing: str = "uniform", rho: float = 7.0) -> Tensor:
    """Decreasing float64 grid of steps+1 times from t_max to t_min: uniform in t, or Karras-spaced in σ̂(t)."""
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if spacing == "uniform":
        return torch.linspace(sde.t_max, sde.t_min, steps + 1, dtype=torch.float64)
    if spacing == "karras":
        ends = noise_level(sde, torch.tensor([sde.t_min, sde.t_max], dtype=torch.float64))
        grid = time_of_noise_level(sde, karras_sigmas(ends[0].item(), ends[1].item(), steps, rho))
        grid[0], grid[-1] = sde.t_max, sde.t_min
        return grid
    raise ConfigError(f"unknown time spacing {spacing!r}", hint=f"choose one of {', '.join(SPACINGS)}")
