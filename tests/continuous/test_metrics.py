"""Sliced Wasserstein and MMD on cases with known values."""

import math

import pytest
import torch

from dlm.continuous.metrics import mmd2, sliced_wasserstein


def test_sliced_wasserstein_of_a_shift_is_its_norm_over_root_d():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=gen, dtype=torch.float64)
    shift = torch.tensor([0.6, -0.8], dtype=torch.float64)  # ‖m‖ = 1: E_θ(θᵀm)² = 1/2 in 2-D
    assert sliced_wasserstein(x, x + shift, 1000, gen) == pytest.approx(1 / math.sqrt(2), rel=0.05)
    assert sliced_wasserstein(x, x, 64, gen) == 0.0
    y = torch.randn(10000, 2, generator=gen, dtype=torch.float64)
    assert sliced_wasserstein(x, y, 256, gen) < 0.05  # unequal sizes, same law


def test_mmd_separates_distributions():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 800, 2, generator=gen, dtype=torch.float64)
    assert abs(mmd2(x, y)) < 0.01
    assert mmd2(x, y + 1.0) > 0.1
