"""The Monte-Carlo path estimator of the WKB correction against the exact augmented solve and closed forms.

Every check is statistical with a fixed seed: the estimate must sit within 4 standard errors of the exact value
(plus the grid's small second-order bias), and the exact value must be far from zero where it is not zero, so a
wrong sign or a missing term fails.
"""

import torch
from torch.func import jvp

from dlm.continuous.likelihood import log_likelihood
from dlm.continuous.mixture import exact_score
from dlm.continuous.sde import CosineSDE, SimpleSDE
from dlm.continuous.wkb_paths import wkb_correction_paths
from dlm.errors import ConfigError
import pytest

from tests.continuous.test_pf_likelihood import MIX, TOL, gaussian_log_prob, gaussian_q_h_variance, linear_score
from tests.images.conftest import random_unet


def assert_within(estimate, exact, sigmas=4.0, bias=0.0):
    gap = (estimate.mean - exact).abs()
    assert (gap <= sigmas * estimate.stderr + bias).all(), (estimate, exact)


def scaled(score, factor):
    return lambda x, t: factor * score(x, t)


def test_mismatched_mixture_score_matches_the_augmented_solve():
    """1.1 × the exact score of a two-component mixture: the correction is large and point-dependent."""
    sde = SimpleSDE()
    score = scaled(exact_score(MIX, sde), 1.1)
    x = MIX.sample(3, torch.Generator().manual_seed(0))
    exact = log_likelihood(score, sde, x, **TOL).correction
    estimate = wkb_correction_paths(score, sde, x, steps=40, paths=1000, generator=torch.Generator().manual_seed(0))
    assert exact[0] > 10 * estimate.stderr[0]
    assert_within(estimate, exact)


def test_exact_score_has_no_correction():
    sde = SimpleSDE()
    x = MIX.sample(3, torch.Generator().manual_seed(1))
    estimate = wkb_correction_paths(exact_score(MIX, sde), sde, x, steps=40, paths=500,
                                    generator=torch.Generator().manual_seed(1))
    assert (estimate.stderr < 0.15).all()
    assert_within(estimate, torch.zeros_like(estimate.mean))


def test_linear_score_matches_the_gaussian_h_derivative():
    """Every q^𝔥 is Gaussian for a linear score (tests/continuous/test_pf_likelihood.py): d/d𝔥 log q^𝔥 in closed form."""
    sde = CosineSDE()
    x = torch.tensor([[0.2, -1.0], [1.3, 0.4], [-0.7, 2.1]], dtype=torch.float64)
    step = 1e-4
    exact = (gaussian_log_prob(x, gaussian_q_h_variance(sde, step))
             - gaussian_log_prob(x, gaussian_q_h_variance(sde, -step))) / (2 * step)
    estimate = wkb_correction_paths(linear_score(sde), sde, x, steps=40, paths=2000,
                                    generator=torch.Generator().manual_seed(2))
    assert (exact > 20 * estimate.stderr).all()
    assert_within(estimate, exact)


def test_log_likelihood_uses_paths_with_hutchinson_divergences():
    sde = SimpleSDE()
    score = scaled(exact_score(MIX, sde), 1.1)
    x = MIX.sample(2, torch.Generator().manual_seed(3))
    out = log_likelihood(score, sde, x, h=0.5, exact_divergence=False, paths=4, path_steps=8,
                         generator=torch.Generator().manual_seed(0))
    assert out.correction.shape == (2,) and torch.isfinite(out.correction).all()
    torch.testing.assert_close(out.log_prob_h, out.log_prob + 0.5 * out.correction)
    with pytest.raises(ConfigError, match="paths"):
        log_likelihood(score, sde, x, exact_divergence=False, correction=True, paths=0)
    with pytest.raises(ConfigError, match="steps"):
        log_likelihood(score, sde, x, exact_divergence=False, correction=True, path_steps=0)


def test_unet_has_third_order_forward_derivatives():
    """The estimator needs s'''[m, m, v]-type jets of the U-Net: nested jvp against central differences."""
    model = random_unet().double()
    t = torch.full((2,), 0.3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x, m, v = (torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64) for _ in range(3))

    def score(y):
        return model(y, t)

    def second(y):  # s''(y)[m, v]
        return jvp(lambda z: jvp(score, (z,), (m,))[1], (y,), (v,))[1]

    third = jvp(second, (x,), (m,))[1]
    step = 1e-4
    finite = (second(x + step * m) - second(x - step * m)) / (2 * step)
    assert third.abs().max() > 1e-3
    torch.testing.assert_close(third, finite, rtol=1e-5, atol=1e-6)
