"""The exact Gaussian-mixture density and score through an SDE."""

import math

import pytest
import torch

from dlm.continuous.mixture import GaussianMixture, diffused_log_prob, exact_score, grid_mixture
from dlm.continuous.sde import CosineSDE, VESDE, VPSDE
from dlm.errors import InputError

MIX = GaussianMixture(
    weights=torch.tensor([0.3, 0.7], dtype=torch.float64),
    means=torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=torch.float64),
    stds=torch.tensor([[0.3, 0.4], [0.5, 0.2]], dtype=torch.float64),
)


@pytest.mark.parametrize("sde", [VPSDE(), CosineSDE(), VESDE(sigma_max=5.0)], ids=lambda s: type(s).__name__)
def test_score_is_the_gradient_of_the_log_density(sde):
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_(True)
    t = torch.linspace(0.01, 0.9, 16, dtype=torch.float64)
    (grad,) = torch.autograd.grad(diffused_log_prob(MIX, sde, x, t).sum(), x)
    torch.testing.assert_close(exact_score(MIX, sde)(x.detach(), t), grad)


def test_density_integrates_to_one_and_matches_the_diffused_components():
    sde = VPSDE()
    ticks = torch.linspace(-7, 7, 561, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    density = diffused_log_prob(MIX, sde, grid, 0.3).exp()
    assert (density.sum() * (ticks[1] - ticks[0]) ** 2).item() == pytest.approx(1.0, abs=1e-6)
    mean_scale, std = sde.marginal(torch.tensor(0.3, dtype=torch.float64))
    x = torch.tensor([[0.2, -0.1]], dtype=torch.float64)
    comp = [
        torch.distributions.Normal(mean_scale * m, (mean_scale**2 * s**2 + std**2).sqrt()).log_prob(x[0]).sum().exp()
        for m, s in zip(MIX.means, MIX.stds)
    ]
    expected = math.log(0.3 * comp[0] + 0.7 * comp[1])
    assert diffused_log_prob(MIX, sde, x, 0.3).item() == pytest.approx(expected, rel=1e-12)


def test_samples_have_the_mixture_moments():
    x = MIX.sample(40000, torch.Generator().manual_seed(0))
    mean = (MIX.weights[:, None] * MIX.means).sum(0)
    torch.testing.assert_close(x.mean(0), mean, atol=0.02, rtol=0)
    right = torch.distributions.Normal(MIX.means[:, 0], MIX.stds[:, 0]).cdf(torch.zeros(2, dtype=torch.float64))
    assert (x[:, 0] > 0).double().mean().item() == pytest.approx((MIX.weights * (1 - right)).sum().item(), abs=0.01)


def test_grid_mixture_is_the_25_gaussians():
    mix = grid_mixture()
    assert mix.means.shape == (25, 2)
    assert mix.means.max().item() == pytest.approx(4 / 2.828)
    assert mix.stds.unique().item() == pytest.approx(0.05 / 2.828)
    with pytest.raises(InputError):
        GaussianMixture(mix.weights[:3], mix.means, mix.stds)
    with pytest.raises(InputError):
        diffused_log_prob(mix, VPSDE(), torch.zeros(4, 2, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
