"""PF-ODE log-likelihood and the first-order WKB correction against exact answers.

- Exact mixture score: log_prob is the exact log-density and the correction vanishes (q^𝔥 = p for every 𝔥).
- Linear (wrong) score s = −x/ŝ(t)²: every q^𝔥 is Gaussian with per-dimension variance
  dV/dt = 2k(t)V − 𝔥g², k = c + (1+𝔥)/2·g²/ŝ², V(t_max) = 1, so the correction must equal d/d𝔥 log q^𝔥 at 𝔥 = 0.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from dlm.continuous.likelihood import bits_per_dim, log_likelihood, pf_ode_log_prob
from dlm.continuous.mixture import GaussianMixture, diffused_log_prob, exact_score
from dlm.continuous.sde import CosineSDE, SimpleSDE, VPSDE
from dlm.errors import ConfigError, InputError

MIX = GaussianMixture(
    weights=torch.tensor([0.3, 0.7], dtype=torch.float64),
    means=torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=torch.float64),
    stds=torch.tensor([[0.3, 0.4], [0.5, 0.2]], dtype=torch.float64),
)
MODEL_VAR = np.array([0.3, 1.5])  # the linear score's data variance, per dimension
NOISE_SCALE = 1.2  # ... and its (wrong) share of the noise variance: no Gaussian has this score
TOL = dict(rtol=1e-8, atol=1e-8)


def linear_score(sde):
    """s(x, t) = −x/ŝ(t)², ŝ² = α²v_m + κσ²: with κ ≠ 1 not the score of any diffused Gaussian."""
    var = torch.tensor(MODEL_VAR, dtype=torch.float64)

    def score(x, t):
        mean_scale, std = sde.marginal(t)
        return -x / (mean_scale[:, None] ** 2 * var + NOISE_SCALE * std[:, None] ** 2)

    return score


def gaussian_q_h_variance(sde, h: float) -> np.ndarray:
    """Per-dimension variance of q^𝔥 at t_min for the linear score, by a tight scipy solve from t_max."""

    def coefs(t):
        tt = torch.tensor(t, dtype=torch.float64)
        mean_scale, std = sde.marginal(tt)
        model_var = mean_scale.item() ** 2 * MODEL_VAR + NOISE_SCALE * std.item() ** 2
        return sde.drift_coef(tt).item(), sde.g(tt).item() ** 2, model_var

    def rhs(t, v):
        c, g2, model_var = coefs(t)
        return 2 * (c + 0.5 * (1 + h) * g2 / model_var) * v - h * g2

    sol = solve_ivp(rhs, (sde.t_max, sde.t_min), [sde.prior_std**2] * 2, method="DOP853", rtol=1e-12, atol=1e-14)
    return sol.y[:, -1]


def gaussian_log_prob(x: torch.Tensor, var: np.ndarray) -> torch.Tensor:
    var = torch.tensor(var, dtype=torch.float64)
    return (-0.5 * x**2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)


@pytest.mark.parametrize("sde", [SimpleSDE(), CosineSDE()], ids=["simple", "cosine"])
def test_linear_score_correction_is_the_h_derivative(sde):
    x = torch.tensor([[0.2, -1.0], [1.3, 0.4], [-0.7, 2.1]], dtype=torch.float64)
    out = log_likelihood(linear_score(sde), sde, x, h=0.3, **TOL)
    torch.testing.assert_close(out.log_prob, gaussian_log_prob(x, gaussian_q_h_variance(sde, 0.0)), rtol=1e-7, atol=1e-7)
    step = 1e-4
    derivative = (
        gaussian_log_prob(x, gaussian_q_h_variance(sde, step)) - gaussian_log_prob(x, gaussian_q_h_variance(sde, -step))
    ) / (2 * step)
    assert derivative.abs().min() > 1.0  # the wrong score makes the correction far from zero
    torch.testing.assert_close(out.correction, derivative, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.log_prob_h, out.log_prob + 0.3 * out.correction)


def test_exact_mixture_score_gives_the_exact_density_and_no_correction():
    sde = CosineSDE(t_max=1 - 1e-6)  # α(t_max) ≈ 2e-6, so p_{t_max} is the prior to ~1e-6
    x = MIX.sample(6, torch.Generator().manual_seed(0))
    out = log_likelihood(exact_score(MIX, sde), sde, x, h=1.0, **TOL)
    torch.testing.assert_close(out.log_prob, diffused_log_prob(MIX, sde, x, sde.t_min), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.correction, torch.zeros_like(out.correction), rtol=0, atol=1e-4)


def test_pf_ode_transports_the_exact_density_for_any_prior_mismatch():
    """log_prob − log π(x_T) + log p_T(x_T) = log p_{t_min}(x) holds exactly even where p_T ≠ π (VP, t_max = 1)."""
    sde = VPSDE()
    x = MIX.sample(6, torch.Generator().manual_seed(1))
    x_T, log_prob = pf_ode_log_prob(exact_score(MIX, sde), sde, x, **TOL)
    transported = log_prob - sde.prior_log_prob(x_T) + diffused_log_prob(MIX, sde, x_T, sde.t_max)
    torch.testing.assert_close(transported, diffused_log_prob(MIX, sde, x, sde.t_min), rtol=1e-7, atol=1e-7)


def test_hutchinson_is_unbiased_and_images_are_flattened():
    sde = VPSDE()
    score = exact_score(MIX, sde)  # its Jacobian is not diagonal, so single probes are noisy
    x = torch.tensor([[0.1, -0.2]], dtype=torch.float64)
    exact = log_likelihood(score, sde, x, correction=False, rtol=1e-6, atol=1e-6).log_prob
    many = x.expand(1000, 2).contiguous()
    gen = torch.Generator().manual_seed(0)
    estimate = log_likelihood(score, sde, many, exact_divergence=False, correction=False, rtol=1e-6, atol=1e-6,
                              generator=gen)
    spread = estimate.log_prob.std() / math.sqrt(many.shape[0])
    assert spread.item() > 1e-3
    assert abs(estimate.log_prob.mean() - exact).item() < 4 * spread.item()
    assert estimate.correction is None

    def image_score(img, t):  # the same score on [B, 1, 1, 2] "images"
        return score(img.reshape(img.shape[0], 2), t).reshape(img.shape)

    image = log_likelihood(image_score, sde, x.reshape(1, 1, 1, 2), correction=False, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(image.log_prob, exact)


def test_bits_per_dim_and_bad_arguments():
    d = 3072
    log_prob = torch.tensor([-d * math.log(2.0)], dtype=torch.float64)  # 1 bit/dim in model space x = 2u − 1
    assert bits_per_dim(log_prob, d).item() == pytest.approx(1.0 - 1.0 + 8.0)
    score, sde, x = linear_score(SimpleSDE()), SimpleSDE(), torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(InputError):
        log_likelihood(score, sde, x, h=-1.0)
    with pytest.raises(InputError):
        log_likelihood(score, sde, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ConfigError):
        log_likelihood(score, sde, x, h=0.5, correction=False)
    with pytest.raises(ConfigError):
        log_likelihood(score, sde, x, method="rk4")
