"""Inpainting with any score: the 𝔥-sampler with the known pixels replaced by a fresh draw of x_t | x_0 after each
step (the replacement method of Song et al., ICLR'21, Appendix I.2), so the unknown pixels are sampled from an
approximation of p(x_unknown | x_known) and the known ones end at x_0 up to σ(t_min) noise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.continuous.samplers import euler_maruyama_step, gaussian_like, sampler_grid
from dlm.continuous.sde import SDE, ScoreFn, check_h, per_sample
from dlm.errors import InputError


def forward_sample(sde: SDE, x0: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
    """x_t = α(t)·x_0 + σ(t)·z, z ~ N(0, I)."""
    mean_scale, std = (per_sample(c, x0) for c in sde.marginal(t))
    return mean_scale * x0 + std * gaussian_like(x0, generator)


@torch.no_grad()
def inpaint(score: ScoreFn, sde: SDE, known: Tensor, keep: Tensor, h: float, steps: int,
            generator: torch.Generator | None = None) -> Tensor:
    """Samples [B, ...] that keep ``known`` where ``keep`` is true and fill in the rest (Euler–Maruyama 𝔥-sampler)."""
    check_h(h)
    try:
        torch.broadcast_shapes(keep.shape, known.shape)
    except RuntimeError:
        raise InputError(f"mask of shape {tuple(keep.shape)} does not fit images of shape {tuple(known.shape)}") from None
    x = sde.prior_sample(known.shape, generator, dtype=known.dtype, device=known.device)
    grid = sampler_grid(sde, steps, "uniform", x)
    for t, t_next in zip(grid[:-1], grid[1:]):
        z = gaussian_like(x, generator) if h > 0 else torch.zeros_like(x)
        x = euler_maruyama_step(score, sde, x, t, t_next, h, z)
        x = torch.where(keep, forward_sample(sde, known, t_next, generator), x)
    return x
