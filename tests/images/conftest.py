"""Tiny image models shared by the image tests: saved once per session, loaded by each test that needs one."""

from __future__ import annotations

import pytest
import torch

from dlm.images import UNetConfig, UNetForDiffusion

TINY_DIGITS = dict(image_size=8, base_channels=8, channel_mult=[1, 2], num_res_blocks=1, num_heads=2, groups=4,
                   cond_dim=10, text_encoder="class", dataset="digits")


def random_unet(seed: int = 0, **overrides) -> UNetForDiffusion:
    """A tiny digits U-Net with every weight drawn N(0, 0.05²) (so no zero-initialised branch hides a bug)."""
    torch.manual_seed(seed)
    model = UNetForDiffusion(UNetConfig(**{**TINY_DIGITS, **overrides})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    return model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("unet") / "tiny"
    random_unet().save_pretrained(path)
    return path
