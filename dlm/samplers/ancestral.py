"""Ancestral sampling x_s ~ q(x_s | x_t, x0 ~ p_θ(x0 | x_t)) (D3PM; MDLM's ``_ddpm_caching_update``), with the
no-change cache and ReMDM remasking (Wang et al. 2025).

Masked: a mask is revealed with probability (α_s − α_t)/(1 − α_t) and its token drawn from p_θ; revealed tokens
stay. Uniform: q(x_s | x_t, x0 = v) is mixed over the posterior by the exact mean of ratios
Σ_v p_v q_s(z|v) q_{t|s}(x_t|z) / q_t(x_t|v) (DESIGN), or, as DUO/UDLM do, with the point estimate
Σ_v p_v q_s(z|v) q_{t|s}(x_t|z) / Σ_v p_v q_t(x_t|v) (``point_estimate=True``; an approximation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlm.errors import ConfigError
from dlm.processes import DiscreteProcess, MaskedProcess, UniformProcess
from dlm.samplers.common import (Run, is_time_independent, noisy_positions, remove_noise, sample_categorical,
                                sample_log_categorical, time_grid)

REMASK_STRATEGIES = ("cap", "rescale")


def _alpha(process: DiscreteProcess, t) -> torch.Tensor:
    """α(t) in float64, a scalar or [B, 1, 1]."""
    alpha = process.schedule.alpha(torch.as_tensor(t, dtype=torch.float64))
    return alpha if alpha.dim() == 0 else alpha.reshape(-1, 1, 1)


def remasking_probability(alpha_t: torch.Tensor, alpha_s: torch.Tensor, eta: float,
                          strategy: str = "cap") -> torch.Tensor:
    """ReMDM's σ_t, the chance that a revealed token is masked again: "cap" min(η, σ_max), "rescale" η·σ_max,
    with σ_max = min(1, (1 − α_s)/α_t) keeping every probability ≥ 0 (Wang et al. 2025, §4.1)."""
    sigma_max = ((1 - alpha_s) / alpha_t).clamp(max=1.0)
    if strategy == "cap":
        return sigma_max.clamp(max=eta)
    if strategy == "rescale":
        return eta * sigma_max
    raise ConfigError(f"unknown remasking strategy {strategy!r}", hint=f"choose one of {', '.join(REMASK_STRATEGIES)}")


def masked_ancestral_probs(log_probs: torch.Tensor, process: MaskedProcess, x: torch.LongTensor,
                           alpha_t: torch.Tensor, alpha_s: torch.Tensor, remask=0.0) -> torch.Tensor:
    """q_σ(x_s | x_t, x0 ~ p_θ) per token, [B, L, V+1]: from a mask, y w.p. p_y(α_s − (1−σ)α_t)/(1−α_t) and
    the mask w.p. (1 − α_s − σα_t)/(1−α_t); from a revealed token, itself w.p. 1−σ and the mask w.p. σ.
    σ = 0 is MDLM's step (normalised: MDLM hands p·(t−s) with the mask column s to its sampler)."""
    reveal = log_probs.exp() * (alpha_s - (1 - remask) * alpha_t) / (1 - alpha_t)
    stay = ((1 - alpha_s - remask * alpha_t) / (1 - alpha_t)).expand_as(reveal[..., :1])
    from_mask = torch.cat([reveal, stay], dim=-1)
    onehot = F.one_hot(x, process.num_states).double()
    mask_col = F.one_hot(torch.full_like(x, process.mask_id), process.num_states).double()
    from_token = (1 - remask) * onehot + remask * mask_col
    return torch.where((x == process.mask_id).unsqueeze(-1), from_mask, from_token)


def masked_reveal_step(run: Run, log_probs: torch.Tensor, x: torch.LongTensor, alpha_t: torch.Tensor,
                       alpha_s: torch.Tensor) -> torch.LongTensor:
    """MDLM's masked step (σ = 0) drawn in its factorised form: each mask is revealed with probability
    (α_s − α_t)/(1 − α_t) (one float64 uniform per position) and only the revealed positions draw a token from
    the sampling law of p_θ. The same law as :func:`masked_ancestral_probs`, without float64 work over the
    vocabulary at the positions that stay masked (almost all of them when steps ≈ length)."""
    reveal_prob = ((alpha_s - alpha_t) / (1 - alpha_t)).reshape(-1, 1)
    u = DiscreteProcess.draw_uniforms(x.shape, run.generator, x.device)
    reveal = (x == run.process.mask_id) & (u < reveal_prob)
    if not reveal.any():
        return x
    x = x.clone()
    x[reveal] = sample_log_categorical(run.posterior.sampling(log_probs[reveal]), run.generator)
    return x


def uniform_ancestral_probs(log_probs: torch.Tensor, process: UniformProcess, x: torch.LongTensor,
                            alpha_t: torch.Tensor, alpha_s: torch.Tensor, point_estimate: bool = False) -> torch.Tensor:
    """Σ_v w_v q_s(z | v) · q_{t|s}(x_t | z) per token, [B, L, V], with w_v = p_v / q_t(x_t | v) (exact mean of
    ratios) or w_v = p_v / Σ_u p_u q_t(x_t | u) (DUO/UDLM point estimate). Both sum to 1 over z."""
    v = process.vocab_size
    probs = log_probs.exp()
    onehot = F.one_hot(x, v).double()
    likelihood = alpha_t * onehot + (1 - alpha_t) / v  # q_t(x_t | v) as a function of v
    evidence = (probs * likelihood).sum(-1, keepdim=True) if point_estimate else likelihood
    weights = probs / evidence
    prior_mix = alpha_s * weights + (1 - alpha_s) / v * weights.sum(-1, keepdim=True)  # Σ_v w_v q_s(z | v)
    keep = alpha_t / alpha_s
    return prior_mix * (keep * onehot + (1 - keep) / v)  # × q_{t|s}(x_t | z)


def ancestral_step_probs(log_probs: torch.Tensor, process: DiscreteProcess, x: torch.LongTensor, t, s,
                         remask=0.0, point_estimate: bool = False) -> torch.Tensor:
    """q(x_s | x_t) = E_{x0 ~ p_θ(·|x_t)} q(x_s | x_t, x0) per token for either process, normalised: [B, L, S]."""
    alpha_t, alpha_s = _alpha(process, t), _alpha(process, s)
    if isinstance(process, MaskedProcess):
        return masked_ancestral_probs(log_probs.double(), process, x, alpha_t, alpha_s, remask)
    return uniform_ancestral_probs(log_probs.double(), process, x, alpha_t, alpha_s, point_estimate)


def ancestral(run: Run, x: torch.LongTensor, steps: int, cache: bool | None = None, remask: float = 0.0,
              remask_strategy: str = "cap", point_estimate: bool = False) -> torch.LongTensor:
    """MDLM's ancestral sampler with the no-change cache: a sequence that no step changed keeps its p_θ(x0 | x_t)
    and only the changed ones are re-evaluated. Exact when the denoiser ignores t (``cache=None`` detects that
    by :func:`is_time_independent`; ``cache=True`` forces it, an approximation for a time-conditioned network).
    ``remask`` = η > 0 adds ReMDM remasking."""
    process = run.process
    if remask and not isinstance(process, MaskedProcess):
        raise ConfigError("ReMDM remasking needs the masked process", hint="set remask=0")
    if not 0 <= remask <= 1:
        raise ConfigError(f"remask (ReMDM's η) must lie in [0, 1], got {remask}")
    if remask_strategy not in REMASK_STRATEGIES:
        raise ConfigError(f"unknown remasking strategy {remask_strategy!r}",
                          hint=f"choose one of {', '.join(REMASK_STRATEGIES)}")
    if point_estimate and isinstance(process, MaskedProcess):
        raise ConfigError("point_estimate is the DUO/UDLM approximation of the uniform process",
                          hint="the masked step is exact already; drop point_estimate")
    use_cache = is_time_independent(run.posterior.denoiser) if cache is None else bool(cache)
    grid = time_grid(process.schedule, steps, run.t_min, run.spacing)
    log_probs, stale = None, torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for i in run.steps(steps, "ancestral"):
        t, s = grid[i], grid[i + 1]
        log_probs = refresh(run, log_probs, stale, x, t)
        sigma = 0.0
        if remask:
            sigma = remasking_probability(_alpha(process, t), _alpha(process, s), remask, remask_strategy)
        if isinstance(process, MaskedProcess) and not remask:
            x_next = run.keep_fixed(masked_reveal_step(run, log_probs, x, _alpha(process, t), _alpha(process, s)))
        else:
            probs = ancestral_step_probs(run.posterior.sampling(log_probs), process, x, t, s, sigma, point_estimate)
            x_next = run.keep_fixed(sample_categorical(probs, run.generator))
        stale = (x_next != x).any(-1) if use_cache else torch.ones_like(stale)
        x = x_next
        run.record(i, s, x)
    if use_cache and run.noise_removal != "none":  # the clean-up needs fresh posteriors of noisy sequences only
        log_probs = refresh(run, log_probs, stale & noisy_positions(process, x, run.fixed).any(-1), x, grid[-1])
    return remove_noise(run, x, grid[-1], run.noise_removal, log_probs if use_cache else None)


def refresh(run: Run, log_probs: torch.Tensor | None, stale: torch.Tensor, x: torch.LongTensor, t) -> torch.Tensor:
    """p_θ(x0 | x_t) for every sequence: the cached rows as they are, the ``stale`` ones evaluated afresh."""
    if log_probs is None or stale.all():
        return run.posterior(x, t)
    if stale.any():
        log_probs = log_probs.clone()
        log_probs[stale] = run.posterior(x[stale], t, rows=stale)
    return log_probs
