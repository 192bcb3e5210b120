"""Gaussian mixtures pushed through an affine SDE: exact density and score of p_t, for tests and benchmarks.

p_0 = Σ_k w_k N(μ_k, diag(s_k²)) gives p_t = Σ_k w_k N(α(t)μ_k, diag(α(t)² s_k² + σ(t)²)), so log p_t and
∇log p_t are closed-form and an exact score can stand in for a network anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.continuous.sde import SDE, ScoreFn, as_time
from dlm.errors import InputError


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k weights_k N(means_k, diag(stds_k²)) with weights [K], means [K, D], stds [K, D]."""

    weights: Tensor
    means: Tensor
    stds: Tensor

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.stds.shape != (k, d):
            raise InputError(
                f"mixture shapes disagree: weights {tuple(self.weights.shape)}, means {(k, d)}, "
                f"stds {tuple(self.stds.shape)}",
                hint="use weights [K], means [K, D], stds [K, D]",
            )

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, dtype: torch.dtype) -> GaussianMixture:
        """The same mixture in another dtype."""
        return GaussianMixture(self.weights.to(dtype), self.means.to(dtype), self.stds.to(dtype))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws from the mixture -> [n, D]."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k] * noise


def diffused_components(mixture: GaussianMixture, sde: SDE, t: Tensor) -> tuple[Tensor, Tensor]:
    """Means α(t)μ_k and stds √(α(t)²s_k² + σ(t)²) of p_t's components -> ([B, K, D], [B, K, D])."""
    mean_scale, std = sde.marginal(t)
    mean_scale, std = mean_scale.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
    return mean_scale * mixture.means, (mean_scale.square() * mixture.stds.square() + std.square()).sqrt()


def component_log_probs(mixture: GaussianMixture, sde: SDE, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """log w_k + log N(x; α μ_k, α² s_k² + σ²) -> [B, K], with the components' means and stds."""
    means, stds = diffused_components(mixture, sde, t)
    z = (x[:, None, :] - means) / stds
    log_norm = -0.5 * z.square().sum(-1) - stds.log().sum(-1) - 0.5 * mixture.dim * math.log(2 * math.pi)
    return mixture.weights.log() + log_norm, means, stds


def diffused_log_prob(mixture: GaussianMixture, sde: SDE, x: Tensor, t: Tensor | float) -> Tensor:
    """Exact log p_t(x) of the mixture pushed through the SDE -> [B]."""
    t = per_sample_time(as_time(t, x), x)
    logits, _, _ = component_log_probs(mixture, sde, x, t)
    return torch.logsumexp(logits, dim=-1)


def diffused_score(mixture: GaussianMixture, sde: SDE, x: Tensor, t: Tensor | float) -> Tensor:
    """Exact ∇log p_t(x) = Σ_k r_k(x) · (α μ_k − x)/(α² s_k² + σ²), r_k the responsibilities -> [B, D]."""
    t = per_sample_time(as_time(t, x), x)
    logits, means, stds = component_log_probs(mixture, sde, x, t)
    resp = torch.softmax(logits, dim=-1)[..., None]
    return (resp * (means - x[:, None, :]) / stds.square()).sum(1)


def exact_score(mixture: GaussianMixture, sde: SDE) -> ScoreFn:
    """The exact score (x, t) ↦ ∇log p_t(x) as a ScoreFn."""

    def score(x: Tensor, t: Tensor) -> Tensor:
        return diffused_score(mixture, sde, x, t)

    return score


def per_sample_time(t: Tensor, x: Tensor) -> Tensor:
    """Expand a scalar time to [B]; check a vector one has B entries."""
    if t.dim() == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise InputError(f"time has shape {tuple(t.shape)} for a batch of {x.shape[0]}", hint="pass t as a float or [B]")
    return t


def grid_mixture(
    n: int = 5, spacing: float = 2.0, std: float = 0.05, scale: float = 1 / 2.828, dtype: torch.dtype = torch.float64
) -> GaussianMixture:
    """The '25 Gaussians' toy: an n×n grid of equal-weight components, spacing apart, each N(·, std²), all scaled."""
    ticks = (torch.arange(n, dtype=dtype) - (n - 1) / 2) * spacing
    means = torch.cartesian_prod(ticks, ticks) * scale
    return GaussianMixture(
        weights=torch.full((n * n,), 1.0 / (n * n), dtype=dtype),
        means=means,
        stds=torch.full_like(means, std * scale),
    )


__all__ = [
    "GaussianMixture",
    "diffused_components",
    "diffused_log_prob",
    "diffused_score",
    "exact_score",
    "grid_mixture",
]
