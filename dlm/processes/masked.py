"""The masked (absorbing-state) process of D3PM/SEDD/MDLM: each token jumps to [MASK] at rate σ̄'(t).

q_t(x_t | x0) = α(t)·1[x_t = x0] + (1 − α(t))·1[x_t = m], with α = exp(−σ̄) and m = ``mask_id`` = V.
"""

from __future__ import annotations

import torch

from dlm.errors import InputError
from dlm.processes.base import DiscreteProcess, check_time
from dlm.schedules import Schedule, Time


class MaskedProcess(DiscreteProcess):
    """Absorbing diffusion over V real tokens plus one mask state (``num_states`` = V + 1)."""

    name = "masked"

    def __init__(self, vocab_size: int, schedule: Schedule | str = "loglinear", mask_id: int | None = None):
        super().__init__(vocab_size, schedule)
        self.mask_id = self.vocab_size if mask_id is None else int(mask_id)
        if self.mask_id != self.vocab_size:
            raise InputError(
                f"mask_id must be vocab_size={self.vocab_size} (the last state), got {mask_id}",
                hint="real tokens are 0..V-1 and the mask is V",
            )
        self.num_states = self.vocab_size + 1

    def generator_matrix(self) -> torch.Tensor:
        """Q[i, m] = 1 and Q[i, i] = −1 for real tokens i; the mask row is zero."""
        q = torch.zeros(self.num_states, self.num_states)
        idx = torch.arange(self.vocab_size)
        q[idx, idx] = -1.0
        q[idx, self.mask_id] = 1.0
        return q

    def marginal_probs(self, x0: torch.LongTensor, t: Time) -> torch.Tensor:
        check_time(t)
        self.check_tokens(x0, self.vocab_size)
        alpha = self.alpha(t, x0).unsqueeze(-1)
        probs = alpha * torch.nn.functional.one_hot(x0, self.num_states).to(alpha.dtype)
        probs[..., self.mask_id] = (1 - alpha[..., 0]).expand(x0.shape)
        return probs

    def corrupt(self, x0: torch.LongTensor, t: Time, u: torch.Tensor) -> torch.LongTensor:
        """x_t from uniforms u ~ U[0, 1) per position: masked iff u < 1 − α(t)."""
        check_time(t)
        self.check_tokens(x0, self.vocab_size)
        moved = u < 1 - self.alpha(t, u)
        return torch.where(moved, torch.full_like(x0, self.mask_id), x0)

    def is_masked(self, x: torch.LongTensor) -> torch.Tensor:
        return x == self.mask_id

    def prior_sample(self, shape, generator=None, device=None) -> torch.LongTensor:
        return torch.full(tuple(shape), self.mask_id, dtype=torch.long, device=device)

    def prior_log_prob(self, x: torch.LongTensor) -> torch.Tensor:
        all_masked = (x == self.mask_id).all(dim=-1)
        return torch.where(all_masked, 0.0, -torch.inf).to(torch.get_default_dtype())
