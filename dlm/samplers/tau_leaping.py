"""τ-leaping samplers on the reverse CTMC of SEDD (Lou et al. 2024, ``sampling.py``): Euler and Tweedie ("analytic").

Both read the log concrete score log s(x)_{i,y} ≈ log p_t(x^{i→y})/p_t(x): a SEDD score model's output
(``parameterization="score"``) or the exact mean of ratios of a clean-token posterior (``"posterior"``,
:func:`dlm.losses.posterior_log_ratios`). With a posterior the analytic step is the exact per-token reverse
marginal q(x_s^i | x_t) for both processes; so is Euler for the masked process with the log-linear schedule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlm.errors import ConfigError
from dlm.losses import posterior_log_ratios
from dlm.processes import DiscreteProcess, MaskedProcess
from dlm.samplers.common import Run, keep_unmasked, noisy_positions, remove_noise, sample_categorical, time_grid

PARAMETERIZATIONS = ("posterior", "score")


def _per_row(value: torch.Tensor) -> torch.Tensor:
    """A scalar or per-sequence ([B] or [B, 1]) quantity shaped to broadcast over [B, L, S]."""
    value = torch.as_tensor(value, dtype=torch.float64)
    return value if value.dim() == 0 else value.reshape(-1, 1, 1)


def _total(process: DiscreteProcess, t) -> torch.Tensor:
    return _per_row(process.schedule.total(torch.as_tensor(t, dtype=torch.float64)))


def reverse_rate(score: torch.Tensor, process: DiscreteProcess, x: torch.LongTensor) -> torch.Tensor:
    """R̂(x → x^{i→y}) = Q(y, x_i)·s(x)_{i,y} for y ≠ x_i, minus their sum on the diagonal, per unit σ̄': [B, L, S].
    Masked: s_y at mask positions, 0 at clean ones; uniform: s_y / V."""
    if isinstance(process, MaskedProcess):
        rate = torch.where((x == process.mask_id).unsqueeze(-1), score, 0.0)
    else:
        rate = score / process.vocab_size
    rate = rate.scatter(-1, x.unsqueeze(-1), 0.0)
    return rate.scatter(-1, x.unsqueeze(-1), -rate.sum(-1, keepdim=True))


def staggered_score(score: torch.Tensor, process: DiscreteProcess, dsigma: torch.Tensor) -> torch.Tensor:
    """e^{−Δσ̄ Q} s: the score carried from σ̄ back to σ̄ − Δσ̄ (Tweedie τ-leaping, Lou et al. 2024 §4.2)."""
    grow = torch.exp(dsigma)
    if isinstance(process, MaskedProcess):
        extra = (1 - grow) * score.sum(-1, keepdim=True)
        return torch.cat([score[..., :-1] * grow, score[..., -1:] * grow + extra], dim=-1)
    return score * grow + (1 - grow) / process.vocab_size * score.sum(-1, keepdim=True)


def transposed_transition(process: DiscreteProcess, x: torch.LongTensor, dsigma: torch.Tensor) -> torch.Tensor:
    """q_{Δσ̄}(x_i | y) as a function of y: the column x_i of exp(Δσ̄ Q), [B, L, S]."""
    keep = torch.exp(-dsigma)
    onehot = F.one_hot(x, process.num_states).double()
    if isinstance(process, MaskedProcess):
        return keep * onehot + (1 - keep) * (x == process.mask_id).unsqueeze(-1).double()
    return keep * onehot + (1 - keep) / process.vocab_size


def tweedie_probs(log_score: torch.Tensor, process: DiscreteProcess, x: torch.LongTensor,
                  dsigma: torch.Tensor) -> torch.Tensor:
    """p(x_{σ̄−Δσ̄}^i = y | x) ∝ (e^{−Δσ̄ Q} s)_y · q_{Δσ̄}(x_i | y), unnormalised as SEDD hands it to its sampler."""
    return staggered_score(log_score.double().exp(), process, dsigma) * transposed_transition(process, x, dsigma)


def euler_step_probs(log_score: torch.Tensor, process: DiscreteProcess, x: torch.LongTensor, t, dt) -> torch.Tensor:
    """onehot(x) + Δt·σ̄'(t)·R̂_t(x, ·): an Euler (τ-leaping) step of the reverse CTMC (SEDD EulerPredictor)."""
    dsigma = _per_row(process.schedule.rate(torch.as_tensor(t, dtype=torch.float64)))
    rate = reverse_rate(log_score.double().exp(), process, x)
    return F.one_hot(x, process.num_states).double() + _per_row(dt) * dsigma * rate


def analytic_step_probs(log_score: torch.Tensor, process: DiscreteProcess, x: torch.LongTensor, t, s) -> torch.Tensor:
    """Tweedie τ-leaping from t to s < t with Δσ̄ = σ̄(t) − σ̄(s) (SEDD AnalyticPredictor), unnormalised."""
    return tweedie_probs(log_score, process, x, _total(process, t) - _total(process, s))


def denoise_step_probs(log_score: torch.Tensor, process: DiscreteProcess, x: torch.LongTensor, t) -> torch.Tensor:
    """The final Tweedie step from t to σ̄ = 0 over the real tokens (SEDD Denoiser, mask column dropped)."""
    probs = tweedie_probs(log_score, process, x, _total(process, t))
    return probs[..., : process.vocab_size]


def euler(run: Run, x: torch.LongTensor, steps: int, parameterization: str = "posterior") -> torch.LongTensor:
    """τ-leaping with Euler steps on the reverse rates, then noise removal at t_min (SEDD ``pc_sampler``)."""
    return _tau_leaping(run, x, steps, parameterization, "euler")


def analytic(run: Run, x: torch.LongTensor, steps: int, parameterization: str = "posterior") -> torch.LongTensor:
    """τ-leaping with Tweedie (analytic) steps, then noise removal at t_min (SEDD ``pc_sampler``)."""
    return _tau_leaping(run, x, steps, parameterization, "analytic")


def _tau_leaping(run: Run, x: torch.LongTensor, steps: int, parameterization: str, predictor: str) -> torch.LongTensor:
    if parameterization not in PARAMETERIZATIONS:
        raise ConfigError(f"unknown parameterization {parameterization!r}",
                          hint=f"choose one of {', '.join(PARAMETERIZATIONS)}")
    posterior = run.posterior
    if parameterization == "score" and (posterior.temperature != 1 or posterior.top_p != 1 or posterior.cfg_scale):
        raise ConfigError("temperature, top_p and cfg_scale act on a clean-token posterior, not on a raw score",
                          hint="use parameterization='posterior'")
    process = run.process
    grid = time_grid(process.schedule, steps, run.t_min, run.spacing)
    for i in run.steps(steps, predictor):
        t, s = grid[i], grid[i + 1]
        log_score = _log_score(run, x, t, parameterization)
        if predictor == "euler":
            probs = euler_step_probs(log_score, process, x, t, t - s)
        else:
            probs = analytic_step_probs(log_score, process, x, t, s)
        x = run.keep_fixed(keep_unmasked(process, x, sample_categorical(probs, run.generator)))
        run.record(i, s, x)
    if parameterization == "posterior":
        return remove_noise(run, x, grid[-1], run.noise_removal)
    return _remove_noise_by_score(run, x, grid[-1])


def _log_score(run: Run, x: torch.LongTensor, t: torch.Tensor, parameterization: str) -> torch.Tensor:
    """The log-ratios the step reads: the model's own score, or the posterior's exact mean of ratios."""
    if parameterization == "score":
        return run.posterior.score(x, t)
    log_probs = run.posterior.sampling(run.posterior(x, t))
    return posterior_log_ratios(log_probs, run.process, x, run.process.schedule.total(t))


def _remove_noise_by_score(run: Run, x: torch.LongTensor, t: torch.Tensor) -> torch.LongTensor:
    """SEDD's Denoiser step from the raw score at t_min (draw or argmax), at the noisy positions only."""
    noisy = noisy_positions(run.process, x, run.fixed)
    if run.noise_removal == "none" or not noisy.any():
        return x
    probs = denoise_step_probs(run.posterior.score(x, t), run.process, x, t)
    clean = probs.argmax(-1) if run.noise_removal == "argmax" else sample_categorical(probs, run.generator)
    return torch.where(noisy, clean, x)
