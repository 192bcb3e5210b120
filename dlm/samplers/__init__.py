"""Reverse-process samplers for discrete diffusion: ``sample(denoiser, process, num_samples, seq_len, steps, method)``.

| method          | process         | network calls          | paper / upstream                               |
|-----------------|-----------------|------------------------|------------------------------------------------|
| "euler"         | masked, uniform | steps (+1 clean-up)    | τ-leaping, SEDD EulerPredictor                 |
| "analytic"      | masked, uniform | steps (+1 clean-up)    | Tweedie τ-leaping, SEDD AnalyticPredictor      |
| "ancestral"     | masked, uniform | ≤ steps (+1), cached   | MDLM ``_ddpm_caching_update``, ReMDM, DUO/UDLM |
| "first_hitting" | masked          | one per masked token   | Zheng et al. 2024                              |
| "confidence"    | masked          | ≤ steps                | MaskGIT, LLaDA (semi-autoregressive blocks)    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dlm.errors import ConfigError, InputError
from dlm.processes import DiscreteProcess
from dlm.samplers.ancestral import (
    ancestral,
    ancestral_step_probs,
    masked_ancestral_probs,
    masked_reveal_step,
    remasking_probability,
    uniform_ancestral_probs,
)
from dlm.samplers.common import (
    Posterior,
    Record,
    Run,
    apply_temperature,
    apply_top_p,
    check_options,
    classifier_free_guidance,
    conditioning,
    gumbel_noise,
    initial_state,
    is_time_independent,
    sample_categorical,
    sample_log_categorical,
    time_grid,
)
from dlm.samplers.confidence import confidence, confidence_scores, reveal_counts
from dlm.samplers.first_hitting import first_hitting, first_hitting_time
from dlm.samplers.tau_leaping import (
    analytic,
    analytic_step_probs,
    denoise_step_probs,
    euler,
    euler_step_probs,
    reverse_rate,
    staggered_score,
    transposed_transition,
)


@dataclass(frozen=True)
class Sampler:
    """A registered method: the loop ``fn(run, x, steps, **options)``, the processes it supports, its own options."""

    fn: Callable
    processes: tuple[str, ...]
    options: tuple[str, ...]


SAMPLERS: dict[str, Sampler] = {
    "euler": Sampler(euler, ("masked", "uniform"), ("parameterization",)),
    "analytic": Sampler(analytic, ("masked", "uniform"), ("parameterization",)),
    "ancestral": Sampler(ancestral, ("masked", "uniform"), ("cache", "remask", "remask_strategy", "point_estimate")),
    "first_hitting": Sampler(first_hitting, ("masked",), ()),
    "confidence": Sampler(confidence, ("masked",), ("block_length", "confidence", "reveal_schedule")),
}


@dataclass
class SampleOutput:
    """Samples [B, L]; ``nfe``, the number of network calls; ``nfe_per_sample``, the network evaluations each
    sequence cost on average (below ``nfe`` when the ancestral cache skips unchanged sequences, twice it with
    classifier-free guidance); with ``return_trajectory`` the states after every step (first: the initial one)."""

    tokens: torch.LongTensor
    nfe: int
    nfe_per_sample: float
    trajectory: list[torch.LongTensor] | None = None


def _device(denoiser, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    parameters = getattr(denoiser, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def sample_with_info(denoiser, process: DiscreteProcess, num_samples: int, seq_len: int, steps: int = 128,
                     method: str = "ancestral", generator: torch.Generator | None = None,
                     prompt: torch.LongTensor | None = None, *, fixed_mask: torch.Tensor | None = None,
                     fixed_tokens: torch.LongTensor | None = None, temperature: float = 1.0, top_p: float = 1.0,
                     cfg_scale: float = 0.0, t_min: float = 1e-5, spacing: str = "time", noise_removal: str = "sample",
                     callback: Callable[[int, float, torch.LongTensor], None] | None = None,
                     return_trajectory: bool = False, progress: bool = False, device=None,
                     **options) -> SampleOutput:
    """Draw ``num_samples`` sequences of ``seq_len`` tokens by ``method`` (see :data:`SAMPLERS`); the positions of
    ``prompt`` (a prefix) or ``fixed_mask`` (their tokens in ``fixed_tokens``) start clean and never change."""
    if method not in SAMPLERS:
        raise ConfigError(f"unknown sampling method {method!r}", hint=f"choose one of {', '.join(SAMPLERS)}")
    sampler = SAMPLERS[method]
    if process.name not in sampler.processes:
        raise ConfigError(f"method {method!r} needs the {' or '.join(sampler.processes)} process, not {process.name}",
                          hint="use 'analytic' or 'euler' for the uniform process")
    unknown = sorted(set(options) - set(sampler.options))
    if unknown:
        allowed = ", ".join(sampler.options) or "none"
        raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to method {method!r}",
                          hint=f"its own options: {allowed}")
    for name, value in (("num_samples", num_samples), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    check_options(steps, temperature, top_p, cfg_scale, t_min, spacing, noise_removal, process)
    device = _device(denoiser, device)
    if generator is not None and generator.device.type != device.type:
        raise InputError(f"the generator is on {generator.device} but sampling runs on {device}",
                         hint=f"use torch.Generator({str(device)!r}).manual_seed(seed)")
    fixed, fixed_values = conditioning(process, num_samples, seq_len, prompt, fixed_mask, fixed_tokens, device)
    if cfg_scale and not fixed.any():
        raise ConfigError("cfg_scale needs a prompt or fixed positions to guide towards")
    record = Record(callback=callback, keep=return_trajectory)
    posterior = Posterior(denoiser, process, fixed, temperature, top_p, cfg_scale)
    run = Run(process, posterior, fixed, fixed_values, generator, record, t_min, spacing, noise_removal, progress)
    x = initial_state(run, num_samples, seq_len)
    if return_trajectory:
        record.trajectory.append(x.cpu().clone())
    tokens = sampler.fn(run, x, steps, **options)
    return SampleOutput(tokens, posterior.calls, posterior.evaluations / num_samples,
                        record.trajectory if return_trajectory else None)


def sample(denoiser, process: DiscreteProcess, num_samples: int, seq_len: int, steps: int = 128,
           method: str = "ancestral", generator: torch.Generator | None = None,
           prompt: torch.LongTensor | None = None, **kwargs) -> torch.LongTensor:
    """Samples [num_samples, seq_len] (token ids in [0, V)); the options of :func:`sample_with_info`."""
    return sample_with_info(denoiser, process, num_samples, seq_len, steps, method, generator, prompt, **kwargs).tokens


__all__ = [
    "SAMPLERS", "Sampler", "SampleOutput", "sample", "sample_with_info", "Posterior",
    "euler_step_probs", "analytic_step_probs", "denoise_step_probs", "ancestral_step_probs",
    "masked_ancestral_probs", "masked_reveal_step", "uniform_ancestral_probs", "remasking_probability", "reverse_rate",
    "staggered_score", "transposed_transition", "first_hitting_time", "reveal_counts", "confidence_scores",
    "sample_categorical", "sample_log_categorical", "gumbel_noise", "time_grid", "apply_temperature", "apply_top_p",
    "classifier_free_guidance", "is_time_independent",
    "euler", "analytic", "ancestral", "first_hitting", "confidence",
]
