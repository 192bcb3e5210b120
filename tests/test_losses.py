import math

import pytest
import torch

from dlm.errors import ConfigError, InputError
from dlm.exact import ExactPosterior, all_sequences, random_toy_distribution
from dlm.losses import (
    absorbing_score_entropy_terms,
    bits_per_token,
    masked_count_nelbo_terms,
    masked_nelbo_terms,
    nelbo,
    posterior_log_ratios,
    sample_times,
    score_entropy,
    score_entropy_terms,
    uniform_score_entropy_terms,
)
from dlm.processes import MaskedProcess, UniformProcess
from tests.conformance import load

V, L = 4, 3
PROBS = random_toy_distribution(V, L, seed=1)
X0 = torch.tensor([[0, 1, 2], [3, 3, 3], [1, 0, 2]])


def monte_carlo(fn, x0, n, seed=0):
    """Mean and standard error over n draws of fn for each row of x0."""
    gen = torch.Generator().manual_seed(seed)
    values = fn(x0.repeat(n, 1), gen).view(n, x0.shape[0]).double()
    return values.mean(0), values.std(0) / math.sqrt(n)


def test_masked_nelbo_equals_log_likelihood_for_exact_posterior():
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    mean, se = monte_carlo(lambda x, g: nelbo(exact, process, x, num_t=4, generator=g), X0, 6000)
    target = -exact.log_prob(X0)
    # ε-truncation: at t = 1 a fraction ε = 1e-3 of tokens is still clean, so the bound is short by ≲ ε·L·log V
    assert ((mean - target).abs() < 4 * se + 1e-3 * L * math.log(V)).all(), (mean, target, se)
    assert (se < 0.1).all()  # the comparison above has power


def test_uniform_nelbo_bounds_log_likelihood_and_is_tight_for_exact_posterior():
    process = UniformProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    mean, se = monte_carlo(lambda x, g: nelbo(exact, process, x, num_t=2, generator=g), X0, 8000)
    target = -exact.log_prob(X0)
    assert (mean > target - 4 * se).all(), (mean, target, se)
    assert ((mean - target).abs() < 4 * se + 0.02).all(), (mean, target, se)


def exact_marginal(process, x_t, t):
    """p_t(x) = Σ_x0 p(x0) q_t(x | x0) by enumeration, for every x_t row: [B]."""
    exact = ExactPosterior(process, PROBS, L)
    return torch.logsumexp(exact.log_p + exact.log_likelihood(x_t, torch.full((x_t.shape[0],), t)), dim=-1)


@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_posterior_log_ratios_are_exact_marginal_ratios(cls):
    process = cls(V)
    exact = ExactPosterior(process, PROBS, L)
    t = 0.45
    states = all_sequences(process.num_states, L)
    if cls is MaskedProcess:
        states = states[(states == V).any(-1)]  # ratios are used at masked positions
    log_p_x = exact_marginal(process, states, t)
    sigma = process.schedule.total(torch.full((states.shape[0],), t, dtype=torch.float64))
    ratios = posterior_log_ratios(exact(states, torch.full((states.shape[0],), t)).double(), process, states, sigma)
    for i in range(L):
        for y in range(V):
            moved = states.clone()
            moved[:, i] = y
            used = states[:, i] == V if cls is MaskedProcess else torch.ones(len(states), dtype=torch.bool)
            expected = exact_marginal(process, moved, t) - log_p_x
            torch.testing.assert_close(ratios[used, i, y], expected[used], rtol=1e-5, atol=1e-5)


def true_log_ratios(process, x_t, x0, sigma):
    """log q_t(y | x0)/q_t(x_t | x0) per position: the exact minimiser of the score entropy."""
    t = process.schedule.time_at_alpha(torch.exp(-sigma))
    q = process.marginal_probs(x0, t).double()
    return torch.log(q) - torch.log(q.gather(-1, x_t.unsqueeze(-1)))


@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_score_entropy_is_zero_at_true_ratios_and_positive_elsewhere(cls):
    process = cls(V)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, V, (64, 6), generator=gen)
    sigma = torch.rand(64, generator=gen, dtype=torch.float64) * 3 + 0.05
    x_t = process.sample_xt(x0, process.schedule.time_at_alpha(torch.exp(-sigma)), generator=gen)
    scores = true_log_ratios(process, x_t, x0, sigma).clamp_min(-50.0)  # log 0 → a huge negative score
    at_truth = score_entropy_terms(scores, process, x_t, x0, sigma)
    torch.testing.assert_close(at_truth, torch.zeros_like(at_truth), atol=1e-9, rtol=0)
    perturbed = score_entropy_terms(scores + 0.3 * torch.randn(scores.shape, generator=gen, dtype=torch.float64),
                                    process, x_t, x0, sigma)
    used = x_t == V if cls is MaskedProcess else torch.ones_like(x_t, dtype=torch.bool)
    assert (perturbed[used] > 0).all() and (perturbed[~used] == 0).all()


def test_masked_nelbo_and_absorbing_score_entropy_agree_for_the_same_exact_model():
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    x0 = X0.repeat(500, 1)
    a = nelbo(exact, process, x0, generator=torch.Generator().manual_seed(3))
    b = score_entropy(exact, process, x0, parameterization="posterior", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # same draws: equal term by term, hence in expectation


def test_sample_times_are_stratified():
    t = sample_times(8, num_t=4, generator=torch.Generator().manual_seed(0))
    assert t.shape == (4, 8) and (t > 0).all() and (t <= 1).all()
    bins = torch.floor((1 - t.flatten().double()) * 32).long()
    assert sorted(bins.tolist()) == list(range(32))
    assert sample_times(8, antithetic=False, t_min=0.5).min() >= 0.5


def test_bits_per_token():
    assert float(bits_per_token(torch.tensor([3 * math.log(2)]), 3)) == pytest.approx(1.0)


def test_loss_input_errors():
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    with pytest.raises(InputError, match=r"shape \[B, L\]"):
        nelbo(exact, process, torch.zeros(3, dtype=torch.long))
    with pytest.raises(InputError, match="token ids"):
        nelbo(exact, process, torch.full((2, L), V))  # the mask is not a clean token
    with pytest.raises(ConfigError, match="parameterization"):
        score_entropy(exact, process, X0, parameterization="logits")
    with pytest.raises(InputError, match="denoiser must return"):
        nelbo(lambda x, t: torch.zeros(x.shape[0], V), process, X0)


def test_sedd_absorbing_score_entropy_matches_upstream():
    inputs, outputs, losses = load("inputs", "sedd"), load("outputs", "sedd"), load("losses", "sedd")
    process = MaskedProcess(97)
    terms = absorbing_score_entropy_terms(outputs["log_score"], process, inputs["input_ids"], inputs["x0"], inputs["sigma"])
    torch.testing.assert_close(terms, losses["score_entropy"], atol=1e-4, rtol=1e-4)
    per_token = inputs["dsigma"][:, None] * terms
    torch.testing.assert_close(per_token, losses["loss_per_token"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(per_token.sum(-1), losses["loss_per_sequence"], atol=1e-4, rtol=1e-4)


def test_sedd_uniform_score_entropy_matches_upstream():
    ref = load("schedules", "sedd")
    terms = uniform_score_entropy_terms(ref["uniform_log_score"], UniformProcess(97), ref["uniform_xt"],
                                        ref["uniform_x0"], ref["uniform_sigma"])
    torch.testing.assert_close(terms, ref["uniform_score_entropy"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tc", ["false", "true"])
def test_mdlm_nelbo_terms_match_upstream(tc):
    inputs, outputs, losses = load("inputs", "mdlm"), load("outputs", "mdlm"), load("losses", "mdlm")
    log_probs = torch.log_softmax(outputs[f"log_probs_subs_tc_{tc}"][..., :97], dim=-1)
    terms = masked_nelbo_terms(log_probs, MaskedProcess(97), inputs["input_ids"], inputs["x0"], inputs["sigma"], inputs["dsigma"])
    torch.testing.assert_close(terms, losses[f"nelbo_per_token_tc_{tc}"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(terms.mean(), losses[f"nelbo_token_mean_tc_{tc}"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(1 - torch.exp(-inputs["sigma"]), losses["move_chance"], atol=1e-6, rtol=1e-6)


def test_count_weighted_masked_nelbo_is_exactly_minus_log_likelihood_for_exact_posterior():
    """Σ over all masked subsets M with P(M) = ∫ u^k (1−u)^{L−k} du = k!(L−k)!/(L+1)! of the count-weighted terms
    is the any-order NELBO, which for the exact posterior is −log p(x0) with no gap."""
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    subsets = torch.tensor([[(s >> i) & 1 for i in range(L)] for s in range(2 ** L)], dtype=torch.bool)
    k = subsets.sum(-1)
    weight = torch.tensor([math.factorial(n) * math.factorial(L - n) / math.factorial(L + 1) for n in k.tolist()])
    for x0 in X0:
        rows = x0.expand(len(subsets), L)
        x_t = torch.where(subsets, process.mask_id, rows)
        log_probs = torch.log_softmax(exact(x_t, torch.full((len(subsets),), 0.5)).double(), -1)
        terms = masked_count_nelbo_terms(log_probs, process, x_t, rows)
        expected = (weight.double() * terms.sum(-1)).sum()
        torch.testing.assert_close(expected, -exact.log_prob(x0[None])[0].double(), rtol=1e-6, atol=1e-6)


def test_count_weighted_training_loss_is_unbiased_with_less_variance_than_the_time_weight():
    from dlm.training.trainer import loss_terms

    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)

    def draws(time_sampling):
        def fn(x0, gen):
            t = sample_times(x0.shape[0], 1, True, 0.0 if time_sampling == "count" else 1e-3, gen)[0]
            u = torch.rand(x0.shape, generator=gen, dtype=torch.float64)
            return loss_terms(exact, process, "nelbo", x0, t, u, time_sampling=time_sampling).sum(-1)
        return fn

    mean, se = monte_carlo(draws("count"), X0, 6000)
    assert ((mean + exact.log_prob(X0)).abs() < 4 * se).all(), (mean, -exact.log_prob(X0), se)
    _, se_time = monte_carlo(draws("uniform"), X0, 6000)
    assert (se < se_time / 1.5).all(), (se, se_time)  # variance 4-5x lower even at L = 3
