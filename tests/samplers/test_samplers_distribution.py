"""Sampled sequences follow the right law: total-variation distance on an enumerable toy (V=4, L=3) with the
exact posterior as denoiser, against the sampling-noise level E TV(p̂_n, p) of n i.i.d. draws.

For the per-token step samplers (euler, analytic, ancestral) the discretisation bias is not guessed: the
exact law D_N of the N-step chain is computed by propagating it over all states (``chain_law``), so
  (1) TV(samples, D_N) ≤ noise·(1 + margin)           — the loop realises its chain, and
  (2) TV(samples, p)   ≤ noise·(1 + margin) + TV(D_N, p) — the allowance is the chain's exact bias,
while TV(D_N, p) → 0 with N, and for the masked process stays below the rigorous collision bound
Σ_steps P(≥ 2 tokens revealed in one step) (the factorised step is exact given at most one reveal).
The margin: over 300 seeds TV(p̂_n, p)/noise had mean 1.00 and s.d. 0.12 here, so 0.4 is > 3 s.d.
"""

import pytest
import torch

from dlm.exact import ExactPosterior, random_toy_distribution
from dlm.processes import MaskedProcess, UniformProcess
from dlm.samplers import sample, time_grid
from dlm.schedules import CosineSchedule
from dlm.exact import TabulatedPosterior
from dlm.samplers.reference import chain_law, empirical, expected_tv_noise, step_fn, total_variation

V, L, N = 4, 3, 20_000
PROBS = random_toy_distribution(V, L, seed=1)
MARGIN = 0.4


def check_law(samples: torch.LongTensor, target: torch.Tensor, chain: torch.Tensor | None = None,
              margin: float = MARGIN):
    emp = empirical(samples, V)
    chain = target if chain is None else chain
    assert total_variation(emp, chain) <= expected_tv_noise(chain, len(samples)) * (1 + margin), \
        (total_variation(emp, chain), expected_tv_noise(chain, len(samples)))
    bound = expected_tv_noise(target, len(samples)) * (1 + margin) + total_variation(chain, target)
    assert total_variation(emp, target) <= bound, (total_variation(emp, target), bound)


def collision_bound(process, grid: torch.Tensor) -> float:
    """Σ over steps (and the final clean-up) of P(≥ 2 of the L tokens are revealed in that step), d = m_t − m_s."""
    mask_prob = 1 - process.schedule.alpha(torch.cat([grid, torch.zeros(1, dtype=torch.float64)]))
    mask_prob[-1] = 0.0
    d = -mask_prob.diff()
    return float((1 - (1 - d) ** L - L * d * (1 - d) ** (L - 1)).sum())


@pytest.mark.parametrize("method", ["euler", "analytic", "ancestral"])
@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_step_samplers_follow_their_exact_chain(cls, method):
    process = cls(V)
    exact = ExactPosterior(process, PROBS, L)
    steps = 12
    samples = sample(TabulatedPosterior(exact), process, N, L, steps, method=method, generator=torch.Generator().manual_seed(1))
    chain = chain_law(step_fn(method, process), exact, time_grid(process.schedule, steps))
    check_law(samples, PROBS, chain)


@pytest.mark.parametrize("method", ["euler", "analytic", "ancestral"])
@pytest.mark.parametrize("process", [MaskedProcess(V, CosineSchedule()), UniformProcess(V)], ids=["masked", "uniform"])
def test_discretisation_bias_decreases_with_steps(process, method):
    """(t_min = 1e-3: ExactPosterior evaluates α in float32, where the cosine 1 − α(1e-5) rounds to 0.)"""
    exact = ExactPosterior(process, PROBS, L)
    grids = [time_grid(process.schedule, n, t_min=1e-3) for n in (2, 8, 32, 128)]
    bias = [total_variation(chain_law(step_fn(method, process), exact, grid), PROBS) for grid in grids]
    assert all(a > b for a, b in zip(bias, bias[1:])), bias
    assert bias[-1] < 0.01, bias
    if isinstance(process, MaskedProcess):
        for grid, b in zip(grids, bias):
            assert b <= collision_bound(process, grid) + 1e-9


def test_masked_ancestral_bias_is_below_the_collision_bound():
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    for steps in (4, 16, 64):
        grid = time_grid(process.schedule, steps)
        bias = total_variation(chain_law(step_fn("ancestral", process), exact, grid), PROBS)
        assert 0 < bias <= collision_bound(process, grid)


def test_euler_empirical_error_shrinks_with_steps():
    process = UniformProcess(V)
    denoiser = TabulatedPosterior(ExactPosterior(process, PROBS, L))
    tv = [total_variation(empirical(sample(denoiser, process, N, L, n, method="euler",
                                           generator=torch.Generator().manual_seed(2)), V), PROBS) for n in (3, 48)]
    assert tv[0] > 5 * tv[1], tv
    assert tv[1] <= expected_tv_noise(PROBS, N) * (1 + MARGIN) + 0.01


def test_first_hitting_is_exact():
    process = MaskedProcess(V, CosineSchedule())
    denoiser = TabulatedPosterior(ExactPosterior(process, PROBS, L), time_independent=True)
    samples = sample(denoiser, process, N, L, method="first_hitting", generator=torch.Generator().manual_seed(3))
    check_law(samples, PROBS)


def test_confidence_in_random_order_one_token_per_step_is_exact():
    """With a random order and one reveal per step, confidence sampling is any-order autoregressive: exact."""
    process = MaskedProcess(V)
    denoiser = TabulatedPosterior(ExactPosterior(process, PROBS, L), time_independent=True)
    samples = sample(denoiser, process, N, L, L, method="confidence", confidence="random",
                     generator=torch.Generator().manual_seed(4))
    check_law(samples, PROBS)


def test_remdm_follows_its_chain():
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    options = dict(remask=0.1, remask_strategy="rescale")
    samples = sample(TabulatedPosterior(exact), process, N, L, 12, method="ancestral",
                     generator=torch.Generator().manual_seed(5), **options)
    chain = chain_law(step_fn("ancestral", process, **options), exact, time_grid(process.schedule, 12))
    check_law(samples, PROBS, chain)


def conditional(probs: torch.Tensor, fixed: dict[int, int]) -> torch.Tensor:
    """p(x | x_i = v for every fixed (i, v)) over all V^L sequences."""
    keep = torch.ones(V**L, dtype=torch.bool)
    for i, token in fixed.items():
        keep &= (torch.arange(V**L) // V ** (L - 1 - i)) % V == token
    out = torch.where(keep, probs, 0.0)
    return out / out.sum()


@pytest.mark.parametrize("method", ["first_hitting", "ancestral"])
def test_masked_prefix_and_suffix_conditioning_is_exact(method):
    """Clean positions of x_t are observed x0 tokens under the masked process: the sampler draws p(x | fixed)."""
    process = MaskedProcess(V)
    exact = ExactPosterior(process, PROBS, L)
    fixed = {0: 2, 2: 1}
    target = conditional(PROBS, fixed)
    mask = torch.tensor([[False, False, True]])
    samples = sample(TabulatedPosterior(exact, time_independent=True), process, N, L, 8, method=method,
                     generator=torch.Generator().manual_seed(6), prompt=torch.tensor([[2]]),
                     fixed_mask=mask, fixed_tokens=torch.tensor([[0, 0, 1]]))
    assert (samples[:, 0] == 2).all() and (samples[:, 2] == 1).all()
    chain = None
    if method == "ancestral":
        chain = chain_law(step_fn(method, process), exact, time_grid(process.schedule, 8), fixed)
    check_law(samples, target, chain, margin=1.0)  # 4 outcomes: relative s.d. of the TV is larger


def test_uniform_conditioning_with_a_conditional_denoiser():
    """Uniform x_t never reveals x0, so an exact conditional sampler needs p(x0 | x_t, x0_fixed): the exact
    posterior of p(· | fixed) is that (its likelihood at the fixed positions is one constant)."""
    process = UniformProcess(V)
    fixed = {0: 3}
    target = conditional(PROBS, fixed)
    exact = ExactPosterior(process, target, L)
    samples = sample(TabulatedPosterior(exact), process, N, L, 12, method="analytic", generator=torch.Generator().manual_seed(7),
                     prompt=torch.tensor([[3]]))
    assert (samples[:, 0] == 3).all()
    check_law(samples, target, chain_law(step_fn("analytic", process), exact, time_grid(process.schedule, 12), fixed),
              margin=0.6)
