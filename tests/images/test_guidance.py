"""Classifier-free guidance: w = 0 and w = 1 are exactly the unconditional and conditional scores."""

import pytest
import torch

from dlm.errors import InputError
from dlm.images.guidance import conditional_score, guided_score
from dlm.images.text_encoders import ClassEncoder

from tests.images.conftest import random_unet


@pytest.fixture
def setup():
    model = random_unet()
    gen = torch.Generator().manual_seed(2)
    x, t = torch.randn(4, 1, 8, 8, generator=gen), torch.rand(4, generator=gen) * 0.9 + 0.05
    cond = ClassEncoder("digits")(["a one", "a two", "a three", "a four"])
    score = conditional_score(model)
    return model, x, t, cond, score


def test_conditional_score_is_minus_eps_over_sigma(setup):
    model, x, t, cond, score = setup
    sigma = model.config.build_sde().marginal(t)[1]
    assert torch.equal(score(x, t, cond, None), -model(x, t, cond) / sigma[:, None, None, None])


def test_w0_and_w1_are_exact(setup):
    model, x, t, cond, score = setup
    unconditional, conditional = score(x, t, None, None), score(x, t, cond, None)
    assert torch.equal(guided_score(score, cond, 0.0)(x, t), score(x, t, cond, torch.ones(4, dtype=torch.bool)))
    torch.testing.assert_close(guided_score(score, cond, 0.0)(x, t), unconditional, rtol=0, atol=1e-5)
    assert torch.equal(guided_score(score, cond, 1.0)(x, t), conditional)
    assert torch.equal(guided_score(score, None, 3.0)(x, t), unconditional)


def test_w3_extrapolates_in_one_batched_call(setup):
    model, x, t, cond, score = setup
    calls = []
    counted = lambda *args: calls.append(args[0].shape[0]) or score(*args)  # noqa: E731
    guided = guided_score(counted, cond, 3.0)(x, t)
    assert calls == [8]
    unconditional, conditional = score(x, t, None, None), score(x, t, cond, None)
    torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("w", [-0.5, float("nan"), float("inf"), True])
def test_bad_guidance(setup, w):
    *_, cond, score = setup
    with pytest.raises(InputError, match="guidance must be a finite number >= 0"):
        guided_score(score, cond, w)
