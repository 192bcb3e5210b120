"""Step functions: upstream SEDD/MDLM probability arrays, exact reverse marginals, ReMDM, option transforms."""

import math

import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from dlm.exact import ExactPosterior, all_sequences, random_toy_distribution
from dlm.losses import posterior_log_ratios
from dlm.processes import MaskedProcess, UniformProcess
from dlm.samplers import (
    Posterior,
    Record,
    Run,
    analytic_step_probs,
    ancestral_step_probs,
    apply_temperature,
    apply_top_p,
    classifier_free_guidance,
    denoise_step_probs,
    euler_step_probs,
    first_hitting_time,
    gumbel_noise,
    masked_ancestral_probs,
    masked_reveal_step,
    remasking_probability,
    reveal_counts,
    sample_categorical,
    time_grid,
)
from dlm.schedules import CosineSchedule, LogLinearSchedule
from tests.conformance import load

V, L = 4, 3
PROBS = random_toy_distribution(V, L, seed=1)


# --- upstream conformance ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["euler_probs", "analytic_probs", "denoise_probs"])
def test_sedd_step_probs_match_upstream(name):
    inputs, outputs, expected = load("inputs", "sedd"), load("outputs", "sedd"), load("sampling", "sedd")
    process = MaskedProcess(97)
    x, t, dt, log_score = inputs["input_ids"], expected["t"].double(), expected["dt"].double(), outputs["log_score"]
    if name == "euler_probs":
        probs = euler_step_probs(log_score, process, x, t, dt)
    elif name == "analytic_probs":
        probs = analytic_step_probs(log_score, process, x, t, t - dt)
    else:
        probs = denoise_step_probs(log_score, process, x, t)
    torch.testing.assert_close(probs.float(), expected[name], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tc", ["false", "true"])
def test_mdlm_ddpm_cache_probs_match_upstream(tc):
    """MDLM hands p·(t − s) with the mask column s to its sampler (move chance t, not 1 − α(t) = (1−ε)t); ours is
    the same law normalised by 1 − α(t): ours·t equals MDLM's array at the masks, and revealed tokens stay."""
    inputs, outputs, expected = load("inputs", "mdlm"), load("outputs", "mdlm"), load("sampling", "mdlm")
    x, t, dt = inputs["input_ids"], expected["t"].double(), expected["dt"].double()
    log_probs = outputs[f"log_probs_subs_tc_{tc}"][..., :97]
    probs = ancestral_step_probs(log_probs, MaskedProcess(97), x, t, t - dt)
    masked = x == 97
    upstream = expected[f"ddpm_cache_q_xs_tc_{tc}"]
    torch.testing.assert_close((probs * t.unsqueeze(-1))[masked].float(), upstream[masked], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(probs[~masked], F.one_hot(x[~masked], 98).double())
    torch.testing.assert_close(expected[f"ddpm_cache_p_x0_tc_{tc}"], outputs[f"log_probs_subs_tc_{tc}"].exp())


# --- exactness against enumeration -----------------------------------------------------------------------------

def exact_reverse_marginals(exact: ExactPosterior, states: torch.LongTensor, t: float, s: float) -> torch.Tensor:
    """p(x_s^i = z | x_t) = Σ_x0 p(x0 | x_t) q_s(z | x0_i) T(z → x_t^i) / q_t(x_t^i | x0_i), T = expm((σ̄_t − σ̄_s)Q),
    by enumeration (independent of the samplers' closed forms): [S, L, num_states]."""
    process = exact.process
    posterior = exact.posterior_over_sequences(states, torch.full((len(states),), t))  # [S, N]
    q_s = process.marginal_probs(exact.sequences, s).double()  # [N, L, Z]
    q_t = process.marginal_probs(exact.sequences, t).double()
    dsigma = float(process.schedule.total(t) - process.schedule.total(s))
    transition = torch.from_numpy(scipy.linalg.expm(dsigma * process.generator_matrix().double().numpy()))
    q_t_at_x = torch.stack([q_t[:, i, :][:, states[:, i]].T for i in range(L)], dim=-1)  # [S, N, L]
    weights = torch.where(posterior.unsqueeze(-1) > 0, posterior.unsqueeze(-1) / q_t_at_x, 0.0)
    return torch.einsum("ani,niz->aiz", weights, q_s) * transition[:, states].permute(1, 2, 0)


def normalised(probs: torch.Tensor) -> torch.Tensor:
    probs = probs.clamp_min(0)
    return probs / probs.sum(-1, keepdim=True)


@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_analytic_and_ancestral_steps_are_the_exact_reverse_marginals(cls):
    process = cls(V, CosineSchedule())
    exact = ExactPosterior(process, PROBS, L)
    states = all_sequences(process.num_states, L)
    t, s = 0.6, 0.35
    expected = exact_reverse_marginals(exact, states, t, s)
    log_probs = exact(states, torch.full((len(states),), t)).double()
    sigma = process.schedule.total(torch.tensor(t, dtype=torch.float64))
    ratios = posterior_log_ratios(log_probs, process, states, sigma)
    analytic = normalised(analytic_step_probs(ratios, process, states, t, s))
    torch.testing.assert_close(analytic, expected, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(ancestral_step_probs(log_probs, process, states, t, s), expected, atol=2e-6, rtol=1e-5)


def test_uniform_point_estimate_is_a_different_distribution():
    """DUO/UDLM's ratio of means is a probability vector but not the exact mean of ratios."""
    process = UniformProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    states = all_sequences(V, L)
    log_probs = exact(states, torch.full((len(states),), 0.5))
    approx = ancestral_step_probs(log_probs, process, states, 0.5, 0.3, point_estimate=True)
    exact_step = ancestral_step_probs(log_probs, process, states, 0.5, 0.3)
    torch.testing.assert_close(approx.sum(-1), torch.ones(len(states), L, dtype=torch.float64))
    assert (approx >= 0).all() and (approx - exact_step).abs().max() > 1e-2


def test_uniform_point_estimate_is_udlm_posterior():
    """UDLM/DUO's q(x_s | x_t, x0 = x_θ) (Schiff et al. 2025, ``_compute_posterior``), with α_ts = α_t/α_s:
    [α_t V x_θ·1_{x_t} + (α_ts − α_t)1_{x_t} + (α_s − α_t)x_θ + (1 − α_ts)(1 − α_s)/V] / (α_t V x_θ[x_t] + 1 − α_t)."""
    process = UniformProcess(V, CosineSchedule())
    x = torch.tensor([[0, 3, 1], [2, 2, 0]])
    x_theta = torch.softmax(torch.randn(2, L, V, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    t, s = 0.7, 0.4
    alpha_t, alpha_s = process.schedule.alpha(t), process.schedule.alpha(s)
    alpha_ts = alpha_t / alpha_s
    onehot = F.one_hot(x, V).double()
    numerator = (alpha_t * V * x_theta * onehot + (alpha_ts - alpha_t) * onehot + (alpha_s - alpha_t) * x_theta
                 + (1 - alpha_ts) * (1 - alpha_s) / V)
    udlm = numerator / (alpha_t * V * x_theta.gather(-1, x.unsqueeze(-1)) + 1 - alpha_t)
    torch.testing.assert_close(ancestral_step_probs(x_theta.log(), process, x, t, s, point_estimate=True), udlm)


def test_masked_euler_equals_analytic_for_the_loglinear_schedule():
    """Δt·σ̄'(t)/(e^σ̄ − 1) = (α_s − α_t)/(1 − α_t) when α is linear in t: SEDD's two predictors then coincide."""
    process = MaskedProcess(V, LogLinearSchedule())
    exact = ExactPosterior(process, PROBS, L)
    states = all_sequences(process.num_states, L)
    t, s = 0.7, 0.55
    ratios = posterior_log_ratios(exact(states, torch.full((len(states),), t)).double(), process, states,
                                  process.schedule.total(torch.tensor(t, dtype=torch.float64)))
    torch.testing.assert_close(euler_step_probs(ratios, process, states, t, t - s),
                               normalised(analytic_step_probs(ratios, process, states, t, s)))


def test_masked_exact_posterior_is_time_independent_and_uniform_is_not():
    """p(x0 | x_t) ∝ p(x0) Π_{masked}(1−α_t) Π_{clean} α_t 1[x0_i = x_t^i]: the α_t factor is the same for every
    consistent x0 and cancels, so the masked posterior depends on x_t only (the no-change cache is exact)."""
    for cls, independent in ((MaskedProcess, True), (UniformProcess, False)):
        process = cls(V)
        exact = ExactPosterior(process, PROBS, L)
        states = all_sequences(process.num_states, L)
        early, late = exact(states, torch.full((len(states),), 0.1)), exact(states, torch.full((len(states),), 0.9))
        assert torch.allclose(early, late, atol=1e-5) == independent


# --- ReMDM ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["cap", "rescale"])
@pytest.mark.parametrize("eta", [0.0, 0.05, 0.5, 1.0])
def test_remdm_step_preserves_the_forward_marginals(strategy, eta):
    """Σ_{x_t} q_t(x_t | x0) q_σ(x_s | x_t, x0) = q_s(x_s | x0) for every σ ≤ σ_max (Wang et al. 2025, Thm 3.1)."""
    process = MaskedProcess(V)
    x0 = torch.arange(V).view(1, V)
    log_probs = torch.log(F.one_hot(x0, V).double())
    for t, s in ((0.9, 0.8), (0.5, 0.2), (0.05, 0.01)):
        alpha_t, alpha_s = process.schedule.alpha(t), process.schedule.alpha(s)
        sigma = remasking_probability(alpha_t, alpha_s, eta, strategy)
        from_clean = masked_ancestral_probs(log_probs, process, x0, alpha_t, alpha_s, sigma)
        from_mask = masked_ancestral_probs(log_probs, process, torch.full_like(x0, V), alpha_t, alpha_s, sigma)
        law = alpha_t * from_clean + (1 - alpha_t) * from_mask
        torch.testing.assert_close(law, process.marginal_probs(x0, s).double(), atol=1e-7, rtol=1e-6)
        assert (from_mask >= 0).all() and (from_clean >= 0).all()


@pytest.mark.parametrize("top_p", [1.0, 0.6])
def test_factorised_masked_reveal_step_has_the_ancestral_law(top_p):
    """The sampler's fast masked step (reveal w.p. (α_s−α_t)/(1−α_t), then draw the token) has the law of the
    full [B, L, V+1] ancestral transition, also after the top-p transform."""
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    n = 40_000
    x = torch.tensor([[process.mask_id, 1, process.mask_id]]).expand(n, L)
    posterior = Posterior(exact, process, torch.zeros_like(x, dtype=torch.bool), top_p=top_p)
    run = Run(process, posterior, posterior.fixed, x, torch.Generator().manual_seed(0), Record())
    t, s = torch.tensor(0.6, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    alpha_t, alpha_s = process.schedule.alpha(t), process.schedule.alpha(s)
    log_probs = posterior(x, t)
    drawn = masked_reveal_step(run, log_probs, x, alpha_t, alpha_s)
    expected = masked_ancestral_probs(posterior.sampling(log_probs[:1]).double(), process, x[:1], alpha_t, alpha_s)[0]
    freq = F.one_hot(drawn, process.num_states).double().mean(0)
    assert (freq - expected).abs().max() < 4 * math.sqrt(0.25 / n), (freq, expected)


def test_remasking_probability_strategies():
    alpha_t, alpha_s = torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64)
    sigma_max = (1 - 0.6) / 0.5
    assert float(remasking_probability(alpha_t, alpha_s, 0.04, "cap")) == pytest.approx(0.04)
    assert float(remasking_probability(alpha_t, alpha_s, 0.9, "cap")) == pytest.approx(sigma_max)
    assert float(remasking_probability(alpha_t, alpha_s, 0.5, "rescale")) == pytest.approx(0.5 * sigma_max)


# --- draws, grids and posterior transforms ---------------------------------------------------------------------

def test_sample_categorical_is_float64_gumbel_max_with_the_right_frequencies():
    gen = torch.Generator().manual_seed(0)
    assert gumbel_noise((3,), gen).dtype == torch.float64
    weights = torch.tensor([0.5, 0.0, 3.0, 1.5, -1.0])  # unnormalised; negative counts as 0
    draws = sample_categorical(weights.expand(100_000, 5), gen)
    freq = torch.bincount(draws, minlength=5).double() / 100_000
    expected = torch.tensor([0.1, 0.0, 0.6, 0.3, 0.0], dtype=torch.float64)
    assert (freq - expected).abs().max() < 4 * math.sqrt(0.25 / 100_000)


def test_time_grid_spacings():
    schedule = CosineSchedule()
    grid = time_grid(schedule, 8, 1e-5, "time")
    assert grid[0] == 1.0 and grid[-1] == 1e-5 and (grid.diff() < 0).all()
    alphas = schedule.alpha(time_grid(schedule, 8, 1e-5, "alpha"))
    torch.testing.assert_close(alphas.diff(), alphas.diff()[:1].expand(8), rtol=1e-6, atol=1e-9)
    loglinear = LogLinearSchedule()
    torch.testing.assert_close(time_grid(loglinear, 8, 1e-5, "alpha"), time_grid(loglinear, 8, 1e-5))


def test_temperature_top_p_and_guidance_transforms():
    log_p = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64))
    assert apply_temperature(log_p, 1.0) is log_p and apply_top_p(log_p, 1.0) is log_p
    torch.testing.assert_close(apply_temperature(log_p, 0.0).exp(), torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64))
    sharp = apply_temperature(log_p, 0.5).exp()
    torch.testing.assert_close(sharp, log_p.exp() ** 2 / (log_p.exp() ** 2).sum())
    torch.testing.assert_close(apply_top_p(log_p, 0.8).exp(), torch.tensor([[0.625, 0.375, 0, 0]], dtype=torch.float64))
    three = torch.tensor([[0.5, 0.3, 0.15, 0]], dtype=torch.float64) / 0.95
    torch.testing.assert_close(apply_top_p(log_p, 0.81).exp(), three)
    torch.testing.assert_close(apply_top_p(log_p, 0.1).exp(), torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64))
    log_u = torch.log(torch.full((1, 4), 0.25, dtype=torch.float64))
    torch.testing.assert_close(classifier_free_guidance(log_p, log_u, 0.0), log_p)
    guided = classifier_free_guidance(log_p, log_u, 1.0).exp()
    torch.testing.assert_close(guided, log_p.exp() ** 2 / (log_p.exp() ** 2).sum())


def test_first_hitting_time():
    """1 − α(τ) = (1 − α(t))·u^{1/k}; t·u^{1/k} for the log-linear schedule."""
    t = torch.tensor([1.0, 0.5, 0.3], dtype=torch.float64)
    k, u = torch.tensor([4, 1, 2]), torch.tensor([0.3, 0.9, 0.5], dtype=torch.float64)
    torch.testing.assert_close(first_hitting_time(LogLinearSchedule(), t, k, u), t * u ** (1 / k.double()))
    cosine = CosineSchedule()
    tau = first_hitting_time(cosine, t, k, u)
    torch.testing.assert_close(1 - cosine.alpha(tau), (1 - cosine.alpha(t)) * u ** (1 / k.double()))


def test_reveal_counts_reveal_everything_by_the_last_step():
    n = torch.tensor([10, 3, 0, 7])
    for schedule in ("linear", "cosine"):
        counts = reveal_counts(n, 4, schedule)
        assert counts.shape == (4, 4) and (counts >= 0).all()
        torch.testing.assert_close(counts.sum(-1), n)
    torch.testing.assert_close(reveal_counts(n, 4, "linear")[0], torch.tensor([2, 3, 2, 3]))
    assert (reveal_counts(torch.tensor([100]), 4, "cosine").diff(dim=-1) > 0).all()  # MaskGIT: few first, many last
