r"""PF-ODE log-likelihood and its first-order WKB correction in 𝔥 (Hirono, Tanaka & Fukushima, ICML'24).

Model. For a score s and an affine SDE, the 𝔥-sampler dx = [f − (1+𝔥)/2·g²·s]dt + √𝔥·g·dw̃ started from the prior
π at t_max has marginals q_t^𝔥. Its Fokker–Planck equation is a continuity equation with velocity
F^𝔥 = f̃ + 𝔥·δF, f̃ = f − ½g²s (the PF-ODE drift), δF = ½g²(∇log q_t − s) + O(𝔥), so along the characteristic
ẋ = F^𝔥 from x at t_min:  log q^𝔥_{t_min}(x) = log π(x_{t_max}) + ∫ ∇·F^𝔥(x_t, t) dt.

log_prob. 𝔥 = 0 is the usual PF-ODE likelihood (Song et al., ICLR'21; Chen et al., NeurIPS'18):
one adaptive `torchdiffeq` solve of (x, ∫∇·f̃) from t_min to t_max, with the exact divergence (D backward
passes) or Hutchinson's estimator (one pass, a fixed Rademacher probe per solve).

correction. Differentiating in 𝔥 at 0 (DESIGN.md, the paper's first-order WKB term):

    correction = δx_T·∇log π(x_T) + ∫ [δx·∇(∇·f̃) − ½g²(∇·s − Δlog q_t)] dt,
    δẋ = (∇f̃)δx − ½g²(s − ∇log q_t),  δx(t_min) = 0,

with a_t = ∇log q_t(x_t) and L_t = Δlog q_t(x_t) of the PF-ODE marginal, carried along the flow by their transport
equations instead of the paper's finite differences of nested ODE solves. For ẋ = F = f̃ and ℓ = log q_t:

    ȧ = −(∇F)ᵀa − ∇(∇·F),    Ḣ = −(∇F)ᵀH − H(∇F) − Σ_i a_i ∇∇F_i − ∇∇(∇·F),    L = tr H,

with H = ∇∇ℓ. Their boundary data sit at t_max (a_T = ∇log π, H_T = ∇∇log π) while δx's sits at t_min.
The identity d(δx·a)/dt = δF·a − δx·∇(∇·F) turns the boundary term plus the δx integral into ∫δF·a dt, so

    correction = ∫_{t_min}^{t_max} ½g² [ (a − s)·a + Δlog q_t − ∇·s ] dt  =  ∫ ∇·(q_t δF)/q_t dt,

which needs no δx: one augmented solve of (x, a, H, ∫) backwards from the PF-ODE endpoint x_T gives it exactly
(up to the solver tolerance). Cost: O(D) extra backward passes (third-order for ∇∇(∇·s)) and a D×D state per
sample, so the exact correction is for low-dimensional data. With Hutchinson divergences (exact_divergence=False)
the correction is instead the Monte-Carlo path estimator of :mod:`dlm.continuous.wkb_paths`: O(1) network passes
per step whatever D, unbiased up to its time grid, at the price of Monte-Carlo noise (`paths` averages it down).

Sign convention. log q^𝔥_{t_min}(x) ≈ log_prob + 𝔥·correction, so `correction` is a log-likelihood coefficient; the
paper's table reports the NLL expansion NLL^𝔥 ≈ NLL^0 + 𝔥·(1st-corr), i.e. 1st-corr = −mean(correction).
A negative 1st-corr (positive correction) means stochastic sampling (𝔥 > 0) assigns the data more likelihood.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torchdiffeq import odeint

from dlm.continuous.sde import SDE, ScoreFn, check_h, h_drift
from dlm.continuous.wkb_paths import check_path_budget, rademacher, wkb_correction_paths
from dlm.errors import ConfigError, InputError

State = tuple[Tensor, ...]
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


class LikelihoodOutput(NamedTuple):
    """Per-sample nats [B]: log q^0(x), d/d𝔥 log q^𝔥(x) at 𝔥=0 (None when not computed), log_prob + 𝔥·correction."""

    log_prob: Tensor
    correction: Tensor | None
    log_prob_h: Tensor


def jacobian(out: Tensor, x: Tensor, create_graph: bool = False) -> Tensor:
    """Per-sample Jacobian J[b, i, j] = ∂out_i/∂x_j of out [B, D] w.r.t. x [B, D] (D backward passes)."""
    if not out.requires_grad:
        return out.new_zeros(out.shape + x.shape[1:])
    rows = [
        torch.autograd.grad(out[:, i].sum(), x, create_graph=create_graph, retain_graph=True, materialize_grads=True)[0]
        for i in range(out.shape[1])
    ]
    return torch.stack(rows, dim=1)


def gradient(out: Tensor, x: Tensor, create_graph: bool = False) -> Tensor:
    """Per-sample ∇_x out for out [B] (zeros when out does not depend on x)."""
    if not out.requires_grad:
        return torch.zeros_like(x)
    return torch.autograd.grad(out.sum(), x, create_graph=create_graph, retain_graph=True, materialize_grads=True)[0]


def divergence(out: Tensor, x: Tensor) -> Tensor:
    """Exact per-sample ∇·out = Σ_i ∂out_i/∂x_i for out, x [B, D] (D backward passes, no D×D storage)."""
    if not out.requires_grad:
        return out.new_zeros(out.shape[0])
    return sum(
        torch.autograd.grad(out[:, i].sum(), x, retain_graph=True, materialize_grads=True)[0][:, i]
        for i in range(out.shape[1])
    )


def hutchinson_divergence(out: Tensor, x: Tensor, probe: Tensor) -> Tensor:
    """Unbiased ∇·out ≈ εᵀ(∂out/∂x)ε for a Rademacher ε (Hutchinson, 1989; FFJORD, Grathwohl et al., ICLR'19)."""
    return (gradient((out * probe).sum(-1), x) * probe).sum(-1)


def flat_score(score: ScoreFn, shape: torch.Size) -> ScoreFn:
    """The score on flattened states [B', D] for data of shape [B, ...] (any batch B', e.g. repeated paths)."""

    def flat(x: Tensor, t: Tensor) -> Tensor:
        return score(x.reshape(-1, *shape[1:]), t).reshape(x.shape)

    return flat


def pf_ode_dynamics(score: ScoreFn, sde: SDE, probe: Tensor | None) -> Callable[[Tensor, State], State]:
    """d/dt (x, ℓ) = (f̃(x, t), ∇·f̃(x, t)), f̃ = f − ½g²s; exact divergence unless a Hutchinson probe is given."""

    def dynamics(t: Tensor, state: State) -> State:
        with torch.enable_grad():
            x = state[0].detach().requires_grad_(True)
            drift = h_drift(score, sde, x, t, 0.0)
            if probe is None:
                div = divergence(drift, x)
            else:
                div = hutchinson_divergence(drift, x, probe)
        return drift.detach(), div.detach()

    return dynamics


def wkb_dynamics(score: ScoreFn, sde: SDE) -> Callable[[Tensor, State], State]:
    """d/dt (x, a, H, C) along the PF-ODE: transport of a = ∇log q_t, H = ∇∇log q_t and Ċ = ½g²[(a − s)·a + tr H − ∇·s]."""

    def dynamics(t: Tensor, state: State) -> State:
        x, a, hess, _ = state
        c, half_g2 = sde.drift_coef(t), 0.5 * sde.g(t).square()
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            s = score(x, t.expand(x.shape[0]))
            jac = jacobian(s, x, create_graph=True)  # J_s[b, i, j] = ∂s_i/∂x_j
            div_s = torch.diagonal(jac, dim1=1, dim2=2).sum(-1)
            grad_div = gradient(div_s, x, create_graph=True)
            jac_t_a = torch.einsum("bij,bi->bj", jac, a)  # J_sᵀ a = ∇(a·s) at fixed a
            hess_div = jacobian(grad_div, x)  # ∇∇(∇·s)
            hess_a_s = jacobian(jac_t_a, x)  # Σ_i a_i ∇∇s_i
        s, jac, div_s, grad_div, jac_t_a = (v.detach() for v in (s, jac, div_s, grad_div, jac_t_a))
        jac_t_h = torch.einsum("bij,bik->bjk", jac, hess)  # J_sᵀ H
        dx = c * x.detach() - half_g2 * s
        da = -c * a + half_g2 * (jac_t_a + grad_div)
        dhess = -2.0 * c * hess + half_g2 * (jac_t_h + jac_t_h.transpose(1, 2) + hess_a_s + hess_div)
        trace_h = torch.diagonal(hess, dim1=1, dim2=2).sum(-1)
        dcorr = half_g2 * (((a - s) * a).sum(-1) + trace_h - div_s)
        return dx, da, dhess, dcorr

    return dynamics


def solve(
    dynamics: Callable[[Tensor, State], State], state: State, t0: float, t1: float, rtol: float, atol: float, method: str
) -> State:
    """The state at t1 by an adaptive `torchdiffeq` solve that never evaluates outside [t0, t1] (first step |t1 − t0|/1000)."""
    if method not in ADAPTIVE_METHODS:
        raise ConfigError(f"unknown adaptive ODE method {method!r}", hint=f"choose one of {', '.join(ADAPTIVE_METHODS)}")
    like = state[0]
    times = torch.tensor([t0, t1], dtype=like.dtype, device=like.device)
    options = {"step_t": times[1:], "first_step": abs(t1 - t0) * 1e-3}
    solution = odeint(dynamics, state, times, rtol=rtol, atol=atol, method=method, options=options)
    return tuple(v[-1] for v in solution)


def pf_ode_log_prob(
    score: ScoreFn,
    sde: SDE,
    x: Tensor,
    rtol: float,
    atol: float,
    probe: Tensor | None = None,
    method: str = "dopri5",
) -> tuple[Tensor, Tensor]:
    """(x_T, log q^0(x)) with log q^0(x) = log π(x_T) + ∫_{t_min}^{t_max} ∇·f̃ dt for flat x [B, D] (Song et al., ICLR'21)."""
    state = (x, x.new_zeros(x.shape[0]))
    x_T, div = solve(pf_ode_dynamics(score, sde, probe), state, sde.t_min, sde.t_max, rtol, atol, method)
    return x_T, sde.prior_log_prob(x_T) + div


def wkb_correction(
    score: ScoreFn, sde: SDE, x_T: Tensor, rtol: float, atol: float, method: str = "dopri5"
) -> Tensor:
    """d/d𝔥 log q^𝔥(x) at 𝔥=0 = ∫ ½g²[(a − s)·a + Δlog q_t − ∇·s] dt, solved backwards from the PF-ODE endpoint x_T [B, D]."""
    batch, dim = x_T.shape
    inv_var = 1.0 / sde.prior_std**2
    eye = torch.eye(dim, dtype=x_T.dtype, device=x_T.device).expand(batch, dim, dim)
    state = (x_T, -inv_var * x_T, -inv_var * eye, x_T.new_zeros(batch))
    return -solve(wkb_dynamics(score, sde), state, sde.t_max, sde.t_min, rtol, atol, method)[3]


def log_likelihood(
    score: ScoreFn,
    sde: SDE,
    x: Tensor,
    h: float = 0.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    exact_divergence: bool = True,
    *,
    correction: bool = True,
    method: str = "dopri5",
    generator: torch.Generator | None = None,
    paths: int = 1,
    path_steps: int = 50,
    progress: bool = False,
) -> LikelihoodOutput:
    """log q^𝔥_{t_min}(x) ≈ log_prob + 𝔥·correction: PF-ODE likelihood plus the first-order WKB term (Hirono et al., ICML'24).

    The correction is always computed unless correction=False. With exact derivatives it is the augmented solve
    (`wkb_correction`); with Hutchinson divergences it is the mean of `paths` Monte-Carlo perturbed paths on a
    `path_steps`-step grid (`wkb_correction_paths`, whose standard error that function also returns; `progress`
    shows its bar). With correction=False the output's correction is None and only 𝔥 = 0 is allowed (the cheap
    choice for 𝔥 = 0 bits/dim with Hutchinson divergences).
    """
    check_h(h)
    if x.dim() < 2 or x.shape[0] == 0:
        raise InputError(f"x must have shape [B, ...] with B >= 1, got {tuple(x.shape)}")
    if h > 0 and not correction:
        raise ConfigError(f"h={h} needs the WKB correction", hint="pass correction=True")
    if correction and not exact_divergence:
        check_path_budget(paths, path_steps)
    flat_x = x.reshape(x.shape[0], -1)
    flat = flat_score(score, x.shape)
    probe = None
    if not exact_divergence:
        probe = rademacher(flat_x.shape, flat_x, generator)
    with torch.no_grad():
        x_T, log_prob = pf_ode_log_prob(flat, sde, flat_x, rtol, atol, probe, method)
        if not correction:
            return LikelihoodOutput(log_prob, None, log_prob)
        if exact_divergence:
            corr = wkb_correction(flat, sde, x_T, rtol, atol, method)
        else:
            corr = wkb_correction_paths(flat, sde, flat_x, steps=path_steps, paths=paths,
                                        generator=generator, progress=progress).mean
    return LikelihoodOutput(log_prob, corr, log_prob + h * corr)


def bits_per_dim(log_prob: Tensor, num_dims: int, scale: float = 2.0, levels: int = 256) -> Tensor:
    """−(log p(x) + D log scale)/(D ln 2) + log₂ levels for data u ∈ [0, 1) mapped to x = scale·u + shift (Song et al.)."""
    return -(log_prob + num_dims * math.log(scale)) / (num_dims * math.log(2.0)) + math.log2(levels)
