import math

import pytest
import torch

from dlm.errors import ConfigError, InputError
from dlm.evaluation import nelbo_estimate, stratified_times, validation_nelbo
from dlm.evaluation.nelbo import _beta
from dlm.exact import ExactPosterior, random_toy_distribution
from dlm.processes import MaskedProcess, UniformProcess
from dlm.schedules import CosineSchedule, GeometricSchedule

PROBS = random_toy_distribution(3, 3, seed=1)
X0 = torch.tensor([[0, 1, 2]]).repeat(4000, 1)


def estimates(process, time_sampling, num_t=8):
    exact = ExactPosterior(process, PROBS, 3)
    est = nelbo_estimate(exact, process, X0, num_t, time_sampling, torch.Generator().manual_seed(0)).double()
    return est, float(-exact.log_prob(X0[:1]))


@pytest.mark.parametrize("process,time_sampling", [
    (MaskedProcess(3), "count"), (MaskedProcess(3), "uniform"), (MaskedProcess(3, CosineSchedule()), "count"),
    (MaskedProcess(3, CosineSchedule()), "uniform"),
    (UniformProcess(3), "uniform"), (UniformProcess(3, GeometricSchedule(1e-3, 20.0)), "uniform"),
])
def test_nelbo_of_the_exact_posterior_is_minus_log_p(process, time_sampling):
    """Tight bound: E NELBO = −log p(x0) (masked: less the ε-truncation, ≤ ε·L·log V = 0.0033 nats)."""
    est, target = estimates(process, time_sampling)
    stderr = est.std().item() / math.sqrt(len(est))
    assert abs(est.mean().item() - target) < 4 * stderr + 0.004


def test_count_estimator_has_far_lower_variance():
    count, _ = estimates(MaskedProcess(3), "count")
    time, _ = estimates(MaskedProcess(3), "uniform")
    assert count.std() < time.std() / 4
    assert count.std() / math.sqrt(len(count)) < 0.01


def test_stratified_times_integrate():
    """mean_k f(t_k) → ∫₀¹ f(t) dt = log 11 for f = 1/(t + 0.1), one time per stratum (error ≤ (f(0) − f(1))/n)."""
    t = stratified_times(5, 2000, torch.Generator().manual_seed(0))
    assert t.shape == (2000, 5) and bool(((t > 0) & (t <= 1)).all())
    strata = torch.floor((1 - t) * 2000)
    assert bool((strata == torch.arange(2000.0).unsqueeze(-1)).all())
    integral = (1 / (t + 0.1)).mean(0)
    assert torch.allclose(integral, torch.full_like(integral, math.log(11)), atol=9.1 / 2000)


def test_beta_draws_have_the_right_mean():
    k = torch.full((20000,), 3.0)
    draws = _beta(k, 10 - k + 1, torch.Generator().manual_seed(0))  # Beta(3, 8): mean 3/11
    assert abs(draws.mean().item() - 3 / 11) < 0.005


def test_validation_nelbo_matches_per_sequence_estimates(dlm_dir):
    from dlm.evaluation.samples import load_for_eval

    model, _, _ = load_for_eval(dlm_dir)
    blocks = torch.randint(0, model.config.num_real_tokens, (6, 24), generator=torch.Generator().manual_seed(0))
    result = validation_nelbo(model, blocks, num_t=4, batch_size=3, seed=5)
    gen = torch.Generator().manual_seed(5)
    from dlm.processes import process_from_config

    process = process_from_config(model.config)
    by_hand = torch.cat([nelbo_estimate(model, process, blocks[i:i + 3], 4, "count", gen) for i in (0, 3)])
    assert result.time_sampling == "count" and result.num_tokens == 6 * 24
    assert result.nats_per_token == pytest.approx(by_hand.double().sum().item() / (6 * 24), rel=1e-6)
    assert result.bits_per_token == pytest.approx(result.nats_per_token / math.log(2))
    assert result.ppl_bound == pytest.approx(math.exp(result.nats_per_token))


def test_validation_of_the_ar_baseline_is_its_exact_nll(ar_dir):
    from dlm.evaluation.samples import load_for_eval
    from dlm.training.ar import ar_token_nll

    model, _, kind = load_for_eval(ar_dir)
    assert kind == "ar"
    blocks = torch.randint(0, model.config.bos_token_id, (5, 24), generator=torch.Generator().manual_seed(0))
    result = validation_nelbo(model, blocks, batch_size=2)
    assert result.exact and result.time_sampling == "exact"
    with torch.no_grad():
        assert result.nats_per_token == pytest.approx(ar_token_nll(model, blocks).double().mean().item(), rel=1e-6)


def test_errors():
    process = UniformProcess(3)
    exact = ExactPosterior(process, PROBS, 3)
    with pytest.raises(ConfigError, match="count"):
        nelbo_estimate(exact, process, X0[:2], 2, "count")
    with pytest.raises(ConfigError, match="time_sampling"):
        nelbo_estimate(exact, process, X0[:2], 2, "sobol")
    with pytest.raises(InputError):
        validation_nelbo(exact, X0[:2])  # a bare denoiser needs its process
    with pytest.raises(InputError):
        nelbo_estimate(exact, process, X0[:2], 0)
