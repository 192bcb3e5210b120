"""scripts/demo_finetune.py end to end on a tiny model and corpus: same validation noise before/after, JSON report."""

from __future__ import annotations

import json
import random

import torch

from dlm.models import DLMConfig, DLMForDiffusion
from dlm.tokenization import mask_token_id_for, train_bpe_tokenizer
from tests.scripts import load_script

WORDS = "the cat sat on a mat and dog ran to big red house with small blue door".split()


def test_demo_reports_before_and_after(tmp_path, capsys):
    rng = random.Random(0)
    text = "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) + "." for _ in range(300))
    (tmp_path / "corpus.txt").write_text(text)
    tokenizer = train_bpe_tokenizer([text], 300)
    _, mask = mask_token_id_for(tokenizer)
    torch.manual_seed(0)
    model = DLMForDiffusion(DLMConfig(vocab_size=mask + 1, mask_id=mask, hidden_size=32, cond_dim=16,
                                      num_hidden_layers=1, num_attention_heads=2, max_seq_len=24))
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    demo = load_script("demo_finetune")
    report_path = tmp_path / "report.json"
    assert demo.main(["--model", str(tmp_path / "base"), "--corpus", str(tmp_path / "corpus.txt"), "--steps", "6",
                      "--batch-size", "4", "--block-size", "16", "--eval-batches", "2", "--lr", "0.01",
                      "--precision", "no", "--prompts", "", "the cat", "--length", "4", "--sample-steps", "4",
                      "--out", str(tmp_path / "run"), "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["steps"] == 6 and report["tokens"] == 6 * 4 * 16 and report["validation_blocks"] == 8
    before, after = report["before"]["val_bits_per_token"], report["after"]["val_bits_per_token"]
    assert after < before  # a fresh model learns the corpus quickly; the same noise makes the two comparable
    assert [g["prompt"] for g in report["after"]["generations"]] == ["", "the cat"]
    assert report["after"]["generations"][1]["text"].startswith("the cat")
    out = capsys.readouterr().out
    assert f"before {before:.3f}, after {after:.3f}" in out
