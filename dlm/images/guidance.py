"""Prompted scores for the samplers of `dlm.continuous`, and classifier-free guidance (Ho & Salimans, 2021).

A *conditional score* is ``score(x, t, condition, drop)``; :func:`guided_score` binds a prompt and a guidance weight
w ≥ 0 into the plain ``score(x, t)`` every sampler and likelihood of `dlm.continuous` takes:

    s̃ = s_u + w (s_c − s_u) = (1 − w) s_u + w s_c,

with s_u the score under the null prompt and s_c under the prompt; w = 0 is unconditional, w = 1 conditional
sampling, w > 1 sharpens towards the prompt. Both branches share one network call on the stacked batch [x; x].
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from dlm.continuous.sde import ScoreFn, per_sample
from dlm.errors import InputError
from dlm.images.conditioning import TextCondition

ConditionalScore = Callable[[Tensor, Tensor, "TextCondition | None", "Tensor | None"], Tensor]


def conditional_score(model) -> ConditionalScore:
    """(x, t, condition, drop) ↦ ∇log p_t(x | prompt): −ε̂/σ(t) for an ε-predicting U-Net (else its output)."""
    sde = model.config.build_sde()

    def score(x: Tensor, t: Tensor, condition: TextCondition | None, drop: Tensor | None = None) -> Tensor:
        out = model(x, t, condition, drop)
        if model.config.prediction == "score":
            return out
        return -out / per_sample(sde.marginal(t)[1], x)

    return score


def check_guidance(w: float) -> None:
    """The guidance weight must be a finite number ≥ 0."""
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
        raise InputError(f"guidance must be a finite number >= 0, got {w!r}",
                         hint="0 is unconditional, 1 conditional, larger values follow the prompt more closely")


def guided_score(score: ConditionalScore, condition: TextCondition | None, w: float) -> ScoreFn:
    """s̃(x, t) = (1 − w)·s(x, t | ∅) + w·s(x, t | prompt); one call per step for w ∈ {0, 1} or no prompt."""
    check_guidance(w)
    if condition is None:
        return lambda x, t: score(x, t, None, None)
    if w == 0:
        return lambda x, t: score(x, t, condition, torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
    if w == 1:
        return lambda x, t: score(x, t, condition, None)

    def guided(x: Tensor, t: Tensor) -> Tensor:
        batch = x.shape[0]
        drop = torch.arange(2 * batch, device=x.device) < batch
        s_u, s_c = score(torch.cat([x, x]), torch.cat([t, t]), condition.repeat(2), drop).chunk(2)
        return (1.0 - w) * s_u + w * s_c

    return guided
