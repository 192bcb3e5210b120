"""What every reverse-process sampler shares: float64 categorical draws, time grids, the guided clean-token
posterior (temperature, nucleus top-p, classifier-free guidance), fixed positions, and the step record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from dlm.denoiser import clean_log_probs, log_score
from dlm.errors import ConfigError, InputError
from dlm.processes import DiscreteProcess, MaskedProcess
from dlm.schedules import Schedule

SPACINGS = ("time", "alpha")
NOISE_REMOVALS = ("sample", "argmax", "none")


def gumbel_noise(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """g = −log(−log u), u ~ U[0, 1), in float64 (float32 Gumbel tails distort rare tokens; Zheng et al. 2024)."""
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return -torch.log(-torch.log(u))


def sample_categorical(weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.LongTensor:
    """x ~ Cat(w / Σw) over the last dim by Gumbel-max, argmax(log w + g), in float64; negative w count as 0."""
    return sample_log_categorical(torch.log(weights.double().clamp_min(0.0)), generator)


def sample_log_categorical(log_w: torch.Tensor, generator: torch.Generator | None = None) -> torch.LongTensor:
    """x ~ Cat(softmax(log w)) over the last dim by Gumbel-max in float64."""
    log_w = log_w.double()
    return (log_w + gumbel_noise(log_w.shape, generator, log_w.device)).argmax(dim=-1)


def time_grid(schedule: Schedule, steps: int, t_min: float = 1e-5, spacing: str = "time") -> torch.Tensor:
    """Times 1 = t_0 > … > t_steps = t_min (float64), uniform in t or uniform in α(t) = exp(−σ̄(t))."""
    if spacing == "time":
        return torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
    alphas = torch.linspace(float(schedule.alpha(1.0)), float(schedule.alpha(t_min)), steps + 1, dtype=torch.float64)
    grid = schedule.time_at_alpha(alphas).double().clamp(t_min, 1.0)
    grid[0], grid[-1] = 1.0, t_min
    return grid


def apply_temperature(log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^{1/T} renormalised; T = 0 is the argmax (a one-hot posterior)."""
    if temperature == 1.0:
        return log_probs
    if temperature == 0.0:
        top = log_probs.argmax(dim=-1, keepdim=True)
        return torch.full_like(log_probs, -torch.inf).scatter(-1, top, 0.0)
    return torch.log_softmax(log_probs / temperature, dim=-1)


def apply_top_p(log_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter (Holtzman et al. 2020): keep the most probable tokens until their mass reaches p, renormalise."""
    if top_p >= 1.0:
        return log_probs
    sorted_lp, order = log_probs.sort(dim=-1, descending=True)
    mass_before = sorted_lp.exp().cumsum(dim=-1) - sorted_lp.exp()
    keep = torch.zeros_like(log_probs, dtype=torch.bool).scatter(-1, order, mass_before < top_p)
    return torch.log_softmax(log_probs.masked_fill(~keep, -torch.inf), dim=-1)


def classifier_free_guidance(log_cond: torch.Tensor, log_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """log p_w ∝ (1+w)·log p(x0 | c) − w·log p(x0 | ∅), renormalised (Ho & Salimans 2022; Nie et al. 2025)."""
    return torch.log_softmax((1 + scale) * log_cond - scale * log_uncond, dim=-1)


def is_time_independent(denoiser) -> bool:
    """Whether the denoiser's output depends on x_t only: its ``time_independent`` attribute, else an HF model's
    ``config.time_conditioning is False`` (MDLM's default). Decides the ancestral sampler's no-change cache."""
    flag = getattr(denoiser, "time_independent", None)
    if flag is not None:
        return bool(flag)
    return getattr(getattr(denoiser, "config", None), "time_conditioning", None) is False


class Posterior:
    """The denoiser as the samplers see it: guided clean-token log-posteriors in float64, network use counted.

    ``__call__`` gives log p(x0 | x_t) after classifier-free guidance (the fixed tokens masked out in the
    unconditional input, both inputs in one batch) for all rows, or for the ``rows`` (a bool mask) whose x_t
    is passed; ``sampling`` applies temperature and top-p, the law tokens are drawn from; ``score`` is the raw
    SEDD log-score of a score model. ``calls`` counts network calls, ``evaluations`` the sequences they saw."""

    def __init__(self, denoiser, process: DiscreteProcess, fixed: torch.Tensor, temperature: float = 1.0,
                 top_p: float = 1.0, cfg_scale: float = 0.0):
        self.denoiser, self.process, self.fixed = denoiser, process, fixed
        self.temperature, self.top_p, self.cfg_scale = temperature, top_p, cfg_scale
        self.calls = self.evaluations = 0

    def __call__(self, x: torch.LongTensor, t: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        t = self._count(x, t)
        if not self.cfg_scale:
            return clean_log_probs(self.denoiser, x, t, self.process.vocab_size).double()
        self.evaluations += x.shape[0]
        fixed = self.fixed if rows is None else self.fixed[rows]
        both = clean_log_probs(self.denoiser, torch.cat([x, x.masked_fill(fixed, self.process.mask_id)]),
                               torch.cat([t, t]), self.process.vocab_size).double()
        return classifier_free_guidance(*both.chunk(2), self.cfg_scale)

    def sampling(self, log_probs: torch.Tensor) -> torch.Tensor:
        return apply_top_p(apply_temperature(log_probs, self.temperature), self.top_p)

    def score(self, x: torch.LongTensor, t: torch.Tensor) -> torch.Tensor:
        return log_score(self.denoiser, x, self._count(x, t), self.process.num_states).double()

    def _count(self, x: torch.LongTensor, t) -> torch.Tensor:
        """Count one call on x's rows; t as float32 [B] on x's device (what a denoiser receives)."""
        self.calls += 1
        self.evaluations += x.shape[0]
        t = torch.as_tensor(t, device=x.device).float()
        return t.expand(x.shape[0]) if t.dim() == 0 else t


@dataclass
class Record:
    """Intermediate states: a ``callback(step, t, x)`` after every step, and/or the whole ``trajectory``."""

    callback: Callable[[int, float, torch.LongTensor], None] | None = None
    keep: bool = False
    trajectory: list[torch.LongTensor] = field(default_factory=list)

    def __call__(self, step: int, t, x: torch.LongTensor) -> None:
        if self.keep:
            self.trajectory.append(x.detach().cpu().clone())
        if self.callback is not None:
            self.callback(step, float(torch.as_tensor(t).double().max()), x)


@dataclass
class Run:
    """One sampling run: the process, the guided posterior, fixed positions and their tokens, the random
    generator and the record. Samplers read it; the fixed positions are restored after every draw."""

    process: DiscreteProcess
    posterior: Posterior
    fixed: torch.Tensor
    fixed_tokens: torch.LongTensor
    generator: torch.Generator | None
    record: Record
    t_min: float = 1e-5
    spacing: str = "time"
    noise_removal: str = "sample"
    progress: bool = False

    def keep_fixed(self, x: torch.LongTensor) -> torch.LongTensor:
        return torch.where(self.fixed, self.fixed_tokens, x)

    def steps(self, n: int, desc: str):
        """range(n), wrapped in a tqdm bar when ``progress``."""
        if not self.progress:
            return range(n)
        from tqdm.auto import tqdm

        return tqdm(range(n), desc=desc, leave=False)


def keep_unmasked(process: DiscreteProcess, x: torch.LongTensor, x_next: torch.LongTensor) -> torch.LongTensor:
    """Carry-over unmasking (MDLM): under the masked process a revealed token never changes again."""
    if isinstance(process, MaskedProcess):
        return torch.where(x == process.mask_id, x_next, x)
    return x_next


def noisy_positions(process: DiscreteProcess, x: torch.LongTensor, fixed: torch.Tensor) -> torch.Tensor:
    """Positions a final clean-up may change: the masks (masked process) or every free position (uniform)."""
    if isinstance(process, MaskedProcess):
        return x == process.mask_id
    return ~fixed


def remove_noise(run: Run, x: torch.LongTensor, t: torch.Tensor, mode: str,
                 log_probs: torch.Tensor | None = None) -> torch.LongTensor:
    """Final "noise removal" at t_min (SEDD/MDLM): x0_i ~ p_θ(x0_i | x_t) (or its argmax) at the noisy positions.
    A cached posterior of the same x_t may be passed in; nothing is called if no position is noisy."""
    noisy = noisy_positions(run.process, x, run.fixed)
    if mode == "none" or not noisy.any():
        return x
    if log_probs is None:
        log_probs = run.posterior(x, t)
    log_probs = run.posterior.sampling(log_probs)
    clean = log_probs.argmax(-1) if mode == "argmax" else sample_categorical(log_probs.exp(), run.generator)
    return torch.where(noisy, clean, x)


def conditioning(process: DiscreteProcess, num_samples: int, seq_len: int, prompt: torch.Tensor | None,
                 fixed_mask: torch.Tensor | None, fixed_tokens: torch.Tensor | None,
                 device) -> tuple[torch.Tensor, torch.LongTensor]:
    """The fixed positions [B, L] (bool) and their tokens [B, L] from a prefix ``prompt`` [B|1, P] and/or a
    general ``fixed_mask`` + ``fixed_tokens`` [B|1, L] (suffixes, infilling)."""
    mask = torch.zeros(num_samples, seq_len, dtype=torch.bool, device=device)
    tokens = torch.zeros(num_samples, seq_len, dtype=torch.long, device=device)
    if (fixed_mask is None) != (fixed_tokens is None):
        raise InputError("pass fixed_mask and fixed_tokens together",
                         hint="fixed_tokens[b, i] is used where fixed_mask[b, i]")
    if fixed_mask is not None:
        fixed_mask = _rows(torch.as_tensor(fixed_mask, device=device), num_samples, "fixed_mask")
        fixed_tokens = _rows(torch.as_tensor(fixed_tokens, device=device), num_samples, "fixed_tokens")
        if fixed_mask.dtype != torch.bool or fixed_mask.shape[1] != seq_len or fixed_tokens.shape[1] != seq_len:
            raise InputError(f"fixed_mask (bool) and fixed_tokens must have shape [B or 1, seq_len={seq_len}]")
        _check_real_tokens(process, fixed_tokens[fixed_mask.expand_as(fixed_tokens)], "fixed_tokens")
        mask |= fixed_mask
        tokens = torch.where(fixed_mask, fixed_tokens.long(), tokens)
    if prompt is not None:
        prompt = _rows(torch.as_tensor(prompt, device=device), num_samples, "prompt")
        if prompt.shape[1] > seq_len:
            raise InputError(f"the prompt has {prompt.shape[1]} tokens but seq_len is {seq_len}",
                             hint="raise seq_len or shorten the prompt")
        _check_real_tokens(process, prompt, "prompt")
        mask[:, : prompt.shape[1]] = True
        tokens[:, : prompt.shape[1]] = prompt.long()
    return mask, tokens


def _rows(x: torch.Tensor, num_samples: int, name: str) -> torch.Tensor:
    """x [B|1, N] broadcast to [num_samples, N]."""
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2 or x.shape[0] not in (1, num_samples):
        raise InputError(f"{name} must have shape [num_samples={num_samples} or 1, length], got {tuple(x.shape)}")
    return x.expand(num_samples, -1)


def _check_real_tokens(process: DiscreteProcess, x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() or x.dtype == torch.bool:
        raise InputError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= process.vocab_size):
        raise InputError(f"{name} ids must lie in [0, {process.vocab_size}), got [{int(x.min())}, {int(x.max())}]",
                         hint="conditioning tokens are real tokens, never the mask")


def initial_state(run: Run, num_samples: int, seq_len: int) -> torch.LongTensor:
    """x_1 from the prior (all masks, or uniform tokens) at the free positions, the fixed tokens elsewhere."""
    x = run.process.prior_sample((num_samples, seq_len), generator=run.generator, device=run.fixed.device)
    return run.keep_fixed(x)


def check_options(steps: int, temperature: float, top_p: float, cfg_scale: float, t_min: float, spacing: str,
                  noise_removal: str, process: DiscreteProcess) -> None:
    """ConfigError for any option out of range, with the valid range in the hint."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    if not temperature >= 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}", hint="0 is greedy (argmax), 1 is the model")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must lie in (0, 1], got {top_p}", hint="1 disables nucleus filtering")
    if not cfg_scale >= 0:
        raise ConfigError(f"cfg_scale must be >= 0, got {cfg_scale}", hint="0 disables classifier-free guidance")
    if cfg_scale and not isinstance(process, MaskedProcess):
        raise ConfigError("classifier-free guidance needs the masked process",
                          hint="its unconditional input masks the prompt; the uniform process has no mask")
    if not 0 < t_min < 1:
        raise ConfigError(f"t_min must lie in (0, 1), got {t_min}", hint="SEDD and MDLM use 1e-5")
    if spacing not in SPACINGS:
        raise ConfigError(f"unknown time spacing {spacing!r}", hint=f"choose one of {', '.join(SPACINGS)}")
    if noise_removal not in NOISE_REMOVALS:
        raise ConfigError(f"unknown noise_removal {noise_removal!r}", hint=f"choose one of {', '.join(NOISE_REMOVALS)}")
