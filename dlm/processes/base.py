"""The interface every discrete forward process (a CTMC on tokens) implements.

A process acts independently on each position of a sequence of token ids in [0, V): at time t a clean
token x0 has become x_t with probability q_t(x_t | x0) = ``marginal_probs(x0, t)``, the solution of the
Kolmogorov forward equation with generator σ̄'(t)·Q, i.e. q_t(·|x0) = onehot(x0)·exp(σ̄(t)·Q).
"""

from __future__ import annotations

import torch

from dlm.errors import InputError
from dlm.schedules import Schedule, Time, get_schedule


class DiscreteProcess:
    """Base class: a forward process over ``num_states`` states driven by a noise schedule."""

    name = "base"

    def __init__(self, vocab_size: int, schedule: Schedule | str = "loglinear"):
        if int(vocab_size) < 2:
            raise InputError(f"vocab_size must be at least 2, got {vocab_size}")
        self.vocab_size = int(vocab_size)
        self.schedule = get_schedule(schedule) if isinstance(schedule, str) else schedule

    # --- what subclasses define -------------------------------------------------------------------
    num_states: int

    def generator_matrix(self) -> torch.Tensor:
        """Q: the time-homogeneous part of the forward generator, [S, S], rows summing to 0."""
        raise NotImplementedError

    def marginal_probs(self, x0: torch.LongTensor, t: Time) -> torch.Tensor:
        """q_t(· | x0): [..., num_states] for clean tokens x0 [B, L] (or any shape led by B)."""
        raise NotImplementedError

    def corrupt(self, x0: torch.LongTensor, t: Time, u: torch.Tensor) -> torch.LongTensor:
        """x_t as a deterministic function of x0 and one uniform u ∈ [0, 1) per position (float64)."""
        raise NotImplementedError

    def prior_sample(self, shape, generator=None, device=None) -> torch.LongTensor:
        """A draw from the stationary (t = 1 limit) distribution."""
        raise NotImplementedError

    def prior_log_prob(self, x: torch.LongTensor) -> torch.Tensor:
        """log of the stationary distribution of whole sequences x [B, L]: [B]."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------------
    def sample_xt(self, x0: torch.LongTensor, t: Time, generator: torch.Generator | None = None) -> torch.LongTensor:
        """x_t ~ q_t(· | x0), independently per position."""
        return self.corrupt(x0, t, self.draw_uniforms(x0.shape, generator, x0.device))

    @staticmethod
    def draw_uniforms(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """U[0, 1) float64 noise on the generator's device, moved to ``device``."""
        gen_device = generator.device if generator is not None else device
        return torch.rand(tuple(shape), generator=generator, device=gen_device, dtype=torch.float64).to(device)

    def rate_matrix(self, t: Time) -> torch.Tensor:
        """The forward generator at time t, σ̄'(t)·Q, dense [S, S] (for small vocabularies and tests)."""
        rate = self.schedule.rate(t).to(torch.get_default_dtype())
        return rate.reshape(rate.shape + (1, 1)) * self.generator_matrix()

    def alpha(self, t: Time, like: torch.Tensor) -> torch.Tensor:
        """α(t) = exp(−σ̄(t)) shaped to broadcast against ``like`` [B, ...] (t a scalar or [B])."""
        alpha = self.schedule.alpha(t)
        dtype = torch.promote_types(like.dtype if like.is_floating_point() else torch.get_default_dtype(),
                                    alpha.dtype if isinstance(t, torch.Tensor) else like.dtype)
        alpha = alpha.to(device=like.device, dtype=dtype)
        if alpha.dim() == 0:
            return alpha
        if alpha.dim() != 1 or alpha.shape[0] != like.shape[0]:
            raise InputError(f"t must be a scalar or have shape [B]={like.shape[0]}, got {tuple(alpha.shape)}")
        return alpha.reshape((-1,) + (1,) * (like.dim() - 1))

    def check_tokens(self, x: torch.Tensor, num_states: int | None = None) -> None:
        """Raise InputError unless x is an integer tensor with ids in [0, num_states)."""
        bound = self.num_states if num_states is None else num_states
        if x.is_floating_point():
            raise InputError(f"token ids must be integers, got dtype {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= bound):
            raise InputError(
                f"token ids must lie in [0, {bound}), got values in [{int(x.min())}, {int(x.max())}]",
                hint="check the tokenizer and the model's vocab_size",
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, schedule={self.schedule})"


def check_time(t: Time) -> None:
    """Raise InputError unless every t lies in [0, 1]."""
    tensor = t if isinstance(t, torch.Tensor) else torch.tensor(float(t))
    if tensor.numel() and (bool((tensor < 0).any()) or bool((tensor > 1).any()) or bool(tensor.isnan().any())):
        raise InputError("diffusion time t must lie in [0, 1]", hint="t=0 is data, t=1 is the prior")
