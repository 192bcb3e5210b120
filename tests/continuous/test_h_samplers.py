"""With the exact mixture score every sampler (every 𝔥) draws the mixture; Heun and Euler converge at their orders."""

import pytest
import torch
from torchdiffeq import odeint

from dlm.continuous.mixture import GaussianMixture, exact_score
from dlm.continuous.samplers import h_sample, heun_sample, pc_sample
from dlm.continuous.sde import VPSDE, h_drift
from dlm.errors import ConfigError, InputError

MIX = GaussianMixture(
    weights=torch.tensor([0.3, 0.7], dtype=torch.float64),
    means=torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=torch.float64),
    stds=torch.tensor([[0.3, 0.4], [0.5, 0.2]], dtype=torch.float64),
)
SDE = VPSDE()
SCORE = exact_score(MIX, SDE)
N = 4000


def mixture_moments() -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mean, covariance and P(x_0 > 0) of MIX in closed form."""
    mean = (MIX.weights[:, None] * MIX.means).sum(0)
    outer = MIX.means[:, :, None] * MIX.means[:, None, :] + torch.diag_embed(MIX.stds**2)
    cov = (MIX.weights[:, None, None] * outer).sum(0) - mean[:, None] * mean[None, :]
    right = 1 - torch.distributions.Normal(MIX.means[:, 0], MIX.stds[:, 0]).cdf(torch.zeros(2, dtype=torch.float64))
    return mean, cov, (MIX.weights * right).sum().item()


def x_T(seed: int = 0) -> torch.Tensor:
    return SDE.prior_sample((N, 2), torch.Generator().manual_seed(seed), dtype=torch.float64)


SAMPLERS = {
    "pf-ode heun": lambda g: h_sample(SCORE, SDE, (N, 2), 0.0, 50, g, method="heun", x_T=x_T()),
    "h=0.5 heun": lambda g: h_sample(SCORE, SDE, (N, 2), 0.5, 50, g, method="heun", x_T=x_T()),
    "reverse sde euler": lambda g: h_sample(SCORE, SDE, (N, 2), 1.0, 100, g, x_T=x_T()),
    "h=0.3 euler karras grid": lambda g: h_sample(SCORE, SDE, (N, 2), 0.3, 100, g, spacing="karras", x_T=x_T()),
    "pc": lambda g: pc_sample(SCORE, SDE, (N, 2), 50, g, x_T=x_T()),
    "karras heun": lambda g: heun_sample(SCORE, SDE, (N, 2), 25, g, x_T=x_T()),
    "karras heun churn": lambda g: heun_sample(SCORE, SDE, (N, 2), 25, g, s_churn=5.0, x_T=x_T()),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_exact_score_samples_the_mixture(name):
    """Mean, covariance and the mass of the right-hand mode agree within ~4 Monte-Carlo standard errors."""
    x = SAMPLERS[name](torch.Generator().manual_seed(1))
    mean, cov, right = mixture_moments()
    torch.testing.assert_close(x.mean(0), mean, atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.08, rtol=0)
    assert (x[:, 0] > 0).double().mean().item() == pytest.approx(right, abs=0.03)


def test_pf_ode_heun_and_euler_converge_at_their_orders():
    start = x_T()[:64]

    def pf_ode(t, x):
        return h_drift(SCORE, SDE, x, t, 0.0)

    times = torch.tensor([SDE.t_max, SDE.t_min], dtype=torch.float64)
    reference = odeint(pf_ode, start, times, rtol=1e-10, atol=1e-10, options={"step_t": times[1:]})[-1]

    def error(method: str, steps: int) -> float:
        x = h_sample(SCORE, SDE, start.shape, 0.0, steps, method=method, x_T=start)
        return (x - reference).norm(dim=-1).mean().item()

    assert error("heun", 40) / error("heun", 80) == pytest.approx(4.0, rel=0.25)
    assert error("euler", 80) / error("euler", 160) == pytest.approx(2.0, rel=0.15)


def test_bad_arguments():
    with pytest.raises(InputError):
        h_sample(SCORE, SDE, (4, 2), -0.5, 10)
    with pytest.raises(ConfigError):
        h_sample(SCORE, SDE, (4, 2), 0.5, 10, method="rk4")
    with pytest.raises(InputError):
        h_sample(SCORE, SDE, (4, 2), 0.5, 10, x_T=torch.zeros(3, 2))
