"""Output heads: SEDD's log concrete score, and the clean-token posterior log p(x0_i | x_t) from either head.

Shapes: ``logits`` [B, L, N] (N = embedding rows), ``input_ids`` [B, L], ``sigma`` (σ̄) [B]; the posterior is
[B, L, V] over the V real tokens.
"""

from __future__ import annotations

import math

import torch

from dlm.models.configuration_dlm import DLMConfig


def log_expm1(sigma: torch.Tensor) -> torch.Tensor:
    """log(e^σ̄ − 1), with e^σ̄ − 1 taken as expm1(σ̄) below σ̄ = 0.5 and exp(σ̄) − 1 above (SEDD's switch)."""
    return torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1).log()


def sedd_log_score(logits: torch.Tensor, input_ids: torch.LongTensor, sigma: torch.Tensor,
                   scale_by_sigma: bool) -> torch.Tensor:
    """SEDD head (Lou et al. 2024): s = f − log(e^σ̄ − 1) − log(N − 1) if scale_by_sigma, then s_{x_i} = 0
    (the ratio of a position's own token to itself is 1)."""
    if scale_by_sigma:
        logits = logits - log_expm1(sigma)[:, None, None] - math.log(logits.shape[-1] - 1)
    return logits.scatter(-1, input_ids[..., None], 0.0)


def masked_posterior(logits: torch.Tensor, input_ids: torch.LongTensor, mask_id: int) -> torch.Tensor:
    """SUBS (Sahoo et al. 2024): log_softmax over the real tokens (mask logit −∞) where x_t^i = m, and the
    carry-over delta log δ(x0_i = x_t^i) (0 / −∞) where x_t^i is a real token. [B, L, V = mask_id].

    It also turns SEDD's absorbing score into the posterior: at a masked position the score is
    s_y = e^{−σ̄}/(1 − e^{−σ̄})·p(x0_i = y | x_t), so p ∝ exp(s_y + log(e^σ̄ − 1)) = softmax(s)_y, the σ̄
    shift cancelling in the normalisation."""
    masked = input_ids == mask_id
    log_probs = torch.where(masked[..., None], torch.log_softmax(logits[..., :mask_id], dim=-1), -math.inf)
    rows, cols = torch.nonzero(~masked, as_tuple=True)  # carry-over: x0_i = x_t^i where x_t^i is real
    return log_probs.index_put_((rows, cols, input_ids[rows, cols]), log_probs.new_zeros(()))


def uniform_posterior_from_score(log_score: torch.Tensor, input_ids: torch.LongTensor,
                                 sigma: torch.Tensor) -> torch.Tensor:
    """Invert the mean of ratios of the uniform process, r_y = Σ_v p_v q(y|v)/q(x_i|v) with
    q(y|v) = a·δ_{yv} + b, a = e^{−σ̄}, b = (1 − a)/V: since S = Σ_y r_y = Σ_v p_v/q(x_i|v),
    p_y = c_y·(a·δ_{y,x_i} + b) with c_y = (r_y − b·S)/a; clipped at 0 and renormalised for a learned score.

    Homogeneous in r, so the score is shifted by its maximum first; computed in float64 because r_y − b·S
    cancels to a relative precision of about a. Returns log p [B, L, V] in float32."""
    num_tokens = log_score.shape[-1]
    sigma = sigma.double()[:, None, None]
    a = torch.exp(-sigma)
    b = -torch.expm1(-sigma) / num_tokens
    log_score = log_score.double()
    ratios = torch.exp(log_score - log_score.amax(dim=-1, keepdim=True))
    excess = (ratios - b * ratios.sum(dim=-1, keepdim=True)).clamp_min(0.0)
    transition = b.expand_as(excess).contiguous().scatter_add_(-1, input_ids[..., None], a.expand(*input_ids.shape, 1))
    return torch.log_softmax(excess.log() + transition.log(), dim=-1).float()


def clean_token_log_probs(config: DLMConfig, logits: torch.Tensor, input_ids: torch.LongTensor,
                          sigma: torch.Tensor) -> torch.Tensor:
    """The denoiser's log p(x0_i = v | x_t) over the V real tokens for any (head, process) pair: [B, L, V]."""
    if config.process == "masked":
        return masked_posterior(logits, input_ids, config.mask_id)
    if config.head == "score":
        return uniform_posterior_from_score(logits, input_ids, sigma)
    return torch.log_softmax(logits, dim=-1)
