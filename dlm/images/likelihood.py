"""Bits per dimension of 8-bit images under a prompted U-Net, with the first-order WKB correction per 𝔥.

Pixels are uniformly dequantized into model space (:mod:`dlm.images.pixels`) and scored by
:func:`dlm.continuous.log_likelihood` (the PF-ODE density; Song et al., ICLR'21), whose first-order WKB
coefficient gives log q^𝔥 ≈ log q^0 + 𝔥·correction (Hirono, Tanaka & Fukushima, ICML'24). Hutchinson's
divergence makes 𝔥 = 0 affordable for any image size, and with it the correction is the Monte-Carlo path
estimator of :mod:`dlm.continuous.wkb_paths` (O(1) third-order forward passes of the U-Net per step, unbiased,
noisy: average over images or `paths`). The exact correction (exact_divergence=True) needs O(D) backward passes
and a D×D state per image: only for a handful of pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from dlm.continuous.likelihood import bits_per_dim, log_likelihood
from dlm.images.conditioning import TextCondition
from dlm.images.guidance import conditional_score, guided_score
from dlm.images.pixels import to_model_space


def image_bits_per_dim(
    model,
    images: Tensor,
    condition: TextCondition | None = None,
    hs: Sequence[float] = (0.0,),
    exact_divergence: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
    paths: int = 1,
    path_steps: int = 50,
    progress: bool = False,
) -> dict[float, Tensor]:
    """{𝔥: bits/dim [B]} of uint8 images [B, H, W] under the model's (null-prompt or prompted) score.

    Any 𝔥 > 0 adds the WKB correction (exact, or the mean of `paths` perturbed paths on a `path_steps` grid with
    Hutchinson divergences); the same dequantization and solve serve every 𝔥:
    bits/dim(𝔥) = bits/dim(0) − 𝔥·correction/(D ln 2).
    """
    x = to_model_space(images, torch.rand(images.shape, generator=generator))
    score = guided_score(conditional_score(model), condition, 1.0)
    with_correction = any(h > 0 for h in hs)
    out = log_likelihood(score, model.config.build_sde(), x, rtol=rtol, atol=atol, exact_divergence=exact_divergence,
                         correction=with_correction, generator=generator, paths=paths, path_steps=path_steps,
                         progress=progress)
    dims = x[0].numel()
    base = bits_per_dim(out.log_prob, dims)
    return {h: base - (h * out.correction / (dims * math.log(2.0)) if h > 0 else 0.0) for h in hs}
