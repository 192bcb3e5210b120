"""Denoising score matching against its closed-form minimum on Gaussian data, and the parameterisations."""

import pytest
import torch

from dlm.continuous.losses import dsm_loss, loss_weight, score_fn
from dlm.continuous.mixture import GaussianMixture, exact_score
from dlm.continuous.models import MLP
from dlm.continuous.sde import CosineSDE, SimpleSDE
from dlm.errors import ConfigError

VAR0 = 0.5
GAUSS = GaussianMixture(
    torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64), torch.full((1, 2), VAR0**0.5, dtype=torch.float64)
)


@pytest.mark.parametrize("weighting", ["variance", "likelihood"])
def test_exact_score_attains_the_closed_form_minimum(weighting):
    """E‖∇log p_t(x_t) − ∇log p_{t|0}‖² = D(1/σ² − 1/(α²v₀ + σ²)) for x_0 ~ N(0, v₀ I)."""
    sde, n, t0 = SimpleSDE(), 200_000, 0.3
    gen = torch.Generator().manual_seed(0)
    x0 = GAUSS.sample(n, gen)
    t = torch.full((n,), t0, dtype=torch.float64)
    loss = dsm_loss(exact_score(GAUSS, sde), sde, x0, weighting, t=t, generator=gen)
    mean_scale, std = sde.marginal(torch.tensor(t0, dtype=torch.float64))
    minimum = 0.5 * loss_weight(sde, t[:1], weighting) * 2 * (1 / std**2 - 1 / (mean_scale**2 * VAR0 + std**2))
    assert loss.mean().item() == pytest.approx(minimum.item(), rel=0.01)


def test_eps_parameterisation_gives_the_same_loss():
    sde = CosineSDE()
    score = exact_score(GAUSS, sde)

    def eps_net(x, t):
        return -sde.marginal(t)[1][:, None] * score(x, t)

    x0 = GAUSS.sample(64, torch.Generator().manual_seed(0))
    for weighting in ("variance", "likelihood"):
        by_score = dsm_loss(score, sde, x0, weighting, "score", generator=torch.Generator().manual_seed(1))
        by_eps = dsm_loss(eps_net, sde, x0, weighting, "eps", generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(by_eps, by_score)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    torch.testing.assert_close(loss_weight(sde, t, "likelihood"), sde.g(t) ** 2)
    torch.testing.assert_close(loss_weight(sde, t, "variance"), sde.marginal(t)[1] ** 2)


def test_mlp_shapes_and_bad_names():
    net = MLP(dim=2, hidden=16, layers=3)
    assert net(torch.zeros(5, 2), torch.rand(5)).shape == (5, 2)
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Linear)]) == 4
    assert dsm_loss(net, SimpleSDE(), torch.zeros(5, 2)).shape == (5,)
    with pytest.raises(ConfigError):
        dsm_loss(net, SimpleSDE(), torch.zeros(5, 2), weighting="uniform")
    with pytest.raises(ConfigError):
        score_fn(net, SimpleSDE(), "v")
