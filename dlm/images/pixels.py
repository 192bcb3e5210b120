"""Pixels ↔ model space: 8-bit grey levels p ∈ {0..255} live in x = 2u − 1 ∈ [−1, 1), u = (p + δ)/256.

δ = ½ (the bin centre) for training and sampling, δ ~ U[0, 1) for uniform dequantization in likelihoods, which is
what :func:`dlm.continuous.bits_per_dim` (scale 2, 256 levels) assumes. :func:`to_pixels` inverts either exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

LEVELS = 256


def to_model_space(images: Tensor, dequantization: Tensor | None = None) -> Tensor:
    """uint8 [B, H, W] → float [B, 1, H, W], x = 2(p + δ)/256 − 1 with δ = ½ or the given uniform noise."""
    offset = 0.5 if dequantization is None else dequantization.reshape(images.shape)
    return (2.0 * (images.to(torch.get_default_dtype()) + offset) / LEVELS - 1.0).unsqueeze(1)


def to_pixels(x: Tensor) -> Tensor:
    """float [B, 1, H, W] → uint8 [B, H, W]: the bin ⌊(x + 1)/2 · 256⌋ clipped to 0..255."""
    return ((x.squeeze(1) + 1.0) * (LEVELS / 2)).floor().clamp(0, LEVELS - 1).to(torch.uint8)
