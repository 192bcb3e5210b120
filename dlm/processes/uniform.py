"""The uniform-state process (D3PM uniform, SEDD "uniform" graph, UDLM/DUO): tokens resample uniformly.

At rate σ̄'(t) a token is redrawn uniformly from all V tokens (itself included), so
q_t(x_t | x0) = α(t)·1[x_t = x0] + (1 − α(t))/V with α = exp(−σ̄); the generator is Q = J/V − I.
"""

from __future__ import annotations

import math

import torch

from dlm.processes.base import DiscreteProcess, check_time
from dlm.schedules import Time


class UniformProcess(DiscreteProcess):
    """Uniform-state diffusion over V tokens (``num_states`` = V, no mask)."""

    name = "uniform"

    def __init__(self, vocab_size: int, schedule="loglinear"):
        super().__init__(vocab_size, schedule)
        self.num_states = self.vocab_size
        self.mask_id = None

    def generator_matrix(self) -> torch.Tensor:
        """Q = J/V − I: jump to any token at rate 1/V."""
        v = self.vocab_size
        return torch.full((v, v), 1.0 / v) - torch.eye(v)

    def marginal_probs(self, x0: torch.LongTensor, t: Time) -> torch.Tensor:
        check_time(t)
        self.check_tokens(x0)
        alpha = self.alpha(t, x0).unsqueeze(-1)
        onehot = torch.nn.functional.one_hot(x0, self.num_states).to(alpha.dtype)
        return alpha * onehot + (1 - alpha) / self.vocab_size

    def corrupt(self, x0: torch.LongTensor, t: Time, u: torch.Tensor) -> torch.LongTensor:
        """x_t from uniforms u ~ U[0, 1) per position: resampled iff u < 1 − α(t), and then to
        floor(V·u/(1 − α)), which is uniform over the V tokens given the move."""
        check_time(t)
        self.check_tokens(x0)
        move_prob = 1 - self.alpha(t, u)
        moved = u < move_prob
        token = torch.floor(u / move_prob.clamp_min(1e-300) * self.vocab_size).long().clamp(0, self.vocab_size - 1)
        return torch.where(moved, token, x0)

    def prior_sample(self, shape, generator=None, device=None) -> torch.LongTensor:
        return torch.randint(0, self.vocab_size, tuple(shape), generator=generator, device=device)

    def prior_log_prob(self, x: torch.LongTensor) -> torch.Tensor:
        self.check_tokens(x)
        return torch.full(x.shape[:1], -x.shape[-1] * math.log(self.vocab_size), dtype=torch.get_default_dtype())
