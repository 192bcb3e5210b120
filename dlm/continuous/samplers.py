"""Samplers for score-based SDE models, all on the time grids of `dlm.continuous.grids`.

- `h_sample`: the 𝔥-interpolated reverse process dx = [f − (1+𝔥)/2·g²·s]dt + √𝔥·g·dw̃ (Hirono, Tanaka &
  Fukushima, ICML'24); 𝔥 = 0 is the probability-flow ODE, 𝔥 = 1 the reverse SDE (Song et al., ICLR'21).
  Euler–Maruyama, or a stochastic Heun step (improved Euler for additive noise; Heun's method at 𝔥 = 0).
- `pc_sample`: reverse-diffusion predictor + Langevin corrector (Song et al., ICLR'21, predictor–corrector sampling).
- `heun_sample`: Heun's 2nd-order method on the EDM ODE in σ̂ = σ/α with optional churn
  (Karras et al., NeurIPS'22, Algorithm 2), on the Karras σ̂ grid by default.

Each takes any `score(x, t)`; network calls per step: Euler 1, Heun 2, PC 1 + corrector_steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlm.continuous.grids import noise_level, time_grid, time_of_noise_level
from dlm.continuous.sde import SDE, ScoreFn, check_h, h_drift
from dlm.errors import ConfigError, InputError

H_METHODS = ("euler", "heun")


def initial_state(
    sde: SDE, shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None, x_T: Tensor | None
) -> Tensor:
    """x_T from the prior (default dtype) unless given; a given x_T must have `shape`."""
    if x_T is None:
        return sde.prior_sample(shape, generator)
    if tuple(x_T.shape) != tuple(shape):
        raise InputError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
    return x_T


def sampler_grid(sde: SDE, steps: int, spacing: str, like: Tensor, rho: float = 7.0) -> Tensor:
    """The decreasing time grid in `like`'s dtype and device."""
    return time_grid(sde, steps, spacing, rho).to(dtype=like.dtype, device=like.device)


def gaussian_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """z ~ N(0, I) with x's shape, dtype and device."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def euler_maruyama_step(score: ScoreFn, sde: SDE, x: Tensor, t: Tensor, t_next: Tensor, h: float, z: Tensor) -> Tensor:
    """x + b_𝔥(x, t)Δt + √𝔥 g(t)√|Δt| z, Δt = t_next − t < 0 (Euler–Maruyama)."""
    dt = t_next - t
    return x + h_drift(score, sde, x, t, h) * dt + math.sqrt(h) * sde.g(t) * dt.abs().sqrt() * z


def stochastic_heun_step(
    score: ScoreFn, sde: SDE, x: Tensor, t: Tensor, t_next: Tensor, h: float, z: Tensor
) -> Tensor:
    """x + ½(b(x, t) + b(x̃, t'))Δt + W, x̃ = x + b(x, t)Δt + W, W = √𝔥·½(g(t) + g(t'))√|Δt| z (improved Euler)."""
    dt = t_next - t
    noise = math.sqrt(h) * 0.5 * (sde.g(t) + sde.g(t_next)) * dt.abs().sqrt() * z
    drift = h_drift(score, sde, x, t, h)
    x_pred = x + drift * dt + noise
    return x + 0.5 * (drift + h_drift(score, sde, x_pred, t_next, h)) * dt + noise


@torch.no_grad()
def h_sample(
    score: ScoreFn,
    sde: SDE,
    shape: tuple[int, ...] | torch.Size,
    h: float,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    method: str = "euler",
    spacing: str = "uniform",
    x_T: Tensor | None = None,
) -> Tensor:
    """Integrate dx = [f − (1+𝔥)/2·g²·s]dt + √𝔥·g·dw̃ from t_max to t_min (Hirono et al., ICML'24); 𝔥=0 PF-ODE, 𝔥=1 reverse SDE."""
    check_h(h)
    if method not in H_METHODS:
        raise ConfigError(f"unknown h_sample method {method!r}", hint=f"choose one of {', '.join(H_METHODS)}")
    step = euler_maruyama_step if method == "euler" else stochastic_heun_step
    x = initial_state(sde, shape, generator, x_T)
    grid = sampler_grid(sde, steps, spacing, x)
    for t, t_next in zip(grid[:-1], grid[1:]):
        z = gaussian_like(x, generator) if h > 0 else torch.zeros_like(x)
        x = step(score, sde, x, t, t_next, h, z)
    return x


def reverse_diffusion_step(
    score: ScoreFn, sde: SDE, x: Tensor, t: Tensor, t_next: Tensor, z: Tensor
) -> tuple[Tensor, Tensor]:
    """(x_mean + G z, x_mean), x_mean = (2 − a)x + G² s(x, t), with x_t = a·x_{t'} + G·ε the exact forward step (Song et al.)."""
    a = sde.marginal(t)[0] / sde.marginal(t_next)[0]
    g2 = sde.marginal(t)[1].square() - a.square() * sde.marginal(t_next)[1].square()
    x_mean = (2.0 - a) * x + g2 * score(x, t.expand(x.shape[0]))
    return x_mean + g2.sqrt() * z, x_mean


def langevin_step(score: ScoreFn, x: Tensor, t: Tensor, snr: float, alpha: Tensor, z: Tensor) -> Tensor:
    """x + ε s + √(2ε) z, ε = 2α(snr·‖z‖/‖s‖)² with batch-mean norms as in score_sde (Song et al., ICLR'21)."""
    grad = score(x, t.expand(x.shape[0]))
    grad_norm = grad.reshape(x.shape[0], -1).norm(dim=-1).mean()
    noise_norm = z.reshape(x.shape[0], -1).norm(dim=-1).mean()
    step = 2.0 * alpha * (snr * noise_norm / grad_norm).square()
    return x + step * grad + (2.0 * step).sqrt() * z


@torch.no_grad()
def pc_sample(
    score: ScoreFn,
    sde: SDE,
    shape: tuple[int, ...] | torch.Size,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    snr: float = 0.16,
    corrector_steps: int = 1,
    spacing: str = "uniform",
    x_T: Tensor | None = None,
) -> Tensor:
    """Langevin corrector, then reverse-diffusion predictor, at each step; returns the last noise-free mean (Song et al.)."""
    x = initial_state(sde, shape, generator, x_T)
    grid = sampler_grid(sde, steps, spacing, x)
    x_mean = x
    for t, t_next in zip(grid[:-1], grid[1:]):
        alpha = (sde.marginal(t)[0] / sde.marginal(t_next)[0]).square()
        for _ in range(corrector_steps):
            x = langevin_step(score, x, t, snr, alpha, gaussian_like(x, generator))
        x, x_mean = reverse_diffusion_step(score, sde, x, t, t_next, gaussian_like(x, generator))
    return x_mean


def edm_slope(score: ScoreFn, sde: SDE, x_hat: Tensor, t: Tensor, sigma: Tensor) -> Tensor:
    """dx̂/dσ̂ = −σ̂·α(t)·s(α(t)x̂, t) for the scaled state x̂ = x/α (Karras et al., NeurIPS'22, with scaling s(t) = α(t))."""
    mean_scale = sde.marginal(t)[0]
    return -sigma * mean_scale * score(mean_scale * x_hat, t.expand(x_hat.shape[0]))


@torch.no_grad()
def heun_sample(
    score: ScoreFn,
    sde: SDE,
    shape: tuple[int, ...] | torch.Size,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    spacing: str = "karras",
    rho: float = 7.0,
    x_T: Tensor | None = None,
) -> Tensor:
    """Heun on dx̂/dσ̂ = −σ̂αs with churn γ = min(S_churn/N, √2 − 1) for σ̂ ∈ [S_tmin, S_tmax] (Karras et al., Alg. 2)."""
    x = initial_state(sde, shape, generator, x_T)
    grid = sampler_grid(sde, steps, spacing, x, rho)
    sigmas = noise_level(sde, grid)
    x_hat = x / sde.marginal(grid[0])[0]
    gamma_max = min(s_churn / steps, math.sqrt(2.0) - 1.0)
    for t, t_next, sigma, sigma_next in zip(grid[:-1], grid[1:], sigmas[:-1], sigmas[1:]):
        gamma = gamma_max if s_tmin <= sigma.item() <= s_tmax else 0.0
        sigma_hat = torch.clamp(sigma * (1.0 + gamma), max=sigmas[0])
        t_hat = t
        if sigma_hat > sigma:
            x_hat = x_hat + (sigma_hat.square() - sigma.square()).sqrt() * s_noise * gaussian_like(x_hat, generator)
            t_hat = time_of_noise_level(sde, sigma_hat)
        d = edm_slope(score, sde, x_hat, t_hat, sigma_hat)
        x_euler = x_hat + (sigma_next - sigma_hat) * d
        d_next = edm_slope(score, sde, x_euler, t_next, sigma_next)
        x_hat = x_hat + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
    return sde.marginal(grid[-1])[0] * x_hat


__all__ = ["h_sample", "pc_sample", "heun_sample"]
