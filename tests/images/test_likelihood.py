"""Bits/dim of images: exact for a zero score (a linear PF-ODE), WKB correction consistent across 𝔥."""

import math

import pytest
import torch

from dlm.continuous.likelihood import bits_per_dim
from dlm.images.likelihood import image_bits_per_dim
from dlm.images.pixels import to_model_space

from tests.images.conftest import random_unet


def test_zero_score_gives_the_closed_form():
    """ε̂ ≡ 0 makes the PF-ODE dx = −½β x dt: x_T = x·e^{−½(B(T)−B(t_min))} and log q = log π(x_T) − ½D∫β."""
    model = random_unet()
    with torch.no_grad():
        model.conv_out.weight.zero_()
        model.conv_out.bias.zero_()
    images = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    got = image_bits_per_dim(model, images, generator=torch.Generator().manual_seed(1))[0.0]
    sde = model.config.build_sde()
    x = to_model_space(images, torch.rand(images.shape, generator=torch.Generator().manual_seed(1))).reshape(3, -1)
    integral = float(sde.beta_integral(torch.tensor(sde.t_max)) - sde.beta_integral(torch.tensor(sde.t_min)))
    x_T = x * math.exp(-0.5 * integral)
    log_prob = sde.prior_log_prob(x_T) - 0.5 * 64 * integral
    torch.testing.assert_close(got, bits_per_dim(log_prob, 64), rtol=1e-4, atol=1e-4)


def test_path_estimated_wkb_correction_with_hutchinson_divergences():
    """The default (Hutchinson) likelihood takes the correction from perturbed paths: linear in 𝔥, seeded."""
    model = random_unet()
    images = torch.randint(0, 256, (2, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def run():
        return image_bits_per_dim(model, images, hs=(0.0, 0.5, 1.0), generator=torch.Generator().manual_seed(3),
                                  rtol=1e-3, atol=1e-3, paths=2, path_steps=1)

    out = run()
    assert all(torch.isfinite(v).all() for v in out.values()) and not torch.equal(out[1.0], out[0.0])
    torch.testing.assert_close(out[1.0] - out[0.0], 2 * (out[0.5] - out[0.0]))
    torch.testing.assert_close(run()[1.0], out[1.0])


@pytest.mark.slow
def test_wkb_correction_shifts_bits_per_dim_linearly_in_h():
    """Minutes on a CPU: at D = 16 one step of the correction's ODE takes ~10 s (third-order derivatives of the U-Net)."""
    model = random_unet(image_size=4, sde_kwargs={"t_min": 1e-2})
    images = torch.randint(0, 256, (1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = image_bits_per_dim(model, images, hs=(0.0, 0.5, 1.0), exact_divergence=True, rtol=1e-2, atol=1e-2,
                             generator=torch.Generator().manual_seed(3))
    assert set(out) == {0.0, 0.5, 1.0} and all(torch.isfinite(v).all() for v in out.values())
    torch.testing.assert_close(out[1.0] - out[0.0], 2 * (out[0.5] - out[0.0]))
    assert not torch.equal(out[1.0], out[0.0])
