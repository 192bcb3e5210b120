"""Training losses and ELBOs of discrete diffusion, in nats per sequence.

- :func:`nelbo`: the continuous-time negative ELBO. Masked process: MDLM's masked-KL (SUBS) form
  ∫ σ̄'(t)/(e^{σ̄(t)}−1) Σ_{i: x_t^i = m} −log p_θ(x0_i | x_t) dt (Sahoo et al. 2024, eq. 10).
  Uniform process: the CTMC ELBO in score-entropy form with the exact "mean of ratios" from the clean-token
  posterior plus the prior term KL(q_1(·|x0) ‖ uniform) (Lou et al. 2024, Thm 3.6; UDLM/DUO).
- :func:`score_entropy`: SEDD's denoising score entropy σ̄'(t) Σ_i Σ_{y≠x_t^i} Q(y, x_t^i)·
  [s_y − r_y log s_y + r_y(log r_y − 1)], r_y = q_t(y|x0)/q_t(x_t|x0) (Lou et al. 2024, eq. 8), either from a
  log-score model (SEDD parameterisation) or with ratios derived from a clean-token posterior.

The masked prior term KL(q_1(·|x0) ‖ δ_m) is infinite when α(1) > 0 (log-linear schedule: α(1) = ε), so the
masked NELBO integrates t over (0, 1] and leaves it out, as MDLM does; the missing mass is about
ε·Σ_i H(x0_i) nats.
"""

from __future__ import annotations

import math

import torch

from dlm.denoiser import clean_log_probs, log_score
from dlm.errors import ConfigError, InputError
from dlm.processes import DiscreteProcess, MaskedProcess, UniformProcess


def sample_times(batch: int, num_t: int = 1, antithetic: bool = True, t_min: float = 0.0,
                 generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Diffusion times [num_t, B] in (t_min, 1]: i.i.d. uniform, or one stratified (antithetic) sweep
    u_k = (u + k/n) mod 1 over all n = B·num_t draws, k = j·B + b (MDLM's low-discrepancy sampler)."""
    n = batch * num_t
    if antithetic:
        offset = DiscreteProcess.draw_uniforms((1,), generator, device)
        u = (offset + torch.arange(n, dtype=torch.float64, device=device) / n) % 1.0
    else:
        u = DiscreteProcess.draw_uniforms((n,), generator, device)
    t = t_min + (1 - t_min) * (1 - u)
    return t.view(num_t, batch).to(device=device, dtype=torch.float32)


def _expm1(sigma: torch.Tensor) -> torch.Tensor:
    """e^{σ̄} − 1 = (1 − α)/α, shaped [B, 1]."""
    return torch.expm1(torch.as_tensor(sigma)).reshape(-1, 1)


def masked_nelbo_terms(log_probs: torch.Tensor, process: MaskedProcess, x_t: torch.LongTensor,
                       x0: torch.LongTensor, sigma: torch.Tensor, dsigma: torch.Tensor) -> torch.Tensor:
    """Per-token MDLM integrand σ̄'(t)/(e^{σ̄}−1)·(−log p_θ(x0_i | x_t)) at masked positions, 0 elsewhere: [B, L]."""
    masked = x_t == process.mask_id
    weight = (torch.as_tensor(dsigma).reshape(-1, 1) / _expm1(sigma)).to(log_probs.dtype)
    weight = torch.where(masked, weight, 0.0)
    nll = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    return weight * torch.where(masked, nll, 0.0)


def masked_count_nelbo_terms(log_probs: torch.Tensor, process: MaskedProcess, x_t: torch.LongTensor,
                             x0: torch.LongTensor, maskable: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token masked NELBO terms with the count weight: (n+1)/k · (−log p_θ(x0_i | x_t)) at the k masked of a
    row's n maskable positions, 0 elsewhere: [B, L].

    If each maskable position is masked independently with probability u ~ U(0, 1), then k is uniform on
    {0, …, n} and, given k, the masked set is a uniform k-subset; the any-order form of the masked NELBO,
    Σ_{k=1}^{n} (1/k)·E_{|M|=k} Σ_{i∈M} −log p_θ(x0_i | x_M), makes the row sum an unbiased estimate of it.
    Against the 1/u time weight of :func:`masked_nelbo_terms` the noisy 1/u spike is replaced by the count the
    row actually drew, a far lower-variance gradient (the same estimator as ``dlm eval``'s "count")."""
    masked = x_t == process.mask_id
    n = masked.new_ones(masked.shape) if maskable is None else maskable.bool()
    weight = (n.sum(-1) + 1).to(log_probs.dtype) / masked.sum(-1).clamp_min(1).to(log_probs.dtype)
    nll = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    return torch.where(masked, weight.unsqueeze(-1) * nll, 0.0)


def absorbing_score_entropy_terms(log_score: torch.Tensor, process: MaskedProcess, x_t: torch.LongTensor,
                                  x0: torch.LongTensor, sigma: torch.Tensor) -> torch.Tensor:
    """SEDD absorbing DSE per token (without σ̄'): at x_t = m, Σ_{y<V} e^{s_y} − r s_{x0} + r(log r − 1)
    with r = 1/(e^{σ̄}−1); 0 at unmasked positions. [B, L]."""
    masked = x_t == process.mask_id
    ratio = 1.0 / _expm1(sigma)
    const = (ratio * (torch.log(ratio) - 1)).to(log_score.dtype)
    ratio = ratio.to(log_score.dtype)
    pos = torch.logsumexp(log_score[..., : process.vocab_size], dim=-1).exp()
    neg = ratio * log_score.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    return torch.where(masked, pos - neg + const, 0.0)


def uniform_score_entropy_terms(log_score: torch.Tensor, process: UniformProcess, x_t: torch.LongTensor,
                                x0: torch.LongTensor, sigma: torch.Tensor) -> torch.Tensor:
    """SEDD uniform DSE per token (without σ̄'), weights Q(y, x) = 1/V for y ≠ x. With ρ = 1 − V/(e^σ̄−1+V):
    if x_t = x0 every r_y = ρ; else r_{x0} = 1/ρ and the other r_y = 1. [B, L].

    The σ̄-only scalars are computed in σ̄'s dtype, as upstream writes them: in float32 ρ loses ~1e-4 relative
    precision at small σ̄ (this reproduces SEDD's numbers); pass float64 σ̄ for accurate ELBOs."""
    v = process.vocab_size
    rho = 1 - v / (_expm1(sigma) + v)
    same_const = ((v - 1) / v * rho * (torch.log(rho) - 1)).to(log_score.dtype)
    moved_const = (((-torch.log(rho) - 1) / rho - (v - 2)) / v).to(log_score.dtype)
    moved_weight = (1 / (rho * v)).to(log_score.dtype)  # (r_{x0} − 1)/V + 1/V = 1/(ρV)
    rho = rho.to(log_score.dtype)
    own = log_score.gather(-1, x_t.unsqueeze(-1)).squeeze(-1)
    at_x0 = log_score.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    pos = (torch.logsumexp(log_score, dim=-1).exp() - own.exp()) / v
    sum_others = (log_score.sum(-1) - own) / v
    same = x_t == x0
    neg = torch.where(same, rho * sum_others, sum_others - at_x0 / v + moved_weight * at_x0)
    return pos - neg + torch.where(same, same_const, moved_const)


def score_entropy_terms(log_score: torch.Tensor, process: DiscreteProcess, x_t: torch.LongTensor,
                        x0: torch.LongTensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-token denoising score entropy (without the σ̄'(t) factor) for the process's graph: [B, L]."""
    if isinstance(process, MaskedProcess):
        return absorbing_score_entropy_terms(log_score, process, x_t, x0, sigma)
    if isinstance(process, UniformProcess):
        return uniform_score_entropy_terms(log_score, process, x_t, x0, sigma)
    raise ConfigError(f"no score entropy for process {type(process).__name__}")


def posterior_log_ratios(log_probs: torch.Tensor, process: DiscreteProcess, x_t: torch.LongTensor,
                         sigma: torch.Tensor) -> torch.Tensor:
    """log p_t(x^{i→y})/p_t(x) from a clean-token posterior by the exact mean of ratios
    Σ_v p(x0_i=v|x_t) q_t(y|v)/q_t(x_i|v): [B, L, num_states].
    Masked (at x_i = m): p_y/(e^σ̄−1). Uniform: for y ≠ x_i, (V/(e^σ̄−1))·p_y + 1 − p_{x_i}·α/(α+(1−α)/V); 1 at y = x_i.
    Entries the process never uses (the mask column, unmasked positions) are left as they fall."""
    log_esigm1 = torch.log(_expm1(sigma)).unsqueeze(-1).to(log_probs.dtype)
    if isinstance(process, MaskedProcess):
        mask_col = torch.zeros_like(log_probs[..., :1])
        return torch.cat([log_probs - log_esigm1, mask_col], dim=-1)
    if isinstance(process, UniformProcess):
        v = process.vocab_size
        probs = log_probs.exp()
        p_own = probs.gather(-1, x_t.unsqueeze(-1))
        keep = 1.0 / (1.0 + torch.exp(log_esigm1) / v)  # α/(α + (1−α)/V) = 1/(1 + (e^σ̄−1)/V)
        ratios = probs * (v / torch.exp(log_esigm1)) + 1 - p_own * keep
        ratios = ratios.scatter(-1, x_t.unsqueeze(-1), 1.0)
        return torch.log(ratios)
    raise ConfigError(f"no posterior ratios for process {type(process).__name__}")


def uniform_prior_kl(process: UniformProcess, seq_len: int) -> torch.Tensor:
    """KL(q_1(·|x0) ‖ uniform) of a whole sequence: L·[q_hi log(V q_hi) + (V−1) q_lo log(V q_lo)]."""
    v = process.vocab_size
    alpha = process.schedule.alpha(1.0).double()
    q_lo = (1 - alpha) / v
    q_hi = alpha + q_lo
    kl = q_hi * torch.log(v * q_hi) + (v - 1) * torch.xlogy(q_lo, v * q_lo)
    return seq_len * kl.float()


def nelbo_terms_at(denoiser, process: DiscreteProcess, x0: torch.LongTensor, x_t: torch.LongTensor,
                   t: torch.Tensor) -> torch.Tensor:
    """Per-token NELBO integrand at given (x_t, t) [B, L]; for the uniform process it includes KL(q_1 ‖ U)/L."""
    t64 = t.double()
    sigma, dsigma = process.schedule.total(t64), process.schedule.rate(t64)
    log_probs = clean_log_probs(denoiser, x_t, t, process.vocab_size)
    if isinstance(process, MaskedProcess):
        return masked_nelbo_terms(log_probs, process, x_t, x0, sigma, dsigma)
    ratios = posterior_log_ratios(log_probs, process, x_t, sigma)
    terms = dsigma.reshape(-1, 1).to(ratios.dtype) * score_entropy_terms(ratios, process, x_t, x0, sigma)
    return terms + uniform_prior_kl(process, 1).to(terms.device)


def score_entropy_at(model, process: DiscreteProcess, x0: torch.LongTensor, x_t: torch.LongTensor, t: torch.Tensor,
                     parameterization: str = "score") -> torch.Tensor:
    """Per-token σ̄'(t)·DSE at given (x_t, t) [B, L], from a log-score model or a denoiser's posterior ratios."""
    if parameterization not in ("score", "posterior"):
        raise ConfigError(f"unknown parameterization {parameterization!r}", hint="use 'score' or 'posterior'")
    t64 = t.double()
    sigma, dsigma = process.schedule.total(t64), process.schedule.rate(t64)
    if parameterization == "score":
        scores = log_score(model, x_t, t, process.num_states)
    else:
        scores = posterior_log_ratios(clean_log_probs(model, x_t, t, process.vocab_size), process, x_t, sigma)
    return dsigma.reshape(-1, 1).to(scores.dtype) * score_entropy_terms(scores, process, x_t, x0, sigma)


def _monte_carlo(terms_at, process: DiscreteProcess, x0: torch.LongTensor, num_t: int, antithetic: bool,
                 generator: torch.Generator | None, t_min: float) -> torch.Tensor:
    """(1/num_t) Σ_j Σ_i terms_at(x_t^(j), t_j)_i with t_j from :func:`sample_times` and x_t^(j) ~ q_{t_j}(·|x0): [B]."""
    if x0.dim() != 2:
        raise InputError(f"x0 must have shape [B, L], got {tuple(x0.shape)}")
    process.check_tokens(x0, process.vocab_size)
    times = sample_times(x0.shape[0], num_t, antithetic, t_min, generator, x0.device)
    total = torch.zeros(x0.shape[0], device=x0.device)
    for t in times:
        total = total + terms_at(x0, process.sample_xt(x0, t, generator=generator), t).sum(-1)
    return total / num_t


def nelbo(denoiser, process: DiscreteProcess, x0: torch.LongTensor, num_t: int = 1, antithetic: bool = True,
          generator: torch.Generator | None = None, t_min: float = 0.0) -> torch.Tensor:
    """Monte-Carlo estimate of the continuous-time negative ELBO of each sequence, nats: [B] (see module doc)."""
    terms_at = lambda x0_, x_t, t: nelbo_terms_at(denoiser, process, x0_, x_t, t)  # noqa: E731
    return _monte_carlo(terms_at, process, x0, num_t, antithetic, generator, t_min)


def score_entropy(model, process: DiscreteProcess, x0: torch.LongTensor, num_t: int = 1, antithetic: bool = True,
                  parameterization: str = "score", generator: torch.Generator | None = None,
                  t_min: float = 0.0) -> torch.Tensor:
    """Monte-Carlo denoising score entropy ∫ σ̄'(t) Σ_i DSE_i dt per sequence, nats: [B].

    ``parameterization="score"``: ``model(x_t, t)`` returns SEDD log-scores [B, L, num_states] (``.logits``
    of a score-head model); ``"posterior"``: ``model`` is a denoiser and the ratios are its mean of ratios."""
    if parameterization not in ("score", "posterior"):
        raise ConfigError(f"unknown parameterization {parameterization!r}", hint="use 'score' or 'posterior'")
    terms_at = lambda x0_, x_t, t: score_entropy_at(model, process, x0_, x_t, t, parameterization)  # noqa: E731
    return _monte_carlo(terms_at, process, x0, num_t, antithetic, generator, t_min)


def bits_per_token(nats_per_sequence: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Convert a per-sequence NELBO in nats to bits per token."""
    return nats_per_sequence / (seq_len * math.log(2))
