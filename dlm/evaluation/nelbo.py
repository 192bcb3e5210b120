"""Validation NELBO of a diffusion LM: bits per token and the perplexity bound on held-out blocks.

The continuous-time NELBO of a sequence is an integral over diffusion time, −log p(x0) ≤ ∫₀¹ f(t) dt with
f(t) = E_{x_t ~ q_t(·|x0)} Σ_i ℓ_i(x_t, t) (:func:`dlm.losses.nelbo_terms_at`; MDLM eq. 10 for the masked
process, the uniform CTMC ELBO otherwise). It is estimated per sequence with ``num_t`` times, one in each of
``num_t`` equal strata of [0, 1] shifted by one uniform per sequence (systematic sampling: unbiased, and its
variance falls as 1/num_t² for a smooth f instead of 1/num_t), and one x_t per time.

A model with a SEDD score head is scored by its denoising score entropy (its own ELBO; plus KL(q₁ ‖ U) for the
uniform graph). Perplexity bound: exp(nats/token) ≥ the model's true perplexity.

``time_sampling="count"`` (masked process, clean-token posterior) is the low-variance estimator. Writing the
masked NELBO in u = 1 − α and conditioning on the number k of masked tokens,
∫₀¹ (1/u) E_{M ~ Bern(u)^L} Σ_{i∈M} ℓ_i du = Σ_{k=1}^{L} (1/k)·E_{|M|=k} Σ_{i∈M} −log p_θ(x0_i | x_M), because
∫₀¹ u^{k−1}(1−u)^{L−k} C(L,k) du = 1/k (the any-order form of Ou et al. 2024 and Shi et al. 2024). So k is
stratified over 1..L with weight L/k, M is a uniform k-subset, and the model sees t with 1 − α(t) = u,
u ~ Beta(k, L − k + 1) (the exact conditional of u given k, which only matters for time-conditioned models).
The 1/u spike of the time integral is gone: each term is L × the mean NLL of the k masked tokens. It integrates u
over all of [0, 1] (ε → 0, where the prior term vanishes): the bound of the model read as time-independent beyond
α(1) = ε; for the log-linear schedule the two differ by about ε·L·log V. ``"auto"`` (the default) takes
"count" wherever it applies and "uniform" (stratified t) elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from dlm.denoiser import clean_log_probs
from dlm.errors import ConfigError, InputError
from dlm.losses import nelbo_terms_at, score_entropy_at, uniform_prior_kl
from dlm.processes import DiscreteProcess, MaskedProcess, UniformProcess

TIME_SAMPLINGS = ("auto", "count", "uniform")


@dataclass
class NELBOResult:
    """Held-out figures: nats and bits per token, exp(nats/token) (a bound for diffusion models, exact for AR
    models), the standard error of nats/token over sequences, and what was averaged."""

    nats_per_token: float
    bits_per_token: float
    ppl_bound: float
    stderr_nats_per_token: float
    num_sequences: int
    num_tokens: int
    num_t: int
    time_sampling: str
    exact: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def stratified_times(batch: int, num_t: int, generator: torch.Generator | None = None,
                     device=None) -> torch.Tensor:
    """Times [num_t, B] float64, t_k = 1 − (k + v_b)/num_t with v_b ~ U[0, 1) per sequence: one in each of
    num_t equal strata of (0, 1], so that mean_k f(t_k) is unbiased for ∫₀¹ f(t) dt."""
    if isinstance(num_t, bool) or not isinstance(num_t, int) or num_t < 1:
        raise InputError(f"num_t must be a positive integer, got {num_t!r}")
    v = DiscreteProcess.draw_uniforms((batch,), generator, device)
    k = torch.arange(num_t, dtype=torch.float64, device=v.device).unsqueeze(-1)
    return 1 - (k + v) / num_t


def elbo_terms(model, process: DiscreteProcess, x0: torch.LongTensor, x_t: torch.LongTensor, t: torch.Tensor,
               parameterization: str = "posterior") -> torch.Tensor:
    """Per-token ELBO integrand [B, L] at (x_t, t): the NELBO terms of a clean-token posterior, or σ̄'·DSE of a
    SEDD score model (+ KL(q₁ ‖ U)/L for the uniform graph)."""
    if parameterization == "posterior":
        return nelbo_terms_at(model, process, x0, x_t, t)
    terms = score_entropy_at(model, process, x0, x_t, t, "score")
    if isinstance(process, UniformProcess):
        terms = terms + uniform_prior_kl(process, 1).to(terms.device)
    return terms


def count_terms(denoiser, process: MaskedProcess, x0: torch.LongTensor, k: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(L/k)·Σ_{i∈M} −log p_θ(x0_i | x_M) per sequence [B] for a uniform k-subset M of masked positions (k [B])."""
    batch, length = x0.shape
    ranks = DiscreteProcess.draw_uniforms(x0.shape, generator, x0.device).argsort(-1).argsort(-1)
    masked = ranks < k.unsqueeze(-1)
    x_t = torch.where(masked, torch.full_like(x0, process.mask_id), x0)
    u = _beta(k.double(), (length - k + 1).double(), generator)
    schedule = process.schedule
    alpha_min = float(schedule.alpha(1.0))
    t = schedule.time_at_alpha((1 - u).clamp_min(alpha_min)).double().clamp(1e-12, 1.0)
    log_probs = clean_log_probs(denoiser, x_t, t.float(), process.vocab_size).double()
    nll = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    return (length / k.double()) * torch.where(masked, nll, 0.0).sum(-1)


def _beta(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Beta(a, b) draws for integer a, b ≥ 1 from a generator: the a-th smallest of a + b − 1 uniforms."""
    n = int((a + b - 1).max())
    u = DiscreteProcess.draw_uniforms((a.shape[0], n), generator, a.device)
    valid = torch.arange(n, device=a.device) < (a + b - 1).unsqueeze(-1)
    ordered = torch.where(valid, u, 2.0).sort(-1).values
    return ordered.gather(-1, (a.long() - 1).unsqueeze(-1)).squeeze(-1)


def resolve_time_sampling(time_sampling: str, process: DiscreteProcess, parameterization: str = "posterior",
                          weighted: bool = False) -> str:
    """``"auto"``: "count" where it applies (masked process, clean-token posterior, unweighted tokens), else
    "uniform"; other names are checked and returned."""
    if time_sampling not in TIME_SAMPLINGS:
        raise ConfigError(f"unknown time_sampling {time_sampling!r}", hint=f"choose one of {', '.join(TIME_SAMPLINGS)}")
    if time_sampling != "auto":
        return time_sampling
    count = isinstance(process, MaskedProcess) and parameterization == "posterior" and not weighted
    return "count" if count else "uniform"


@torch.no_grad()
def nelbo_estimate(denoiser, process: DiscreteProcess, x0: torch.LongTensor, num_t: int = 32,
                   time_sampling: str = "auto", generator: torch.Generator | None = None,
                   parameterization: str = "posterior", weights: torch.Tensor | None = None) -> torch.Tensor:
    """Stratified Monte-Carlo NELBO of each sequence x0 [B, L], nats: [B] (``weights`` [B, L] weigh tokens)."""
    if x0.dim() != 2:
        raise InputError(f"x0 must have shape [B, L], got {tuple(x0.shape)}")
    if parameterization not in ("posterior", "score"):
        raise ConfigError(f"unknown parameterization {parameterization!r}", hint="use 'posterior' or 'score'")
    process.check_tokens(x0, process.vocab_size)
    time_sampling = resolve_time_sampling(time_sampling, process, parameterization, weights is not None)
    if time_sampling == "count":
        if not isinstance(process, MaskedProcess) or parameterization != "posterior" or weights is not None:
            raise ConfigError("time_sampling='count' needs a masked process, a clean-token posterior and unweighted "
                              "tokens", hint="use 'uniform'")
        strata = stratified_times(x0.shape[0], num_t, generator, x0.device)
        total = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
        for a in strata:  # a in (0, 1] -> k = ceil(a·L) in 1..L, uniform over the strata
            k = torch.ceil(a * x0.shape[1]).long().clamp(1, x0.shape[1])
            total += count_terms(denoiser, process, x0, k, generator)
        return (total / num_t).float()
    total = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
    for t in stratified_times(x0.shape[0], num_t, generator, x0.device):
        u = DiscreteProcess.draw_uniforms(x0.shape, generator, x0.device)
        terms = elbo_terms(denoiser, process, x0, process.corrupt(x0, t, u), t.float(), parameterization).double()
        if weights is not None:
            terms = terms * weights
        total += terms.sum(-1)
    return (total / num_t).float()


def _rows(blocks, max_blocks: int | None) -> tuple[torch.LongTensor, torch.Tensor | None]:
    """(input_ids [N, L], token weights [N, L] or None) of a tensor or a block dataset."""
    if isinstance(blocks, torch.Tensor):
        ids, weights = blocks, None
    else:
        if "input_ids" not in getattr(blocks, "column_names", []):
            raise InputError("blocks must be a LongTensor [N, L] or a dataset with an input_ids column")
        data = blocks.with_format("torch")[: len(blocks) if max_blocks is None else min(max_blocks, len(blocks))]
        ids = data["input_ids"]
        mask = data.get("attention_mask")
        weights = None if mask is None else mask.double()
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.is_floating_point():
        raise InputError("blocks must be token ids of shape [num_blocks, length]")
    if max_blocks is not None:
        ids = ids[:max_blocks]
        weights = None if weights is None else weights[:max_blocks]
    if ids.shape[0] == 0:
        raise InputError("no blocks to evaluate")
    return ids.long(), weights


def _result(per_seq_nats: torch.Tensor, tokens_per_seq: torch.Tensor, num_t: int, time_sampling: str,
            exact: bool) -> NELBOResult:
    nats, tokens = per_seq_nats.double(), tokens_per_seq.double()
    per_token = float(nats.sum() / tokens.sum())
    ratio = nats / tokens.clamp_min(1)
    stderr = float(ratio.std() / math.sqrt(len(ratio))) if len(ratio) > 1 else float("nan")
    return NELBOResult(per_token, per_token / math.log(2), math.exp(min(per_token, 700.0)), stderr,
                       len(nats), int(tokens.sum()), num_t, time_sampling, exact)


def _setup(model, process: DiscreteProcess | None):
    """(process or None for AR, parameterization, device, exact) of a model or denoiser to score."""
    from dlm.training.ar import is_ar_model

    exact = is_ar_model(model)
    config = getattr(model, "config", None)
    if not exact and process is None:
        if getattr(config, "model_type", None) != "dlm":
            raise InputError("pass the forward process of this denoiser", hint="validation_nelbo(f, blocks, process=...)")
        from dlm.processes import process_from_config

        process = process_from_config(config)
    parameterization = "score" if getattr(config, "head", None) == "score" else "posterior"
    parameters = getattr(model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    if hasattr(model, "eval"):
        model.eval()
    return process, parameterization, (first.device if first is not None else torch.device("cpu")), exact


@torch.no_grad()
def _sequence_nats(model, ids: torch.LongTensor, weights: torch.Tensor | None, setup, num_t: int,
                   time_sampling: str, batch_size: int, generator: torch.Generator,
                   progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(nats [N], scored tokens [N]) of each row of ``ids``, in batches."""
    from dlm.training.ar import ar_token_nll

    process, parameterization, device, exact = setup
    nats, tokens = [], []
    starts = range(0, ids.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="nelbo", dynamic_ncols=True)
    for start in starts:
        x0 = ids[start:start + batch_size].to(device)
        w = None if weights is None else weights[start:start + batch_size].to(device)
        if exact:
            terms = ar_token_nll(model, x0).double()
            nats.append((terms if w is None else terms * w).sum(-1).cpu())
        else:
            nats.append(nelbo_estimate(model, process, x0, num_t, time_sampling, generator, parameterization, w).cpu())
        tokens.append(torch.full((x0.shape[0],), x0.shape[1], dtype=torch.float64) if w is None else w.sum(-1).cpu())
    return torch.cat(nats), torch.cat(tokens)


@torch.no_grad()
def validation_nelbo(model, blocks, process: DiscreteProcess | None = None, num_t: int = 32,
                     time_sampling: str = "auto", batch_size: int = 16, max_blocks: int | None = None,
                     seed: int = 0, progress: bool = False) -> NELBOResult:
    """NELBO of ``model`` on held-out ``blocks`` (a LongTensor [N, L] or a block dataset; an attention_mask column
    weighs tokens). ``model``: a ``DLMForDiffusion`` (its own process and head), any denoiser with ``process``,
    or an AR baseline (:func:`dlm.training.ar.is_ar_model`), scored exactly by its next-token NLL."""
    ids, weights = _rows(blocks, max_blocks)
    setup = _setup(model, process)
    generator = torch.Generator(setup[2]).manual_seed(seed)
    nats, tokens = _sequence_nats(model, ids, weights, setup, num_t, time_sampling, batch_size, generator, progress)
    exact = setup[3]
    used = "exact" if exact else resolve_time_sampling(time_sampling, setup[0], setup[1], weights is not None)
    return _result(nats, tokens, 1 if exact else num_t, used, exact)


@torch.no_grad()
def score_texts(texts: list[str], model=None, num_t: int = 32, time_sampling: str = "auto", seed: int = 0,
                device: str = "cpu", batch_size: int = 16) -> NELBOResult:
    """NELBO of each text as one sequence (its tokens, no special tokens, cut to the model's context) under a
    model directory (None: the shipped model) or a loaded (model, tokenizer) pair; pooled over all tokens."""
    from dlm.evaluation.samples import load_for_eval

    if isinstance(texts, str) or not texts:
        raise InputError("pass a non-empty list of texts")
    if isinstance(model, tuple):
        model, tokenizer = model
    else:
        model, tokenizer, _ = load_for_eval(model, device)
    context = getattr(model.config, "max_seq_len", None) or getattr(model.config, "n_positions")
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"][:context] for text in texts]
    setup = _setup(model, None)
    generator = torch.Generator(setup[2]).manual_seed(seed)
    nats, tokens = [], []
    for length in sorted({len(ids) for ids in encoded if ids}):
        ids = torch.tensor([ids for ids in encoded if len(ids) == length], dtype=torch.long)
        n, t = _sequence_nats(model, ids, None, setup, num_t, time_sampling, batch_size, generator)
        nats.append(n)
        tokens.append(t)
    if not nats:
        raise InputError("every text is empty after tokenisation")
    exact = setup[3]
    used = "exact" if exact else resolve_time_sampling(time_sampling, setup[0], setup[1])
    return _result(torch.cat(nats), torch.cat(tokens), 1 if exact else num_t, used, exact)


def heldout_blocks(data_config, tokenizer, split: str = "validation"):
    """The block dataset of ``split`` ("validation" or "train") that :func:`dlm.training.data.build_datasets`
    makes from ``data_config`` and ``tokenizer``: the same held-out blocks the trainer validated on."""
    from dlm.errors import DataError
    from dlm.training.data import build_datasets

    if split not in ("validation", "train"):
        raise ConfigError(f"unknown split {split!r}", hint="choose validation or train")
    train, val = build_datasets(data_config, tokenizer)
    if split == "validation" and val is None:
        raise DataError("the data config holds out no validation split", hint="set val_fraction > 0 or val_source")
    return val if split == "validation" else train


__all__ = ["NELBOResult", "TIME_SAMPLINGS", "stratified_times", "elbo_terms", "nelbo_estimate", "validation_nelbo",
           "score_texts", "resolve_time_sampling", "count_terms", "heldout_blocks"]
