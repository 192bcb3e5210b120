"""SDE marginals against their moment ODEs, the paper's SIMPLE/COSINE formulas, priors and time grids."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from dlm.continuous.grids import karras_sigmas, noise_level, time_grid, time_of_noise_level
from dlm.continuous.sde import CosineSDE, SimpleSDE, SubVPSDE, VESDE, VPSDE, check_h, get_sde
from dlm.errors import ConfigError, InputError

SDES = [VPSDE(), SubVPSDE(), VESDE(sigma_min=0.05, sigma_max=5.0), SimpleSDE(), CosineSDE()]


def moments_by_ode(sde, t_end: float) -> tuple[float, float]:
    """(α, σ²) at t_end from dα/dt = c α, dv/dt = 2c v + g², α(0) = 1, v(0) = 0."""

    def rhs(t, y):
        c = sde.drift_coef(torch.tensor(t, dtype=torch.float64)).item()
        g2 = sde.g(torch.tensor(t, dtype=torch.float64)).item() ** 2
        return [c * y[0], 2 * c * y[1] + g2]

    sol = solve_ivp(rhs, (0.0, t_end), [1.0, 0.0], rtol=1e-11, atol=1e-13)
    return sol.y[0, -1], sol.y[1, -1]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("t", [0.05, 0.4, 0.9])
def test_marginal_solves_the_moment_odes(sde, t):
    mean_scale, std = sde.marginal(torch.tensor(t, dtype=torch.float64))
    alpha, var = moments_by_ode(sde, t)
    assert mean_scale.item() == pytest.approx(alpha, rel=1e-8)
    assert std.item() ** 2 == pytest.approx(var, rel=1e-7)


def test_simple_and_cosine_are_the_papers_sdes():
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    x = torch.tensor([[1.0], [-2.0], [3.0]], dtype=torch.float64)
    simple, cosine = SimpleSDE(), CosineSDE()
    torch.testing.assert_close(simple.f(x, t), -10 * t[:, None] * x)
    torch.testing.assert_close(simple.g(t), (20 * t).sqrt())
    torch.testing.assert_close(cosine.f(x, t), -(math.pi / 2) * torch.tan(math.pi * t / 2)[:, None] * x)
    torch.testing.assert_close(cosine.g(t), (math.pi * torch.tan(math.pi * t / 2)).sqrt())
    torch.testing.assert_close(cosine.marginal(t)[0], torch.cos(math.pi * t / 2))
    assert cosine.t_max == 1 - 1e-3


def test_prior_log_prob_is_the_gaussian_density():
    sde = VESDE(sigma_min=0.01, sigma_max=3.0)
    x = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.distributions.Normal(0.0, 3.0).log_prob(x).sum((1, 2))
    torch.testing.assert_close(sde.prior_log_prob(x), expected)
    assert sde.prior_sample((4000, 1), torch.Generator().manual_seed(1)).std().item() == pytest.approx(3.0, rel=0.05)


def test_get_sde_and_bad_configs():
    assert isinstance(get_sde("cosine"), CosineSDE)
    assert isinstance(get_sde("sub-VP", beta_max=10.0), SubVPSDE)
    with pytest.raises(ConfigError):
        get_sde("nope")
    with pytest.raises(ConfigError):
        CosineSDE(t_max=1.0)
    with pytest.raises(ConfigError):
        VPSDE(t_min=0.5, t_max=0.1)
    for bad in (-0.1, float("nan"), "1"):
        with pytest.raises(InputError):
            check_h(bad)


@pytest.mark.parametrize("sde", [VPSDE(), CosineSDE(), VESDE()], ids=lambda s: type(s).__name__)
def test_karras_grid_is_karras_in_noise_level(sde):
    grid = time_grid(sde, 12, "karras", rho=7.0)
    assert grid[0].item() == sde.t_max and grid[-1].item() == sde.t_min
    assert bool((grid[1:] < grid[:-1]).all())
    ends = noise_level(sde, torch.tensor([sde.t_min, sde.t_max], dtype=torch.float64))
    expected = karras_sigmas(ends[0].item(), ends[1].item(), 12, 7.0)
    torch.testing.assert_close(noise_level(sde, grid), expected, rtol=1e-10, atol=0.0)
    sigma = torch.tensor([0.3, 2.0], dtype=torch.float64)
    torch.testing.assert_close(noise_level(sde, time_of_noise_level(sde, sigma)), sigma, rtol=1e-12, atol=0.0)


def test_uniform_grid_and_bad_spacing():
    sde = SimpleSDE()
    np.testing.assert_allclose(time_grid(sde, 4).numpy(), np.linspace(1.0, 1e-3, 5))
    with pytest.raises(ConfigError):
        time_grid(sde, 4, "cubic")
    with pytest.raises(ConfigError):
        time_grid(sde, 0)
