import io
import json

import pytest
import torch

from dlm.cli.main import main
from dlm.errors import CheckpointError, InputError
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.pipeline import DiffusionLMPipeline
from dlm.tokenization import mask_token_id_for, train_bpe_tokenizer

TEXT = ["It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."] * 20


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    tokenizer = train_bpe_tokenizer(TEXT, 300)
    num_real, mask_id = mask_token_id_for(tokenizer)
    torch.manual_seed(0)
    config = DLMConfig(vocab_size=mask_id + 1, hidden_size=32, cond_dim=16, num_hidden_layers=1, num_attention_heads=2,
                       max_seq_len=48)
    model = DLMForDiffusion(config)
    with torch.no_grad():  # upstream zero-inits the output layer; give it something to say
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_pipeline_keeps_prompts_and_is_seeded(model_dir):
    pipe = DiffusionLMPipeline.from_pretrained(model_dir)
    prompts = ["It is a truth", "a single man"]
    out = pipe(prompts, length=12, steps=8, num_samples=2, seed=3)
    assert len(out.texts) == 4 and len(out.completions) == 4
    for row, prompt in enumerate(p for p in prompts for _ in range(2)):
        ids = pipe.encode_prompts([prompt])[0]
        assert out.tokens[row, : len(ids)].tolist() == ids
        assert out.texts[row].startswith(prompt)
    again = pipe(prompts, length=12, steps=8, num_samples=2, seed=3)
    assert torch.equal(out.tokens, again.tokens)
    assert (out.tokens < pipe.process.vocab_size).all()  # no mask left
    unconditional = pipe(None, length=10, steps=4, sampler="first_hitting", seed=0)
    assert unconditional.nfe == 10


def test_pipeline_errors(model_dir, tmp_path):
    pipe = DiffusionLMPipeline.from_pretrained(model_dir)
    with pytest.raises(InputError, match="exceeds the model's context of 48"):
        pipe("It is a truth", length=48)
    with pytest.raises(CheckpointError, match="not found"):
        DiffusionLMPipeline.from_pretrained(tmp_path / "missing")
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="not a dlm checkpoint"):
        DiffusionLMPipeline.from_pretrained(tmp_path / "gpt")


def test_generate_cli(model_dir, capsys, monkeypatch):
    assert main(["generate", "It is a truth", "--model", str(model_dir), "--length", "8", "--steps", "4", "--seed", "1",
                 "--json", "--no-progress", "--num-samples", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["text"].startswith("It is a truth") for r in rows)
    monkeypatch.setattr("sys.stdin", io.StringIO("a single man\n\nIt is\n"))
    assert main(["generate", "-", "--model", str(model_dir), "--length", "6", "--steps", "3", "--no-progress",
                 "--show-steps", "--sampler", "confidence"]) == 0
    out = capsys.readouterr().out
    assert "[step" in out and "_" in out and "a single man" in out and "It is" in out


@pytest.mark.parametrize("args,message", [
    (["--sampler", "magic"], "unknown sampling method 'magic'"),
    (["--steps", "0"], "steps"),
    (["--length", "100"], "exceeds the model's context"),
    (["--top-p", "1.5"], "top_p"),
])
def test_generate_cli_bad_input_is_one_line(model_dir, capsys, args, message):
    assert main(["generate", "It is", "--model", str(model_dir), "--no-progress", "--length", "8", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err and "Traceback" not in err


def test_generate_cli_missing_model(capsys, tmp_path):
    assert main(["generate", "x", "--model", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
