"""SEDD/MDLM converters: upstream's own numbers (../shared/conformance) and checkpoint-error handling."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from dlm.cli.main import main
from dlm.convert import from_mdlm, from_sedd
from dlm.errors import CheckpointError, ConfigError
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.models.heads import log_expm1
from dlm.models.layers import rotary_inv_freq

CONFORMANCE = Path(os.environ.get("DLM_CONFORMANCE_DIR",
                                  Path(__file__).resolve().parents[2].parent / "shared" / "conformance"))
needs_conformance = pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"no conformance data at {CONFORMANCE}")
TOL = dict(atol=1e-4, rtol=1e-4)
TOKENS = 97  # real tokens of the conformance models; the mask is 97


def data(model: str, name: str) -> dict[str, torch.Tensor]:
    return load_file(CONFORMANCE / model / f"{name}.safetensors")


def assert_close_finite(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Upstream's −1e6 "minus infinity": compare entries > −1e5, require the others ≤ −1e5 (or −inf)."""
    finite = expected > -1e5
    torch.testing.assert_close(actual[finite], expected[finite], **TOL)
    assert (actual[~finite] <= -1e5).all()


# --- SEDD ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sedd():
    return from_sedd(CONFORMANCE / "sedd")


@needs_conformance
def test_sedd_reproduces_upstream_log_score(sedd):
    inputs = data("sedd", "inputs")
    with torch.no_grad():
        out = sedd(inputs["input_ids"], sigma=inputs["sigma"])
    torch.testing.assert_close(out.logits, data("sedd", "outputs")["log_score"], **TOL)


@needs_conformance
def test_sedd_intermediates(sedd):
    inputs, expected = data("sedd", "inputs"), data("sedd", "intermediates")
    ids, sigma = inputs["input_ids"], inputs["sigma"]
    with torch.no_grad():
        out = sedd(ids, sigma=sigma, output_hidden_states=True)
        torch.testing.assert_close(sedd.sigma_map(sigma), expected["sigma_map_out"], **TOL)
        torch.testing.assert_close(sedd.conditioning(sigma), expected["c"], **TOL)
    for got, key in zip(out.hidden_states, ("embedding", "block_0_out", "block_1_out"), strict=True):
        torch.testing.assert_close(got, expected[key], **TOL)
    # undo scale_by_sigma; the scatter overwrote each position's own token
    raw = out.logits + log_expm1(sigma)[:, None, None] + math.log(TOKENS)
    own = torch.zeros_like(raw, dtype=torch.bool).scatter(-1, ids[..., None], True)
    torch.testing.assert_close(raw[~own], expected["output_layer_out"][~own], **TOL)


@needs_conformance
def test_sedd_as_denoiser_at_t_matches_sigma(sedd):
    inputs = data("sedd", "inputs")
    with torch.no_grad():
        out = sedd(inputs["input_ids"], t=inputs["t"])
    torch.testing.assert_close(out.sigma, inputs["sigma"], **TOL)
    torch.testing.assert_close(out.logits, data("sedd", "outputs")["log_score"], **TOL)


@needs_conformance
def test_sedd_score_entropy_matches_upstream(sedd):
    """Absorbing DSE at x_t = m: Σ_{y≠m} e^{s_y} − r·s_{x0} + r(log r − 1), r = 1/(e^σ̄ − 1); times σ̄'(t)."""
    inputs, losses = data("sedd", "inputs"), data("sedd", "losses")
    ids, x0, sigma = inputs["input_ids"], inputs["x0"], inputs["sigma"]
    with torch.no_grad():
        score = sedd(ids, sigma=sigma).logits
    ratio = torch.exp(-log_expm1(sigma))[:, None]
    entropy = score[..., :TOKENS].exp().sum(-1) - ratio * score.gather(-1, x0[..., None])[..., 0] \
        + ratio * (ratio.log() - 1)
    entropy = torch.where(ids == TOKENS, entropy, 0.0)
    per_token = inputs["dsigma"][:, None] * entropy
    torch.testing.assert_close(entropy, losses["score_entropy"], **TOL)
    torch.testing.assert_close(per_token, losses["loss_per_token"], **TOL)
    torch.testing.assert_close(per_token.sum(-1), losses["loss_per_sequence"], **TOL)


@needs_conformance
def test_sedd_posterior_matches_upstream_denoiser_step(sedd):
    """SEDD's final Denoiser step (staggered score × transposed transition at σ̄(t)) is, normalised, the
    clean-token posterior that x0_logits returns."""
    inputs, sampling = data("sedd", "inputs"), data("sedd", "sampling")
    with torch.no_grad():
        out = sedd(inputs["input_ids"], t=sampling["t"])
    probs = sampling["denoise_probs"]
    torch.testing.assert_close(out.x0_logits.exp(), probs / probs.sum(-1, keepdim=True), **TOL)


# --- MDLM ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[False, True], ids=["tc_false", "tc_true"])
def mdlm(request):
    """The conformance model (time_conditioning=false) and the same weights with time conditioning on."""
    return request.param, from_mdlm(CONFORMANCE / "mdlm", time_conditioning=request.param)


@needs_conformance
def test_mdlm_reproduces_logits_and_subs(mdlm):
    tc, model = mdlm
    inputs, outputs = data("mdlm", "inputs"), data("mdlm", "outputs")
    suffix = "tc_true" if tc else "tc_false"
    assert model.config.time_conditioning is tc
    with torch.no_grad():
        out = model(inputs["input_ids"], sigma=inputs["sigma"])
    torch.testing.assert_close(out.logits, outputs[f"logits_{suffix}"], **TOL)
    assert_close_finite(out.x0_logits, outputs[f"log_probs_subs_{suffix}"][..., :TOKENS])


@needs_conformance
def test_mdlm_nelbo_matches_upstream(mdlm):
    """Continuous-time NELBO per token: −log p(x0|x_t)·σ̄'(t)/expm1(σ̄) at masked positions."""
    tc, model = mdlm
    inputs, losses = data("mdlm", "inputs"), data("mdlm", "losses")
    suffix = "tc_true" if tc else "tc_false"
    ids = inputs["input_ids"]
    with torch.no_grad():
        log_probs = model(ids, t=inputs["t"]).x0_logits
    nll = -log_probs.gather(-1, inputs["x0"][..., None])[..., 0]
    per_token = torch.where(ids == TOKENS, nll * (inputs["dsigma"] / torch.expm1(inputs["sigma"]))[:, None], 0.0)
    torch.testing.assert_close(per_token, losses[f"nelbo_per_token_{suffix}"], **TOL)
    torch.testing.assert_close(per_token.mean(), losses[f"nelbo_token_mean_{suffix}"], **TOL)


@needs_conformance
def test_mdlm_ddpm_cache_posterior(mdlm):
    tc, model = mdlm
    inputs, sampling = data("mdlm", "inputs"), data("mdlm", "sampling")
    with torch.no_grad():
        out = model(inputs["input_ids"], t=sampling["t"])
    expected = sampling[f"ddpm_cache_p_x0_{'tc_true' if tc else 'tc_false'}"][..., :TOKENS]
    torch.testing.assert_close(out.x0_logits.exp(), expected, **TOL)


@needs_conformance
def test_mdlm_intermediates():
    """Recorded with the conformance config's time_conditioning=false."""
    model = from_mdlm(CONFORMANCE / "mdlm")
    inputs, expected = data("mdlm", "inputs"), data("mdlm", "intermediates")
    with torch.no_grad():
        out = model(inputs["input_ids"], sigma=inputs["sigma"], output_hidden_states=True)
        torch.testing.assert_close(model.conditioning(inputs["sigma"]), expected["c"], **TOL)
    for got, key in zip(out.hidden_states, ("embedding", "block_0_out", "block_1_out"), strict=True):
        torch.testing.assert_close(got, expected[key], **TOL)


@needs_conformance
def test_mdlm_hydra_layout(tmp_path):
    """The GitHub hydra config (model.hidden_size, ...; vocabulary from the embedding) converts the same."""
    shutil.copy(CONFORMANCE / "mdlm" / "weights.safetensors", tmp_path)
    shutil.copy(CONFORMANCE / "mdlm" / "hydra_config.json", tmp_path / "config.json")
    model = from_mdlm(tmp_path)
    assert (model.config.vocab_size, model.config.max_seq_len, model.config.time_conditioning) == (98, 32, False)
    inputs = data("mdlm", "inputs")
    with torch.no_grad():
        logits = model(inputs["input_ids"], sigma=inputs["sigma"]).logits
    torch.testing.assert_close(logits, data("mdlm", "outputs")["logits_tc_false"], **TOL)


# --- CLI -------------------------------------------------------------------------------------------------------


@needs_conformance
def test_cli_convert_writes_a_loadable_directory(tmp_path, capsys):
    out_dir = tmp_path / "sedd-dlm"
    assert main(["convert", "sedd", str(CONFORMANCE / "sedd"), str(out_dir)]) == 0
    assert "converted sedd checkpoint" in capsys.readouterr().out
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "model.safetensors"]
    model = AutoModel.from_pretrained(out_dir).eval()
    inputs = data("sedd", "inputs")
    with torch.no_grad():
        log_score = model(inputs["input_ids"], sigma=inputs["sigma"]).logits
    torch.testing.assert_close(log_score, data("sedd", "outputs")["log_score"], **TOL)


@pytest.mark.parametrize("make_src", [
    lambda tmp: tmp / "missing",
    lambda tmp: (tmp / "empty").mkdir() or tmp / "empty",
])
def test_cli_bad_source_is_one_line_exit_2(tmp_path, capsys, make_src):
    code = main(["convert", "mdlm", str(make_src(tmp_path)), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_non_empty_output(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    assert main(["convert", "sedd", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "not empty" in capsys.readouterr().err


# --- synthetic SEDD checkpoints: exact round trip and every kind of damage ---------------------------------------

SEDD_CONFIG = {"tokens": 10, "graph": {"type": "absorb"}, "noise": {"type": "loglinear"},
               "model": {"type": "ddit", "hidden_size": 32, "cond_dim": 16, "length": 8, "n_blocks": 2,
                         "n_heads": 4, "scale_by_sigma": True, "dropout": 0.0}}


def random_sedd_state(seed: int = 0) -> tuple[DLMForDiffusion, dict[str, torch.Tensor]]:
    """A random model in SEDD's layout (our keys are SEDD's) plus the rotary buffer upstream stores."""
    config = DLMConfig(vocab_size=11, hidden_size=32, cond_dim=16, num_hidden_layers=2, num_attention_heads=4,
                       max_seq_len=8, time_conditioning=True, head="score", scale_by_sigma=True)
    model = DLMForDiffusion(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model, {**model.state_dict(), "rotary_emb.inv_freq": rotary_inv_freq(8, 10000.0)}


def write_sedd(directory: Path, state: dict[str, torch.Tensor], config: dict | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config or SEDD_CONFIG))
    save_file({k: v.contiguous() for k, v in state.items()}, directory / "model.safetensors")
    return directory


def test_synthetic_sedd_round_trip(tmp_path):
    model, state = random_sedd_state()
    converted = from_sedd(write_sedd(tmp_path, state))
    x = torch.tensor([[1, 10, 3, 10, 10, 0]])
    with torch.no_grad():
        assert torch.equal(converted(x, t=0.4).logits, model(x, t=0.4).logits)
    assert not converted.training


@pytest.mark.parametrize("damage,named", [
    (lambda s: s.pop("blocks.1.mlp.2.bias"), ["blocks.1.mlp.2.bias", "missing"]),
    (lambda s: s.__setitem__("blocks.0.attn.qkv.weight", s.pop("blocks.0.attn_qkv.weight")),
     ["blocks.0.attn_qkv.weight", "blocks.0.attn.qkv.weight"]),
    (lambda s: s.__setitem__("vocab_embed.embedding", torch.zeros(12, 32)), ["vocab_embed.embedding", "(12, 32)"]),
    (lambda s: s.__setitem__("rotary_emb.inv_freq", torch.ones(8)), ["rotary_emb.inv_freq"]),
])
def test_damaged_state_is_named(tmp_path, damage, named):
    state = random_sedd_state()[1]
    damage(state)
    with pytest.raises(CheckpointError) as err:
        from_sedd(write_sedd(tmp_path, state))
    assert all(word in err.value.message for word in named), err.value.message


def test_many_missing_keys_are_counted(tmp_path):
    state = {k: v for k, v in random_sedd_state()[1].items() if not k.startswith("blocks.1.")}
    with pytest.raises(CheckpointError, match=r"10 missing keys: blocks\.1\.norm1\.weight, .* and 7 more"):
        from_sedd(write_sedd(tmp_path, state))


def test_truncated_file_and_missing_config(tmp_path):
    path = write_sedd(tmp_path, random_sedd_state()[1]) / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        from_sedd(tmp_path)
    broken = json.loads(json.dumps(SEDD_CONFIG))
    del broken["model"]["n_heads"]
    (tmp_path / "config.json").write_text(json.dumps(broken))
    with pytest.raises(CheckpointError, match="model.n_heads"):
        from_sedd(tmp_path)


def test_training_checkpoint_with_ema(tmp_path):
    """checkpoint.pth holds {'model': state_dict, 'ema': {'shadow_params': [parameters() order]}}."""
    model, state = random_sedd_state()
    names = [k for k in state if k != "rotary_emb.inv_freq"]
    shadow = [state[k] + 1.0 for k in names]
    (tmp_path / "config.json").write_text(json.dumps(SEDD_CONFIG))
    torch.save({"model": state, "ema": {"decay": 0.9999, "num_updates": 3, "shadow_params": shadow}, "step": 3},
               tmp_path / "checkpoint.pth")
    assert torch.equal(from_sedd(tmp_path).vocab_embed.embedding, model.vocab_embed.embedding)
    ema = from_sedd(tmp_path, use_ema=True).state_dict()
    for name, tensor in zip(names, shadow):
        assert torch.equal(ema[name], tensor), name
    torch.save({"model": state}, tmp_path / "checkpoint.pth")
    with pytest.raises(CheckpointError, match="no EMA"):
        from_sedd(tmp_path, use_ema=True)


class _NotWeights:
    """A pickled object that a weights-only load must refuse."""


def test_pickled_objects_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SEDD_CONFIG))
    torch.save({"model": _NotWeights()}, tmp_path / "checkpoint.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        from_sedd(tmp_path)


def test_sedd_config_variants():
    from dlm.convert.sedd import sedd_config

    uniform = json.loads(json.dumps(SEDD_CONFIG))
    uniform["graph"]["type"], uniform["model"]["scale_by_sigma"] = "uniform", False
    uniform["noise"] = {"type": "geometric", "sigma_min": 1e-4, "sigma_max": 20}
    config = sedd_config(uniform)
    assert (config.process, config.vocab_size, config.mask_id, config.head) == ("uniform", 10, None, "score")
    assert (config.noise_schedule, config.schedule_kwargs) == ("geometric", {"sigma_min": 1e-4, "sigma_max": 20.0})
    uniform["model"]["scale_by_sigma"] = True  # upstream asserts: absorbing only
    with pytest.raises(ConfigError):
        sedd_config(uniform)
    uniform["graph"]["type"] = "random"
    with pytest.raises(CheckpointError, match="graph"):
        sedd_config(uniform)
