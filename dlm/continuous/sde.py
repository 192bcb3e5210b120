"""Forward SDEs dx = f(x, t) dt + g(t) dw with linear drift f = c(t)·x and closed-form marginals.

Every SDE here is affine: x_t | x_0 ~ N(α(t) x_0, σ(t)² I), which is what the losses, samplers, exact
mixture scores and closed-form tests rely on (Song et al., ICLR'21, "Score-Based Generative Modeling
through SDEs", Appendix B; Hirono, Tanaka & Fukushima, ICML'24, §5 for SIMPLE and COSINE).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import Tensor

from dlm.errors import ConfigError, InputError

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""score(x: Tensor[B, ...], t: Tensor[B]) -> Tensor[B, ...], an estimate of ∇ log p_t(x)."""


def as_time(t: Tensor | float, like: Tensor | None = None) -> Tensor:
    """Time as a tensor: a tensor is kept (moved to `like`'s dtype/device if given), a float uses `like` or the default dtype."""
    if like is not None:
        return torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if isinstance(t, Tensor):
        return t
    return torch.as_tensor(t, dtype=torch.get_default_dtype())


def per_sample(coef: Tensor, x: Tensor) -> Tensor:
    """Broadcast a scalar or [B] coefficient against x of shape [B, ...]."""
    return coef.reshape(coef.shape + (1,) * (x.dim() - coef.dim())) if coef.dim() else coef


class SDE(ABC):
    """An affine SDE dx = c(t) x dt + g(t) dw on [t_min, t_max] with prior N(0, prior_std² I)."""

    t_min: float
    t_max: float
    prior_std: float = 1.0

    @abstractmethod
    def drift_coef(self, t: Tensor | float) -> Tensor:
        """c(t) in f(x, t) = c(t)·x."""

    @abstractmethod
    def g(self, t: Tensor | float) -> Tensor:
        """Diffusion coefficient g(t)."""

    @abstractmethod
    def marginal(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """(α(t), σ(t)) with x_t | x_0 ~ N(α(t) x_0, σ(t)² I)."""

    def f(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Drift f(x, t) = c(t)·x."""
        return per_sample(self.drift_coef(as_time(t, x)), x) * x

    def prior_sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """x_T ~ N(0, prior_std² I)."""
        return self.prior_std * torch.randn(shape, generator=generator, dtype=dtype, device=device)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """log N(x; 0, prior_std² I), summed over all but the batch dimension -> [B]."""
        d = x[0].numel()
        sq = x.reshape(x.shape[0], -1).square().sum(-1)
        return -0.5 * sq / self.prior_std**2 - d * (math.log(self.prior_std) + 0.5 * math.log(2 * math.pi))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class VPFamilySDE(SDE):
    """VP-type SDE f = −½β(t)x, g = √β(t), with α = exp(−½B(t)), σ² = 1 − exp(−B(t)), B = ∫₀ᵗβ."""

    @abstractmethod
    def beta(self, t: Tensor) -> Tensor:
        """β(t)."""

    @abstractmethod
    def beta_integral(self, t: Tensor) -> Tensor:
        """B(t) = ∫₀ᵗ β(s) ds."""

    def drift_coef(self, t: Tensor | float) -> Tensor:
        return -0.5 * self.beta(as_time(t))

    def g(self, t: Tensor | float) -> Tensor:
        return self.beta(as_time(t)).sqrt()

    def marginal(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        b = self.beta_integral(as_time(t))
        return torch.exp(-0.5 * b), (-torch.expm1(-b)).sqrt()


class VPSDE(VPFamilySDE):
    """Variance-preserving SDE, β(t) = β_min + t(β_max − β_min) (Song et al., ICLR'21)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-5, t_max: float = 1.0):
        check_interval(t_min, t_max)
        self.beta_min, self.beta_max, self.t_min, self.t_max = beta_min, beta_max, t_min, t_max

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def beta_integral(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2


class SimpleSDE(VPSDE):
    """The paper's SIMPLE SDE f = −10t·x, g = √(20t), i.e. a VP SDE with β(t) = 20t (Hirono et al., ICML'24)."""

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0):
        super().__init__(beta_min=0.0, beta_max=20.0, t_min=t_min, t_max=t_max)


class CosineSDE(VPFamilySDE):
    """The paper's COSINE SDE f = −(π/2)tan(πt/2)·x, g = √(π tan(πt/2)): α = cos(πt/2), σ = sin(πt/2)."""

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0 - 1e-3):
        check_interval(t_min, t_max)
        if t_max >= 1.0:
            raise ConfigError(f"CosineSDE needs t_max < 1, got {t_max}", hint="β(t) = π tan(πt/2) blows up at t = 1")
        self.t_min, self.t_max = t_min, t_max

    def beta(self, t: Tensor) -> Tensor:
        return math.pi * torch.tan(0.5 * math.pi * t)

    def beta_integral(self, t: Tensor) -> Tensor:
        return -2.0 * torch.log(torch.cos(0.5 * math.pi * t))

    def marginal(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        t = as_time(t)
        return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


class SubVPSDE(VPSDE):
    """sub-VP SDE f = −½βx, g² = β(1 − e^{−2B}): α = e^{−B/2}, σ = 1 − e^{−B} (Song et al., ICLR'21)."""

    def g(self, t: Tensor | float) -> Tensor:
        t = as_time(t)
        return (self.beta(t) * -torch.expm1(-2.0 * self.beta_integral(t))).sqrt()

    def marginal(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        b = self.beta_integral(as_time(t))
        return torch.exp(-0.5 * b), -torch.expm1(-b)


class VESDE(SDE):
    """Variance-exploding SDE f = 0, g = σ(t)√(2 log(σ_max/σ_min)), σ(t) = σ_min(σ_max/σ_min)^t (Song et al., ICLR'21).

    The marginal is the exact transition from t = 0: std² = σ(t)² − σ_min² (score_sde uses σ(t), i.e. it
    treats the data as already smoothed by σ_min). The prior is N(0, σ_max²).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, t_min: float = 1e-5, t_max: float = 1.0):
        check_interval(t_min, t_max)
        if not 0 < sigma_min < sigma_max:
            raise ConfigError(f"VESDE needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max, self.t_min, self.t_max = sigma_min, sigma_max, t_min, t_max
        self.prior_std = sigma_max

    def sigma(self, t: Tensor) -> Tensor:
        """σ(t) = σ_min (σ_max/σ_min)^t."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift_coef(self, t: Tensor | float) -> Tensor:
        return torch.zeros_like(as_time(t))

    def g(self, t: Tensor | float) -> Tensor:
        return self.sigma(as_time(t)) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def marginal(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        s = self.sigma(as_time(t))
        return torch.ones_like(s), (s.square() - self.sigma_min**2).sqrt()


def check_interval(t_min: float, t_max: float) -> None:
    """Raise ConfigError unless 0 ≤ t_min < t_max."""
    if not 0.0 <= t_min < t_max:
        raise ConfigError(f"need 0 <= t_min < t_max, got t_min={t_min}, t_max={t_max}")


SDES: dict[str, type[SDE]] = {
    "vp": VPSDE,
    "subvp": SubVPSDE,
    "ve": VESDE,
    "simple": SimpleSDE,
    "cosine": CosineSDE,
}


def get_sde(name: str, **kwargs: float) -> SDE:
    """Build an SDE by name: vp, subvp, ve, simple, cosine."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in SDES:
        raise ConfigError(f"unknown SDE {name!r}", hint=f"choose one of {', '.join(SDES)}")
    return SDES[key](**kwargs)


def h_drift(score: ScoreFn, sde: SDE, x: Tensor, t: Tensor, h: float) -> Tensor:
    """Drift of the 𝔥-interpolated reverse process f − (1+𝔥)/2·g²·s (Hirono et al., ICML'24); 𝔥=0 is the PF-ODE."""
    g2 = per_sample(sde.g(t).square(), x)
    return sde.f(x, t) - 0.5 * (1.0 + h) * g2 * score(x, t.expand(x.shape[0]))


def check_h(h: float) -> None:
    """𝔥 is a diffusion strength: it must be a finite number ≥ 0."""
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h < 0:
        raise InputError(f"h must be a finite number >= 0, got {h!r}", hint="h=0 is the PF-ODE, h=1 the reverse SDE")
