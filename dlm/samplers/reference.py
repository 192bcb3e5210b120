"""Exact references for samplers on an enumerable toy (tests and scripts/bench_sampling.py): the sampling-noise
level of the total-variation distance, and the exact law of a per-token step chain (its discretisation bias).
Use with :class:`dlm.exact.TabulatedPosterior`, the fast exact denoiser."""

from __future__ import annotations

import math
from typing import Callable

import torch

from dlm.exact import ExactPosterior, all_sequences, sequence_index
from dlm.losses import posterior_log_ratios
from dlm.processes import DiscreteProcess, MaskedProcess
from dlm.samplers.ancestral import ancestral_step_probs, remasking_probability
from dlm.samplers.tau_leaping import analytic_step_probs, euler_step_probs


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p.double() - q.double()).abs().sum())


def empirical(samples: torch.LongTensor, vocab_size: int) -> torch.Tensor:
    """Frequencies of every sequence (all_sequences order) among the samples [n, L]."""
    counts = torch.bincount(sequence_index(samples, vocab_size), minlength=vocab_size ** samples.shape[1])
    return counts.double() / samples.shape[0]


def expected_tv_noise(probs: torch.Tensor, n: int) -> float:
    """E TV(p̂_n, p) of n i.i.d. draws: ½ Σ_x E|Bin(n, p_x)/n − p_x|, by exact binomial sums."""
    p = probs.double().reshape(-1, 1)
    k = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = (math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
               + torch.special.xlogy(k, p) + torch.special.xlogy(n - k, 1 - p))
    return 0.5 * float((log_pmf.exp() * (k / n - p).abs()).sum())


def chain_law(step: Callable, exact: ExactPosterior, grid: torch.Tensor,
              fixed: dict[int, int] | None = None) -> torch.Tensor:
    """The exact law over clean sequences [V^L] of the chain that moves every free token independently by
    ``step(log_probs, x, t, s) -> [S, L, num_states]`` along ``grid``, from the prior (the ``fixed``
    {position: token} in place), then draws the noisy tokens from p(x0_i | x) at the last time (noise removal)."""
    process: DiscreteProcess = exact.process
    fixed = fixed or {}
    states = all_sequences(process.num_states, exact.length)
    masked = isinstance(process, MaskedProcess)
    law = ((states == process.mask_id) if masked else (states < process.vocab_size)).double()
    for i in range(exact.length):
        law[:, i] = (states[:, i] == fixed[i]).double() if i in fixed else law[:, i]
    law = law.prod(-1)
    law = law / law.sum()
    for t, s in zip(grid[:-1], grid[1:]):
        law = law @ _kernel(step(exact(states, t.float()).double(), states, t, s), states, fixed)
    probs = exact(states, grid[-1].float()).double().exp()
    if masked:
        onehot = torch.nn.functional.one_hot(states.clamp(max=process.vocab_size - 1), process.vocab_size).double()
        probs = torch.where((states == process.mask_id).unsqueeze(-1), probs, onehot)
        probs = torch.cat([probs, torch.zeros_like(probs[..., :1])], dim=-1)
    law = law @ _kernel(probs, states, fixed)
    clean = (states < process.vocab_size).all(-1)
    out = torch.zeros(process.vocab_size ** exact.length, dtype=torch.float64)
    out[sequence_index(states[clean], process.vocab_size)] = law[clean]
    return out


def _kernel(probs: torch.Tensor, states: torch.LongTensor, fixed: dict[int, int]) -> torch.Tensor:
    """K[a, b] = Π_i P_i(states[b, i] | states[a]) from per-token step probabilities [S, L, num_states]."""
    probs = probs.clamp_min(0.0)
    probs = probs / probs.sum(-1, keepdim=True)
    for i, token in fixed.items():
        probs[:, i] = torch.nn.functional.one_hot(torch.tensor(token), probs.shape[-1]).double()
    kernel = torch.ones(states.shape[0], states.shape[0], dtype=torch.float64)
    for i in range(states.shape[1]):
        kernel = kernel * probs[:, i, :][:, states[:, i]]
    return kernel


def step_fn(method: str, process, **options):
    """The per-token step probabilities the sampler ``method`` draws from, as a function of the exact posterior."""
    def ratios(log_probs, x, t):
        return posterior_log_ratios(log_probs, process, x, process.schedule.total(t))

    if method == "euler":
        return lambda lp, x, t, s: euler_step_probs(ratios(lp, x, t), process, x, t, t - s)
    if method == "analytic":
        return lambda lp, x, t, s: analytic_step_probs(ratios(lp, x, t), process, x, t, s)
    eta = options.get("remask", 0.0)

    def ancestral(lp, x, t, s):
        alpha_t, alpha_s = process.schedule.alpha(t), process.schedule.alpha(s)
        sigma = remasking_probability(alpha_t, alpha_s, eta, options.get("remask_strategy", "cap")) if eta else 0.0
        return ancestral_step_probs(lp, process, x, t, s, sigma)
    return ancestral
