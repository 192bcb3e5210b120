"""DLMForDiffusion: config checks, save/load, heads as exact posteriors, rotary maths, inputs, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoConfig, AutoModel

from dlm.errors import ConfigError, InputError
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.models.heads import log_expm1, masked_posterior, uniform_posterior_from_score
from dlm.models.layers import apply_rotary, rotary_inv_freq, rotary_tables

TINY = dict(hidden_size=32, cond_dim=16, num_hidden_layers=2, num_attention_heads=4, max_seq_len=16)
HEAD_PROCESS = [("x0", "masked"), ("x0", "uniform"), ("score", "masked"), ("score", "uniform")]


def tiny_config(head: str = "x0", process: str = "masked", **overrides) -> DLMConfig:
    fields = dict(TINY, vocab_size=11 if process == "masked" else 10, head=head, process=process,
                  time_conditioning=True, scale_by_sigma=head == "score" and process == "masked")
    return DLMConfig(**{**fields, **overrides})


def randomised(model: DLMForDiffusion, seed: int = 0) -> DLMForDiffusion:
    """Random weights everywhere, as the conformance data does: upstream's adaLN-zero init makes outputs trivial.
    LayerNorm weights 1 + N(0, 0.25²), biases N(0, 0.5²), matrices N(0, 1/fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name:
                p.copy_(1 + 0.25 * noise)
            else:
                p.copy_(noise * (0.5 if p.dim() == 1 else p.shape[-1] ** -0.5))
    return model.eval()


def tiny_model(head: str = "x0", process: str = "masked", seed: int = 0, **overrides) -> DLMForDiffusion:
    return randomised(DLMForDiffusion(tiny_config(head, process, **overrides)), seed)


def noisy_tokens(config: DLMConfig, batch: int = 3, length: int = 9, seed: int = 1) -> torch.LongTensor:
    """Random x_t; for masked models about half the positions are the mask."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, config.num_real_tokens, (batch, length), generator=gen)
    if config.process == "masked":
        x = torch.where(torch.rand(x.shape, generator=gen) < 0.5, config.mask_id, x)
    return x


# --- config -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [
    dict(hidden_size=30),                               # not divisible by 4 heads
    dict(hidden_size=12, num_attention_heads=4),        # head_dim 3 is odd
    dict(head="logits"),
    dict(process="absorbing"),
    dict(head="x0", scale_by_sigma=True),
    dict(head="score", process="uniform", vocab_size=10, scale_by_sigma=True),
    dict(mask_id=3),
    dict(process="uniform", vocab_size=10, mask_id=9, scale_by_sigma=False),
    dict(noise_schedule="exponential"),
    dict(schedule_kwargs={"sigma_max": 3.0}),           # not a log-linear parameter
    dict(vocab_size=0),
    dict(dropout=1.0),
])
def test_config_rejects_bad_values(overrides):
    with pytest.raises(ConfigError):
        tiny_config(**overrides)


def test_config_vocabulary_fields():
    masked, uniform = tiny_config(), tiny_config(process="uniform")
    assert (masked.vocab_size, masked.mask_id, masked.num_real_tokens) == (11, 10, 10)
    assert (uniform.vocab_size, uniform.mask_id, uniform.num_real_tokens) == (10, None, 10)


# --- save / load ----------------------------------------------------------------------------------------------


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny_model("score", "masked", noise_schedule="geometric",
                       schedule_kwargs={"sigma_min": 1e-4, "sigma_max": 20.0})
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]

    loaded = AutoModel.from_pretrained(tmp_path)  # registered on import, no trust_remote_code
    assert type(loaded) is DLMForDiffusion and type(AutoConfig.from_pretrained(tmp_path)) is DLMConfig
    assert loaded.config.to_diff_dict() == model.config.to_diff_dict()
    assert loaded.schedule == model.schedule
    for (name, a), (name_b, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert name == name_b and torch.equal(a, b), name
    x = noisy_tokens(model.config)
    t = torch.tensor([0.1, 0.5, 0.9])
    with torch.no_grad():
        assert torch.equal(model(x, t=t).logits, loaded.eval()(x, t=t).logits)


def test_fresh_model_is_adaln_zero():
    """Upstream init: adaLN and the output projection start at 0, so the posterior starts uniform."""
    torch.manual_seed(0)
    model = DLMForDiffusion(tiny_config()).eval()
    x = noisy_tokens(model.config)
    out = model(x, t=0.5)
    assert torch.equal(out.logits, torch.zeros_like(out.logits))
    masked = x == model.config.mask_id
    torch.testing.assert_close(out.x0_logits[masked], torch.full((int(masked.sum()), 10), -math.log(10)))
    embedding = model.vocab_embed.embedding
    assert embedding.abs().max() <= model.config.hidden_size ** -0.5 and embedding.std() > 0.08  # U(±1/√hidden)


# --- heads -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head,process", HEAD_PROCESS)
def test_x0_logits_are_normalised_log_probs(head, process):
    model = tiny_model(head, process)
    x = noisy_tokens(model.config)
    with torch.no_grad():
        out = model(x, t=torch.tensor([0.05, 0.5, 0.95]))
    assert out.logits.shape == (3, 9, model.config.vocab_size)
    assert out.x0_logits.shape == (3, 9, model.config.num_real_tokens)
    torch.testing.assert_close(torch.logsumexp(out.x0_logits, -1), torch.zeros(3, 9))
    if head == "score":  # own-token ratio is 1
        assert torch.equal(out.logits.gather(-1, x[..., None]), torch.zeros(3, 9, 1))
    if process == "masked":  # carry-over: an unmasked token is its own clean token
        unmasked = x != model.config.mask_id
        delta = torch.full((3, 9, 10), -math.inf).scatter(-1, x.clamp(max=9)[..., None], 0.0)
        assert torch.equal(out.x0_logits[unmasked], delta[unmasked])


def test_scale_by_sigma_shifts_score_by_log_expm1_sigma():
    """SEDD: s = f − log(e^σ̄ − 1) − log(N − 1) off the own token."""
    scaled = tiny_model("score", "masked")
    raw = DLMForDiffusion(tiny_config("score", "masked", scale_by_sigma=False)).eval()
    raw.load_state_dict(scaled.state_dict())
    x, sigma = noisy_tokens(scaled.config), torch.tensor([0.01, 0.7, 4.0])
    with torch.no_grad():
        shift = scaled(x, sigma=sigma).logits - raw(x, sigma=sigma).logits
    expected = (-torch.log(torch.expm1(sigma.double())) - math.log(10)).float()[:, None, None].expand(3, 9, 11)
    own = torch.zeros(3, 9, 11, dtype=torch.bool).scatter(-1, x[..., None], True)
    torch.testing.assert_close(shift[~own], expected[~own], atol=1e-5, rtol=1e-5)


def test_log_expm1_switches_at_one_half():
    sigma = torch.tensor([1e-4, 0.49, 0.5, 3.0, 30.0])
    torch.testing.assert_close(log_expm1(sigma).double(), torch.log(torch.expm1(sigma.double())), rtol=1e-6, atol=0)


def mean_of_ratios(p: torch.Tensor, x_t: torch.LongTensor, sigma: torch.Tensor) -> torch.Tensor:
    """DESIGN's exact uniform ratios r_y = Σ_v p_v q(y|v)/q(x_i|v), q(y|v) = e^{−σ̄}δ_{yv} + (1 − e^{−σ̄})/V."""
    num = p.shape[-1]
    a = torch.exp(-sigma)[:, None, None, None]
    q = a * torch.eye(num, dtype=p.dtype) + (1 - a) / num  # [B, 1, v, y]
    q_own = q.expand(-1, x_t.shape[1], -1, -1).gather(-1, x_t[:, :, None, None].expand(-1, -1, num, 1))
    return (p[..., None] * q / q_own).sum(-2)


def test_uniform_score_head_inverts_mean_of_ratios():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(3 * torch.randn(4, 6, 7, generator=gen, dtype=torch.float64), -1)
    x_t = torch.randint(0, 7, (4, 6), generator=gen)
    sigma = torch.tensor([0.01, 0.3, 1.5, 5.0], dtype=torch.float64)
    log_ratios = torch.log(mean_of_ratios(p, x_t, sigma))
    torch.testing.assert_close(log_ratios.gather(-1, x_t[..., None]), torch.zeros(4, 6, 1, dtype=torch.float64))
    recovered = uniform_posterior_from_score(log_ratios + 2.5, x_t, sigma)  # invariant to a shift of the score
    torch.testing.assert_close(recovered.exp(), p.float(), atol=1e-6, rtol=1e-5)


def test_absorbing_score_head_gives_the_posterior():
    """At a masked position s_y = e^{−σ̄}/(1 − e^{−σ̄})·p_y, so softmax over real tokens recovers p."""
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(2 * torch.randn(2, 5, 6, generator=gen), -1)
    sigma = torch.tensor([0.2, 2.0])
    score = torch.cat([p.log() - log_expm1(sigma)[:, None, None], torch.zeros(2, 5, 1)], -1)
    x_t = torch.full((2, 5), 6)
    torch.testing.assert_close(masked_posterior(score, x_t, 6), p.log())


# --- rotary ----------------------------------------------------------------------------------------------------


def test_rotary_is_the_rotate_half_complex_rotation():
    """(x_j, x_{j+D/2}) as x_j + i·x_{j+D/2}, multiplied by e^{i·p·θ_j}, θ_j = 10000^(−2j/D)."""
    length, dim = 5, 8
    x = torch.randn(length, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cos, signed_sin = rotary_tables(length, dim, 10000.0, torch.device("cpu"), torch.float64)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * 10000.0 ** (-torch.arange(0, dim, 2) / dim)
    z = torch.complex(x[:, : dim // 2], x[:, dim // 2:]) * torch.exp(1j * angles)
    torch.testing.assert_close(apply_rotary(x, cos, signed_sin), torch.cat([z.real, z.imag], -1))
    torch.testing.assert_close(rotary_inv_freq(dim, 10000.0).double(), angles[1], atol=1e-7, rtol=1e-6)


def test_rotary_scores_depend_on_relative_position_only():
    dim = 16
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, dim, generator=gen, dtype=torch.float64).unbind(0)
    cos, sin = rotary_tables(40, dim, 10000.0, torch.device("cpu"), torch.float64)

    def score(m: int, n: int) -> torch.Tensor:
        return (apply_rotary(q, cos[m], sin[m]) * apply_rotary(k, cos[n], sin[n])).sum()

    torch.testing.assert_close(score(3, 7), score(20, 24))
    torch.testing.assert_close(score(9, 1), score(38, 30))


# --- forward semantics -----------------------------------------------------------------------------------------


def test_outputs_do_not_depend_on_max_seq_len():
    """No position table: max_seq_len is metadata, and any L works (shorter or longer)."""
    short = tiny_model(max_seq_len=4)
    long = DLMForDiffusion(tiny_config(max_seq_len=64)).eval()
    long.load_state_dict(short.state_dict())
    for length in (3, 20):
        x = noisy_tokens(short.config, length=length)
        with torch.no_grad():
            assert torch.equal(short(x, t=0.4).logits, long(x, t=0.4).logits)


def test_t_is_converted_by_the_schedule():
    model = tiny_model("score", "masked", noise_schedule="geometric",
                       schedule_kwargs={"sigma_min": 1e-3, "sigma_max": 10.0})
    x, t = noisy_tokens(model.config), torch.tensor([0.0, 0.5, 1.0])
    with torch.no_grad():
        by_t, by_sigma = model(x, t=t), model(x, sigma=1e-3 ** (1 - t) * 10.0 ** t)
    torch.testing.assert_close(by_t.sigma, torch.tensor([1e-3, 0.1, 10.0]))
    torch.testing.assert_close(by_t.logits, by_sigma.logits)
    with torch.no_grad():  # a scalar t is broadcast to the batch
        torch.testing.assert_close(model(x, t=0.5).logits[1], by_t.logits[1])


def test_without_time_conditioning_only_the_score_scaling_sees_sigma():
    x0_model = tiny_model(time_conditioning=False)
    x = noisy_tokens(x0_model.config)
    with torch.no_grad():
        assert torch.equal(x0_model(x, t=0.1).logits, x0_model(x, t=0.9).logits)
    score_model = tiny_model("score", "masked", time_conditioning=False)
    with torch.no_grad():
        low, high = score_model(x, sigma=0.2).logits, score_model(x, sigma=2.0).logits
    own = torch.zeros_like(low, dtype=torch.bool).scatter(-1, x[..., None], True)
    shift = (log_expm1(torch.tensor(0.2)) - log_expm1(torch.tensor(2.0))).item()
    torch.testing.assert_close(high[~own] - low[~own], torch.full_like(low[~own], shift), atol=1e-5, rtol=0)


def test_hidden_states_and_tuple_output():
    model = tiny_model()
    x = noisy_tokens(model.config)
    with torch.no_grad():
        out = model(x, t=0.3, output_hidden_states=True)
        as_tuple = model(x, t=0.3, return_dict=False)
    assert len(out.hidden_states) == 3 and all(h.shape == (3, 9, 32) for h in out.hidden_states)
    assert torch.equal(out.hidden_states[0], model.vocab_embed.embedding[x])
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.logits) and len(as_tuple) == 3


@pytest.mark.parametrize("call", [
    lambda m, x: m(x.float(), t=0.5),
    lambda m, x: m(x[0], t=0.5),
    lambda m, x: m(x[:, :0], t=0.5),
    lambda m, x: m(x.clamp(max=10) + 1, t=0.5),      # id 11 = vocab_size
    lambda m, x: m(x - 11, t=0.5),
    lambda m, x: m(x, t=1.5),
    lambda m, x: m(x, t=torch.tensor([0.1, -0.2, 0.3])),
    lambda m, x: m(x, t=torch.tensor([0.1, 0.2])),    # batch is 3
    lambda m, x: m(x, t=float("nan")),
    lambda m, x: m(x, t="0.5"),
    lambda m, x: m(x, t=0.5, sigma=1.0),
    lambda m, x: m(x),
    lambda m, x: m(x, sigma=-1.0),
])
def test_bad_inputs_raise_input_error(call):
    model = tiny_model()
    with pytest.raises(InputError):
        call(model, noisy_tokens(model.config))


# --- training --------------------------------------------------------------------------------------------------


def masked_nll(model: DLMForDiffusion, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, 10, (2, 8), generator=gen)
    x_t = torch.where(torch.rand(x0.shape, generator=gen) < 0.6, model.config.mask_id, x0)
    log_probs = model(x_t, t=torch.tensor([0.3, 0.8])).x0_logits.gather(-1, x0[..., None])
    return -log_probs[x_t == model.config.mask_id].mean()


def test_gradients_reach_every_parameter():
    model = tiny_model().train()
    masked_nll(model).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_activation_checkpointing_gives_the_same_gradients():
    plain, checkpointed = tiny_model().train(), tiny_model().train()
    checkpointed.activation_checkpointing_enable()
    assert checkpointed.gradient_checkpointing
    masked_nll(plain).backward()
    masked_nll(checkpointed).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_bf16_weights(tmp_path):
    model = tiny_model("score", "masked")
    model.save_pretrained(tmp_path)
    low = DLMForDiffusion.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert low.vocab_embed.embedding.dtype == torch.bfloat16
    x = noisy_tokens(model.config)
    with torch.no_grad():
        reference, out = model(x, t=0.5).logits, low(x, t=0.5).logits
    assert out.dtype == torch.float32
    assert (out - reference).abs().max() < 0.05 * reference.abs().max()


def test_bf16_autocast_on_cpu():
    model = tiny_model("score", "masked")
    x = noisy_tokens(model.config)
    with torch.no_grad():
        reference = model(x, t=0.5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, t=0.5)
    assert low.logits.dtype == torch.float32 and torch.isfinite(low.x0_logits[low.x0_logits > -math.inf]).all()
    assert (low.logits - reference.logits).abs().max() < 0.05 * reference.logits.abs().max()
