import math

import pytest
import scipy.linalg
import torch

from dlm.errors import ConfigError, InputError
from dlm.processes import MaskedProcess, UniformProcess, get_process
from dlm.schedules import CosineSchedule, GeometricSchedule, LogLinearSchedule

V = 5
SCHEDULES = [LogLinearSchedule(), CosineSchedule(), GeometricSchedule(1e-3, 3.0)]


def integrated_generator(process, t: float, steps: int = 4000) -> torch.Tensor:
    """∫_0^t R(s) ds by the trapezoid rule on the process's own rate_matrix, plus σ̄(0)Q for σ̄(0) > 0."""
    s = torch.linspace(0.0, t, steps + 1, dtype=torch.float64)
    rates = process.rate_matrix(s).double()
    integral = torch.trapezoid(rates, s, dim=0)
    return integral + float(process.schedule.total(0.0)) * process.generator_matrix().double()


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_marginals_equal_matrix_exponential_of_integrated_generator(cls, schedule):
    process = cls(V, schedule)
    x0 = torch.arange(V).unsqueeze(0)
    for t in (0.1, 0.5, 0.9):
        transition = scipy.linalg.expm(integrated_generator(process, t).numpy())
        expected = torch.from_numpy(transition[:V])  # rows of the real tokens
        got = process.marginal_probs(x0, t)[0].double()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_rate_matrix_rows_sum_to_zero_and_batch(cls):
    process = cls(V)
    rates = process.rate_matrix(torch.tensor([0.2, 0.7]))
    assert rates.shape == (2, process.num_states, process.num_states)
    torch.testing.assert_close(rates.sum(-1), torch.zeros(2, process.num_states), atol=1e-6, rtol=0)
    off_diagonal = rates - torch.diag_embed(torch.diagonal(rates, dim1=-2, dim2=-1))
    assert (off_diagonal >= 0).all()


@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_sample_xt_frequencies_match_marginals(cls):
    process = cls(V)
    n = 200_000
    x0 = torch.tensor([[1, 3]]).expand(n, 2)
    t = torch.tensor([0.3, 0.8]).repeat(n // 2)
    gen = torch.Generator().manual_seed(0)
    x_t = process.sample_xt(x0, t, generator=gen)
    for row, tt in enumerate((0.3, 0.8)):
        counts = torch.stack([torch.bincount(x_t[row::2, i], minlength=process.num_states) for i in range(2)]).double()
        freq = counts / (n // 2)
        probs = process.marginal_probs(x0[:1], tt)[0].double()
        std = torch.sqrt(probs * (1 - probs) / (n // 2))
        assert ((freq - probs).abs() <= 5 * std + 1e-12).all()


def test_masked_process_specifics():
    process = MaskedProcess(V)
    assert process.num_states == V + 1 and process.mask_id == V
    prior = process.prior_sample((3, 4))
    assert (prior == V).all()
    assert process.prior_log_prob(prior).tolist() == [0.0, 0.0, 0.0]
    assert process.prior_log_prob(torch.tensor([[V, 0]])).item() == -math.inf
    with pytest.raises(InputError, match="mask_id"):
        MaskedProcess(V, mask_id=0)


def test_uniform_process_specifics():
    process = UniformProcess(V)
    assert process.num_states == V and process.mask_id is None
    prior = process.prior_sample((20_000, 2), generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(prior.flatten(), minlength=V).double() / prior.numel()
    assert (freq - 1 / V).abs().max() < 0.01
    torch.testing.assert_close(process.prior_log_prob(prior[:2]), torch.full((2,), -2 * math.log(V)))


@pytest.mark.parametrize("cls", [MaskedProcess, UniformProcess])
def test_bad_inputs(cls):
    process = cls(V)
    with pytest.raises(InputError, match=r"t must lie in \[0, 1\]"):
        process.sample_xt(torch.zeros(2, 3, dtype=torch.long), 1.5)
    with pytest.raises(InputError, match="token ids must lie"):
        process.marginal_probs(torch.full((2, 3), V + 3), 0.5)
    with pytest.raises(InputError, match="shape"):
        process.sample_xt(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(InputError, match="integers"):
        process.sample_xt(torch.zeros(2, 3), 0.5)


def test_get_process():
    assert isinstance(get_process("masked", 7), MaskedProcess)
    assert isinstance(get_process("uniform", 7, "cosine").schedule, CosineSchedule)
    with pytest.raises(ConfigError, match="unknown process"):
        get_process("gaussian", 7)
