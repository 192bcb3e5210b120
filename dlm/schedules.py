"""Noise schedules σ̄(t) of discrete diffusion: a token is still clean at time t with probability exp(−σ̄(t)).

Each schedule gives the total noise ``total(t)`` = σ̄(t) and its rate ``rate(t)`` = dσ̄/dt, for t in [0, 1]
(a float or a tensor of any shape). Names follow SEDD (``noise_lib.py``) and MDLM (``noise_schedule.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from dlm.errors import ConfigError

Time = float | torch.Tensor


def _as_tensor(t: Time) -> torch.Tensor:
    """t as a floating tensor (float64 for Python floats, so scalar maths stays exact)."""
    if isinstance(t, torch.Tensor):
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    return torch.tensor(float(t), dtype=torch.float64)


@dataclass(frozen=True)
class Schedule:
    """Base class: subclasses implement ``total`` and ``rate``; the rest derives from them."""

    name = "base"

    def total(self, t: Time) -> torch.Tensor:
        raise NotImplementedError

    def rate(self, t: Time) -> torch.Tensor:
        raise NotImplementedError

    def alpha(self, t: Time) -> torch.Tensor:
        """α(t) = exp(−σ̄(t)): the probability that a token is still clean."""
        return torch.exp(-self.total(t))

    def time_at_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        """The t with α(t) = alpha, found by bisection on the decreasing α (schedules override with closed forms)."""
        alpha = _as_tensor(alpha)
        lo, hi = torch.zeros_like(alpha), torch.ones_like(alpha)
        for _ in range(60):
            mid = (lo + hi) / 2
            above = self.alpha(mid) > alpha
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        return (lo + hi) / 2

    def to_dict(self) -> dict:
        """Name and parameters, enough for :func:`get_schedule` to rebuild the schedule."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class LogLinearSchedule(Schedule):
    """σ̄(t) = −log(1 − (1−ε)t), so the mask probability 1−α(t) = (1−ε)t is linear in t (SEDD, MDLM)."""

    eps: float = 1e-3
    name = "loglinear"

    def total(self, t: Time) -> torch.Tensor:
        return -torch.log1p(-(1 - self.eps) * _as_tensor(t))

    def rate(self, t: Time) -> torch.Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * _as_tensor(t))

    def time_at_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        return (1 - _as_tensor(alpha)) / (1 - self.eps)


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """σ̄(t) = σ_min + t(σ_max − σ_min) (MDLM's LinearNoise)."""

    sigma_min: float = 0.0
    sigma_max: float = 10.0
    name = "linear"

    def total(self, t: Time) -> torch.Tensor:
        return self.sigma_min + _as_tensor(t) * (self.sigma_max - self.sigma_min)

    def rate(self, t: Time) -> torch.Tensor:
        return torch.full_like(_as_tensor(t), self.sigma_max - self.sigma_min)

    def time_at_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        return (-torch.log(_as_tensor(alpha)) - self.sigma_min) / (self.sigma_max - self.sigma_min)


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """α(t) = ε + (1−ε)cos(πt/2), σ̄(t) = −log α(t) (MDLM's CosineNoise)."""

    eps: float = 1e-3
    name = "cosine"

    def total(self, t: Time) -> torch.Tensor:
        return -torch.log(self.eps + (1 - self.eps) * torch.cos(math.pi / 2 * _as_tensor(t)))

    def rate(self, t: Time) -> torch.Tensor:
        t = _as_tensor(t)
        cos = self.eps + (1 - self.eps) * torch.cos(math.pi / 2 * t)
        return (1 - self.eps) * (math.pi / 2) * torch.sin(math.pi / 2 * t) / cos

    def time_at_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        cos = ((_as_tensor(alpha) - self.eps) / (1 - self.eps)).clamp(-1.0, 1.0)
        return torch.arccos(cos) * (2 / math.pi)


@dataclass(frozen=True)
class GeometricSchedule(Schedule):
    """σ̄(t) = σ_min^{1−t} σ_max^t, dσ̄/dt = σ̄(t) log(σ_max/σ_min) (SEDD's GeometricNoise)."""

    sigma_min: float = 1e-3
    sigma_max: float = 1.0
    name = "geometric"

    def total(self, t: Time) -> torch.Tensor:
        t = _as_tensor(t)
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def rate(self, t: Time) -> torch.Tensor:
        return self.total(t) * math.log(self.sigma_max / self.sigma_min)

    def time_at_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        sigma = -torch.log(_as_tensor(alpha))
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (LogLinearSchedule, LinearSchedule, CosineSchedule, GeometricSchedule)
}


def get_schedule(name: str | Schedule, **kwargs) -> Schedule:
    """A schedule by name ("loglinear", "linear", "cosine", "geometric") and its parameters."""
    if isinstance(name, Schedule):
        return name
    if name not in SCHEDULES:
        raise ConfigError(f"unknown noise schedule {name!r}", hint=f"choose one of {', '.join(SCHEDULES)}")
    try:
        return SCHEDULES[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for schedule {name!r}: {exc}") from None
