"""Calling a denoiser: anything ``f(x_t [B, L], t [B]) -> [B, L, V]`` clean-token logits (DESIGN contract).

A denoiser may return a tensor or a ``ModelOutput``; for a ``DLMForDiffusion`` the clean-token
log-probabilities are ``x0_logits`` and the raw head (SEDD log-score) is ``logits``. A tensor wider than V
(V + 1 columns, the mask last, as MDLM's SUBS head) is cut to the V real tokens.
"""

from __future__ import annotations

import torch

from dlm.errors import InputError


def _time_vector(t, x_t: torch.Tensor) -> torch.Tensor:
    """t as a [B] tensor on x_t's device."""
    t = torch.as_tensor(t, dtype=torch.float32, device=x_t.device)
    return t.expand(x_t.shape[0]) if t.dim() == 0 else t


def clean_log_probs(denoiser, x_t: torch.LongTensor, t, vocab_size: int) -> torch.Tensor:
    """log p_θ(x0_i = v | x_t) for v < V: [B, L, V], normalised over the V real tokens."""
    out = denoiser(x_t, _time_vector(t, x_t))
    logits = getattr(out, "x0_logits", out)
    if not isinstance(logits, torch.Tensor) or logits.shape[:2] != x_t.shape or logits.shape[-1] < vocab_size:
        raise InputError(
            f"a denoiser must return [B, L, V>={vocab_size}] logits for x_t of shape {tuple(x_t.shape)}",
            hint="see the denoiser contract in the README",
        )
    return torch.log_softmax(logits[..., :vocab_size].float(), dim=-1)


def log_score(score_model, x_t: torch.LongTensor, t, num_states: int) -> torch.Tensor:
    """SEDD's log concrete score log s_θ(x_t)_i,y ≈ log p_t(x^{i→y})/p_t(x): [B, L, num_states]."""
    out = score_model(x_t, _time_vector(t, x_t))
    scores = getattr(out, "logits", out)
    if not isinstance(scores, torch.Tensor) or scores.shape != x_t.shape + (num_states,):
        raise InputError(
            f"a score model must return [B, L, {num_states}] log-ratios for x_t of shape {tuple(x_t.shape)}"
        )
    return scores.float()
