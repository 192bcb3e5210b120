"""The U-Net: exact save/load round trip, null condition and dropout, masked cross-attention, input checks."""

import pytest
import torch
from transformers import AutoModel

from dlm.errors import ConfigError, InputError
from dlm.images import TextCondition, UNetConfig, UNetForDiffusion
from dlm.images.text_encoders import ClassEncoder

from tests.images.conftest import random_unet


def inputs(batch: int = 3, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 8, 8, generator=gen), torch.rand(batch, generator=gen)


def test_save_pretrained_round_trip_gives_identical_outputs(tmp_path):
    model = random_unet()
    x, t = inputs()
    cond = ClassEncoder("digits")(["a one", "a two", "a seven"])
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, UNetForDiffusion) and loaded.config.text_encoder == "class"
    assert torch.equal(loaded(x, t, cond), model(x, t, cond))
    assert torch.equal(loaded(x, t), model(x, t))


def test_dropped_rows_use_the_null_prompt():
    model = random_unet()
    x, t = inputs()
    cond = ClassEncoder("digits")(["a one", "a two", "a seven"])
    everything = model(x, t, cond, torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(everything, model(x, t, None), rtol=0, atol=1e-6)
    some = model(x, t, cond, torch.tensor([True, False, True]))
    torch.testing.assert_close(some[1], model(x, t, cond)[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(some[[0, 2]], everything[[0, 2]], rtol=0, atol=1e-6)
    assert not torch.allclose(some[1], everything[1])


def test_padded_tokens_are_ignored():
    model = random_unet()
    x, t = inputs(2)
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randn(2, 4, 10, generator=gen)
    mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    pooled = torch.randn(2, 10, generator=gen)
    other = tokens.clone()
    other[~mask] = 100.0
    torch.testing.assert_close(model(x, t, TextCondition(tokens, mask, pooled)),
                               model(x, t, TextCondition(other, mask, pooled)), rtol=0, atol=1e-6)


def test_sizes_that_do_not_fit_are_input_errors():
    model = random_unet()
    with pytest.raises(InputError, match=r"do not fit this model, which takes \(1, 8, 8\)"):
        model(torch.zeros(2, 1, 28, 28), torch.rand(2))
    with pytest.raises(InputError):
        model(torch.zeros(2, 8, 8), torch.rand(2))


def test_odd_sizes_and_initial_output():
    model = UNetForDiffusion(UNetConfig(image_size=28, base_channels=8, channel_mult=[1, 2, 2], num_res_blocks=1,
                                        num_heads=2, groups=4, cond_dim=10, text_encoder="class"))
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x, torch.rand(2)), torch.zeros_like(x))  # zero-initialised output conv


@pytest.mark.parametrize("fields, message", [
    (dict(groups=3), "not divisible"),
    (dict(attention_levels=[5]), "attention_levels"),
    (dict(prediction="v"), "unknown prediction"),
    (dict(text_encoder="clip"), "unknown prompt encoder"),
    (dict(sde="foo"), "unknown SDE"),
    (dict(channel_mult=[]), "channel_mult"),
])
def test_bad_configs(fields, message):
    with pytest.raises(ConfigError, match=message):
        UNetConfig(**fields)
