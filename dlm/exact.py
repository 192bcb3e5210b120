"""Exact denoisers for enumerable toy distributions: the ground truth that stands in for a network in tests.

For a distribution p over all V^L sequences, the clean-token posterior of any forward process is
p(x0_i = v | x_t) ∝ Σ_{x0: x0_i = v} p(x0) Π_j q_t(x_t^j | x0^j), computed by enumeration.
:class:`TabulatedPosterior` evaluates it once per distinct (x_t, t), fast enough for samplers' many draws.
"""

from __future__ import annotations

import itertools

import torch

from dlm.errors import InputError
from dlm.processes import DiscreteProcess, MaskedProcess


def all_sequences(vocab_size: int, length: int) -> torch.LongTensor:
    """Every sequence of ``length`` tokens over ``vocab_size`` ids in lexicographic order: [V^L, L]."""
    return torch.tensor(list(itertools.product(range(vocab_size), repeat=length)), dtype=torch.long)


def sequence_index(x: torch.LongTensor, vocab_size: int) -> torch.LongTensor:
    """Index of each sequence x [B, L] in :func:`all_sequences` order."""
    powers = vocab_size ** torch.arange(x.shape[-1] - 1, -1, -1, device=x.device)
    return (x * powers).sum(-1)


def random_toy_distribution(vocab_size: int, length: int, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    """p ∝ exp(scale·z), z ~ N(0, 1) i.i.d. over all V^L sequences (float64): a peaky, correlated toy language."""
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(vocab_size**length, generator=gen, dtype=torch.float64)
    return torch.softmax(logits, dim=0)


class ExactPosterior:
    """The exact clean-token posterior p(x0_i | x_t) of ``process`` for data distribution ``probs`` [V^L]."""

    def __init__(self, process: DiscreteProcess, probs: torch.Tensor, length: int):
        if probs.numel() != process.vocab_size**length:
            raise InputError(f"probs must have V^L = {process.vocab_size ** length} entries, got {probs.numel()}")
        self.process = process
        self.length = length
        self.sequences = all_sequences(process.vocab_size, length)
        self.log_p = torch.log(probs.double().reshape(-1))
        self.calls = 0

    @property
    def time_independent(self) -> bool:
        """True for the masked process: given x_t, which positions are masked carries no information about t
        beyond x_t itself, so p(x0 | x_t) does not depend on t (the ancestral sampler's cache relies on this)."""
        return isinstance(self.process, MaskedProcess)

    def log_likelihood(self, x_t: torch.LongTensor, t: torch.Tensor) -> torch.Tensor:
        """log q_t(x_t | x0) = Σ_j log q_t(x_t^j | x0^j) for every enumerated x0: [B, V^L]."""
        batch, num = x_t.shape[0], self.sequences.shape[0]
        t = torch.as_tensor(t, dtype=torch.float64).expand(batch)
        q = self.process.marginal_probs(self.sequences.repeat(batch, 1), t.repeat_interleave(num)).double()
        picked = q.gather(-1, x_t.repeat_interleave(num, dim=0).unsqueeze(-1)).squeeze(-1)
        return torch.log(picked).sum(-1).view(batch, num)

    def posterior_over_sequences(self, x_t: torch.LongTensor, t: torch.Tensor) -> torch.Tensor:
        """p(x0 | x_t) over the enumerated sequences: [B, V^L]."""
        return torch.softmax(self.log_p + self.log_likelihood(x_t, t), dim=-1)

    def __call__(self, x_t: torch.LongTensor, t: torch.Tensor) -> torch.Tensor:
        """log p(x0_i = v | x_t): [B, L, V] (a denoiser in the DESIGN contract), computed once per distinct (x_t, t)."""
        self.calls += 1
        t = torch.as_tensor(t, dtype=torch.float64).expand(x_t.shape[0])
        times, t_index = torch.unique(t, return_inverse=True)
        key = sequence_index(x_t, self.process.num_states) * len(times) + t_index
        rows, inverse = torch.unique(key, return_inverse=True)
        first = torch.zeros(len(rows), dtype=torch.long).scatter_(0, inverse, torch.arange(len(key)))
        return self._log_marginals(x_t[first], times[t_index[first]])[inverse]

    def _log_marginals(self, x_t: torch.LongTensor, t: torch.Tensor) -> torch.Tensor:
        post = self.posterior_over_sequences(x_t, t)
        onehot = torch.nn.functional.one_hot(self.sequences, self.process.vocab_size).double()  # [N, L, V]
        marg = torch.einsum("bn,nlv->blv", post, onehot)
        return torch.log(marg.clamp_min(1e-300)).float()

    def log_prob(self, x0: torch.LongTensor) -> torch.Tensor:
        """log p(x0) of whole sequences: [B]."""
        return self.log_p[sequence_index(x0, self.process.vocab_size)]


class TabulatedPosterior:
    """``exact`` evaluated once per distinct (x_t, t) row: 20k samples of L = 3 share at most (V+1)^3 states."""

    def __init__(self, exact: ExactPosterior, time_independent: bool | None = None):
        self.exact = exact
        self.calls = 0
        if time_independent is not None:
            self.time_independent = time_independent

    def __call__(self, x_t: torch.LongTensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        t = torch.as_tensor(t).double().expand(x_t.shape[0])
        if getattr(self, "time_independent", False):
            t = torch.full_like(t, 0.5)
        times, t_index = torch.unique(t, return_inverse=True)
        key = sequence_index(x_t, self.exact.process.num_states) * len(times) + t_index
        rows, inverse = torch.unique(key, return_inverse=True)
        states = all_sequences(self.exact.process.num_states, x_t.shape[1])[rows // len(times)]
        return self.exact(states, times[rows % len(times)].float())[inverse]
