"""The first-hitting sampler of masked diffusion (Zheng et al. 2024, "Masked diffusion models are secretly
time-agnostic masked models and exploit inaccurate categorical sampling", Alg. 1).

Given k masks at time t, each mask's (reverse) reveal time τ has P(τ ≤ r | masked at t) = (1 − α(r))/(1 − α(t)),
so the next reveal, the latest of k such times, solves 1 − α(τ) = (1 − α(t))·u^{1/k}, u ~ U(0, 1); then one
of the k masks, uniformly, is revealed with x0_i ~ p_θ(x0_i | x_t). Exact in law; one network call per token.
"""

from __future__ import annotations

import torch

from dlm.errors import ConfigError
from dlm.processes import MaskedProcess
from dlm.samplers.common import Run, gumbel_noise, sample_categorical
from dlm.schedules import Schedule


def first_hitting_time(schedule: Schedule, t: torch.Tensor, num_masked: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """τ with 1 − α(τ) = (1 − α(t))·u^{1/k}: when the next of k masks is revealed (t·u^{1/k} for log-linear)."""
    alpha = 1 - (1 - schedule.alpha(t)) * u ** (1.0 / num_masked.double())
    return schedule.time_at_alpha(alpha).double().clamp(min=0.0).minimum(t)


def first_hitting(run: Run, x: torch.LongTensor, steps: int | None = None) -> torch.LongTensor:
    """Reveal one uniformly chosen mask per network call at the exact first-hitting times (``steps`` is ignored)."""
    process = run.process
    if not isinstance(process, MaskedProcess):
        raise ConfigError("first_hitting needs the masked process", hint="use 'analytic' for the uniform process")
    t = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
    rows = torch.arange(x.shape[0], device=x.device)
    masked = x == process.mask_id
    for step in run.steps(int(masked.sum(-1).max()), "first_hitting"):
        num_masked = masked.sum(-1)
        active = num_masked > 0
        u = torch.rand(x.shape[0], generator=run.generator, device=x.device, dtype=torch.float64)
        t = torch.where(active, first_hitting_time(process.schedule, t, num_masked.clamp(min=1), u), t)
        log_probs = run.posterior.sampling(run.posterior(x, t))
        position = gumbel_noise(masked.shape, run.generator, x.device).masked_fill(~masked, -torch.inf).argmax(-1)
        token = sample_categorical(log_probs[rows, position].exp(), run.generator)
        x = x.clone()
        x[rows[active], position[active]] = token[active]
        masked = x == process.mask_id
        run.record(step, t, x)
    return x
