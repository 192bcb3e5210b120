"""Denoising score matching with score- or ε-parameterised networks and variance or likelihood weighting.

ℒ(θ) = E_{t, x_0, ε} ½ λ(t) ‖s_θ(x_t, t) − ∇log p_{t|0}(x_t | x_0)‖², x_t = α(t)x_0 + σ(t)ε,
∇log p_{t|0} = −ε/σ(t) (Vincent, 2011; Song et al., ICLR'21). λ = σ² is the usual "variance" weighting
(for the ε-parameterisation it is DDPM's ½‖ε̂ − ε‖²); λ = g² is the "likelihood" weighting, for which
(t_max − t_min)·E_t[ℒ] bounds the KL divergence up to constants (Song et al., NeurIPS'21), and which
Hirono, Tanaka & Fukushima (ICML'24) derive from the path integral.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from dlm.continuous.sde import SDE, ScoreFn, per_sample
from dlm.errors import ConfigError

Network = Callable[[Tensor, Tensor], Tensor]
PARAMETERIZATIONS = ("score", "eps")
WEIGHTINGS = ("variance", "likelihood")


def score_fn(net: Network, sde: SDE, parameterization: str = "score") -> ScoreFn:
    """s(x, t) = net(x, t) ("score") or −net(x, t)/σ(t) ("eps", the network predicts the noise)."""
    if parameterization == "score":
        return net
    if parameterization == "eps":

        def score(x: Tensor, t: Tensor) -> Tensor:
            return -net(x, t) / per_sample(sde.marginal(t)[1], x)

        return score
    raise ConfigError(f"unknown parameterization {parameterization!r}", hint=f"choose one of {', '.join(PARAMETERIZATIONS)}")


def loss_weight(sde: SDE, t: Tensor, weighting: str) -> Tensor:
    """λ(t) = σ(t)² ("variance") or g(t)² ("likelihood")."""
    if weighting == "variance":
        return sde.marginal(t)[1].square()
    if weighting == "likelihood":
        return sde.g(t).square()
    raise ConfigError(f"unknown weighting {weighting!r}", hint=f"choose one of {', '.join(WEIGHTINGS)}")


def dsm_loss(
    net: Network,
    sde: SDE,
    x0: Tensor,
    weighting: str = "variance",
    parameterization: str = "score",
    t: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample ½λ(t)‖s_θ(x_t, t) + ε/σ(t)‖² with t ~ U(t_min, t_max) unless given -> [B] (Vincent, 2011)."""
    batch = x0.shape[0]
    if t is None:
        u = torch.rand(batch, generator=generator, dtype=x0.dtype, device=x0.device)
        t = sde.t_min + (sde.t_max - sde.t_min) * u
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    mean_scale, std = (per_sample(c, x0) for c in sde.marginal(t))
    x_t = mean_scale * x0 + std * eps
    residual = score_fn(net, sde, parameterization)(x_t, t) + eps / std
    return 0.5 * loss_weight(sde, t, weighting) * residual.square().reshape(batch, -1).sum(-1)
