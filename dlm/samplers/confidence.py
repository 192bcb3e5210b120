"""Confidence-ordered unmasking (MaskGIT, Chang et al. 2022; LLaDA's low-confidence remasking, Nie et al. 2025),
with LLaDA's semi-autoregressive blocks.

Each step draws x̂0_i ~ p_θ(x0_i | x_t) (with temperature / top-p) at every mask of the current block and
reveals the n_k most confident, where n_k follows a reveal schedule that uncovers the whole block by its last
step; the other draws are discarded (re-masked). Not an exact sampler of p: greedy in the confidence.
"""

from __future__ import annotations

import math

import torch

from dlm.errors import ConfigError
from dlm.processes import MaskedProcess
from dlm.samplers.common import Run, sample_categorical

CONFIDENCES = ("prob", "margin", "entropy", "random")
REVEAL_SCHEDULES = ("linear", "cosine")


def revealed_fraction(u: torch.Tensor, schedule: str) -> torch.Tensor:
    """F(u), the fraction of a block revealed after a fraction u of its steps: u (LLaDA), 1 − cos(πu/2) (MaskGIT)."""
    return u if schedule == "linear" else 1 - torch.cos(math.pi / 2 * u)


def reveal_counts(num_masked: torch.LongTensor, steps: int, schedule: str = "linear") -> torch.LongTensor:
    """Tokens to reveal at each step, n_k = ⌊n·F(k/K)⌋ − ⌊n·F((k−1)/K)⌋, summing to n: [B, K]."""
    u = torch.arange(steps + 1, dtype=torch.float64, device=num_masked.device) / steps
    cumulative = torch.floor(num_masked.double().unsqueeze(-1) * revealed_fraction(u, schedule) + 1e-9).long()
    cumulative[:, -1] = num_masked
    return cumulative.diff(dim=-1)


def confidence_scores(log_probs: torch.Tensor, tokens: torch.LongTensor, kind: str,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """How sure the model is at each position, [B, L]: p(x̂0) of the drawn token, the top-1 − top-2 margin,
    the negative entropy, or a random score (MaskGIT's random order)."""
    if kind == "prob":
        return log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).exp()
    if kind == "margin":
        top2 = log_probs.topk(2, dim=-1).values.exp()
        return top2[..., 0] - top2[..., 1]
    if kind == "entropy":
        return (log_probs.exp() * log_probs.clamp_min(-1e30)).sum(-1)
    return torch.rand(tokens.shape, generator=generator, device=tokens.device, dtype=torch.float64)


def state_time(process: MaskedProcess, x: torch.LongTensor, free: torch.Tensor) -> torch.Tensor:
    """The t at which a fraction 1 − α(t) of the free positions is masked, [B] (for time-conditioned models)."""
    masked_fraction = ((x == process.mask_id) & free).sum(-1).double() / free.sum(-1).clamp(min=1)
    return process.schedule.time_at_alpha(1 - masked_fraction).double().clamp(0.0, 1.0)


def confidence(run: Run, x: torch.LongTensor, steps: int, block_length: int | None = None, confidence: str = "prob",
               reveal_schedule: str = "linear") -> torch.LongTensor:
    """Reveal the most confident draws block by block; ``steps`` are shared out over the blocks of
    ``block_length`` positions after the prompt (one block by default)."""
    process = run.process
    if not isinstance(process, MaskedProcess):
        raise ConfigError("confidence sampling needs the masked process", hint="use 'analytic' for the uniform process")
    if confidence not in CONFIDENCES:
        raise ConfigError(f"unknown confidence {confidence!r}", hint=f"choose one of {', '.join(CONFIDENCES)}")
    if reveal_schedule not in REVEAL_SCHEDULES:
        raise ConfigError(f"unknown reveal_schedule {reveal_schedule!r}",
                          hint=f"choose one of {', '.join(REVEAL_SCHEDULES)}")
    free = ~run.fixed
    seq_len = x.shape[1]
    start = int(free.any(0).nonzero()[0]) if free.any() else seq_len
    block_length = seq_len - start if block_length is None else block_length
    if isinstance(block_length, bool) or not isinstance(block_length, int) or block_length < 1:
        raise ConfigError(f"block_length must be a positive integer, got {block_length!r}")
    num_blocks = max(1, math.ceil((seq_len - start) / block_length))
    if steps < num_blocks:
        raise ConfigError(f"{steps} steps cannot cover {num_blocks} blocks of length {block_length}",
                          hint="raise steps or block_length")
    step = 0
    for block in range(num_blocks):
        in_block = torch.zeros(seq_len, dtype=torch.bool, device=x.device)
        in_block[start + block * block_length: start + (block + 1) * block_length] = True
        block_steps = steps // num_blocks + (block < steps % num_blocks)
        counts = reveal_counts(((x == process.mask_id) & in_block).sum(-1), block_steps, reveal_schedule)
        for k in run.steps(block_steps, f"block {block + 1}/{num_blocks}"):
            if not counts[:, k].any():
                continue
            candidates = (x == process.mask_id) & in_block
            log_probs = run.posterior(x, state_time(process, x, free))
            draws = sample_categorical(run.posterior.sampling(log_probs).exp(), run.generator)
            scores = confidence_scores(log_probs, draws, confidence, run.generator).masked_fill(~candidates, -torch.inf)
            rank = scores.argsort(dim=-1, descending=True).argsort(dim=-1)
            x = torch.where(candidates & (rank < counts[:, k : k + 1]), draws, x)
            run.record(step, state_time(process, x, free), x)
            step += 1
    return x
