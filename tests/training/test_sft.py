"""SFT (LLaDA): rows and masks, chat templates, clean prompts, the response-only loss by hand, conditional sampling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dlm.errors import ConfigError, DataError
from dlm.losses import masked_nelbo_terms
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.pipeline import DiffusionLMPipeline
from dlm.processes import process_from_config
from dlm.tokenization import mask_token_id_for, train_bpe_tokenizer
from dlm.training.data import DataConfig, build_datasets
from dlm.training.recipe import recipe_from_dict
from dlm.training.sft import chat_prompt, render_example, sft_row
from dlm.training.trainer import Trainer, loss_terms

PAIRS = [("Q: what sat on the mat?\nA:", " the cat"), ("Q: where did the dog run?\nA:", " to the red house"),
         ("Q: colour of the door?\nA:", " blue"), ("Q: who ran?\nA:", " a big dog ran")] * 5
TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    text = " ".join(p + r for p, r in PAIRS) + " <user> <assistant> the cat sat on a mat"
    return train_bpe_tokenizer([text] * 5, 300)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random dlm model with the tokenizer, as model.init_from."""
    folder = tmp_path_factory.mktemp("base") / "model"
    _, mask = mask_token_id_for(tokenizer)
    torch.manual_seed(0)
    model = DLMForDiffusion(DLMConfig(vocab_size=mask + 1, mask_id=mask, hidden_size=32, cond_dim=16,
                                      num_hidden_layers=1, num_attention_heads=2, max_seq_len=32))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sft") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in PAIRS))
    return path


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_sft_row_masks_are_exact():
    assert sft_row([5, 6, 7], [8, 9], 8, eos=2, pad=0) == {
        "input_ids": [5, 6, 7, 8, 9, 2, 2, 2],
        "prompt_mask": [1, 1, 1, 0, 0, 0, 0, 0],
        "loss_mask": [0, 0, 0, 1, 1, 1, 1, 1]}  # LLaDA: EOS padding belongs to the response
    assert sft_row([5, 6, 7], [8, 9], 8, eos=2, pad=0, eos_padding=False) == {
        "input_ids": [5, 6, 7, 8, 9, 2, 0, 0],
        "prompt_mask": [1, 1, 1, 0, 0, 0, 0, 0],
        "loss_mask": [0, 0, 0, 1, 1, 1, 0, 0]}
    assert sft_row([5, 6, 7], [8, 9, 10, 11, 12], 6, eos=2, pad=0) == {  # truncated: no EOS
        "input_ids": [5, 6, 7, 8, 9, 10], "prompt_mask": [1, 1, 1, 0, 0, 0], "loss_mask": [0, 0, 0, 1, 1, 1]}
    assert sft_row([5, 6, 7], [8], 3, eos=2, pad=0) is None
    assert sft_row([5], [], 4, eos=2, pad=0) is None


def test_sft_datasets_from_jsonl(tokenizer, jsonl, tmp_path):
    config = DataConfig(source=str(jsonl), format="sft", block_size=24, val_fraction=0.2, cache_dir=str(tmp_path))
    train, val = build_datasets(config, tokenizer)
    assert sorted(train.column_names) == ["input_ids", "loss_mask", "prompt_mask"]
    assert len(train) == 16 and len(val) == 4
    eos = tokenizer.eos_token_id
    expected = {}
    for p, r in PAIRS:
        row = sft_row(encode(tokenizer, p), encode(tokenizer, r), 24, eos, tokenizer.pad_token_id)
        expected[tuple(row["input_ids"])] = row
    for ds in (train, val):
        for i in range(len(ds)):
            row = {k: v.tolist() for k, v in ds[i].items()}
            assert row == expected[tuple(row["input_ids"])]
    first = train[0]
    n_prompt = int(first["prompt_mask"].sum())
    assert first["input_ids"][n_prompt:][first["loss_mask"][n_prompt:] == 1].tolist()[-1] == eos


def test_chat_template_rendering_matches_the_generation_prompt(tokenizer, tmp_path):
    path = tmp_path / "chat.jsonl"
    messages = [{"role": "user", "content": "who ran?"}, {"role": "assistant", "content": "a dog"}]
    path.write_text(json.dumps({"messages": messages}) + "\n")
    config = DataConfig(source=str(path), format="sft", block_size=40, val_fraction=0.0, chat_template=TEMPLATE,
                        cache_dir=str(tmp_path))
    tok = train_bpe_tokenizer([" ".join(p + r for p, r in PAIRS)] * 5, 300)
    train, _ = build_datasets(config, tok)
    assert tok.chat_template == TEMPLATE  # set on the tokenizer, so it is saved with the model
    prompt = chat_prompt(tok, "who ran?")
    assert prompt == "<user>who ran?\n<assistant>"
    assert render_example({"messages": messages}, tok, config) == (prompt, "a dog\n")
    row = train[0]
    prompt_ids = encode(tok, prompt)
    assert row["input_ids"][: len(prompt_ids)].tolist() == prompt_ids and int(row["prompt_mask"].sum()) == len(prompt_ids)
    response = encode(tok, "a dog\n") + [tok.eos_token_id]
    assert row["input_ids"][len(prompt_ids): len(prompt_ids) + len(response)].tolist() == response


def test_sft_data_errors(tokenizer, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    with pytest.raises(ConfigError, match="chat template"):
        build_datasets(DataConfig(source=str(path), format="sft", val_fraction=0.0, cache_dir=str(tmp_path)), tokenizer)
    path.write_text(json.dumps({"question": "a", "answer": "b"}) + "\n")
    with pytest.raises(DataError, match="neither 'messages' nor 'prompt'"):
        build_datasets(DataConfig(source=str(path), format="sft", val_fraction=0.0, cache_dir=str(tmp_path)), tokenizer)
    with pytest.raises(ConfigError, match="unknown data format"):
        DataConfig(source="x", format="chat")


def test_prompt_tokens_are_never_corrupted():
    seen = []

    def denoiser(x_t, t):
        seen.append(x_t.clone())
        return torch.zeros(*x_t.shape, 5)

    config = DLMConfig(vocab_size=6, mask_id=5, hidden_size=8, cond_dim=8, num_hidden_layers=1, num_attention_heads=2)
    process = process_from_config(config)
    x0 = torch.tensor([[1, 2, 3, 4, 0, 1], [4, 3, 2, 1, 0, 0]])
    keep = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    u = torch.zeros(2, 6, dtype=torch.float64)  # u < 1 − α(t) everywhere: every free position is masked
    terms = loss_terms(denoiser, process, "nelbo", x0, torch.tensor([0.9, 0.9]), u, keep=keep)
    expected = torch.where(keep.bool(), x0, torch.full_like(x0, 5))
    assert torch.equal(seen[0], expected)
    assert (terms[keep.bool()] == 0).all() and (terms[~keep.bool()] > 0).all()


def sft_recipe(base_dir, jsonl, out, **train):
    return {"model": {"init_from": str(base_dir)}, "tokenizer": {"name": str(base_dir)},
            "data": {"source": str(jsonl), "format": "sft", "block_size": 24, "val_fraction": 0.2},
            "optim": {"lr": 3e-3, "warmup_steps": 0},
            "train": {"output_dir": str(out), "max_steps": 2, "batch_size": 8, "micro_batch_size": 4, "eval_every": 2,
                      "eval_batches": 1, "save_every": 2, "log_every": 1, "cpu": True, **train}}


def test_sft_loss_is_the_response_nelbo_by_hand(base_dir, jsonl, tmp_path):
    """Step 0's loss = mean over rows of (Σ_response MDLM terms at x_t with the prompt restored) / #response."""
    trainer = Trainer(recipe_from_dict(sft_recipe(base_dir, jsonl, tmp_path / "run")))
    model = DLMForDiffusion.from_pretrained(base_dir).eval()
    process = process_from_config(model.config)
    rows = trainer.train_data[trainer.batch_indices(0)]
    x0, prompt, response = rows["input_ids"], rows["prompt_mask"].bool(), rows["loss_mask"].bool()
    t, u = trainer.batch_noise(0, 24)
    x_t = torch.where(u < 1 - process.alpha(t, u), torch.full_like(x0, process.mask_id), x0)
    x_t = torch.where(prompt, x0, x_t)
    assert torch.equal(x_t[prompt], x0[prompt]) and (x_t[response] == process.mask_id).any()
    with torch.no_grad():
        log_probs = torch.log_softmax(model(x_t, t=t).x0_logits[..., : process.vocab_size].float(), -1)
    sigma, dsigma = process.schedule.total(t.double()), process.schedule.rate(t.double())
    by_hand = []
    for b in range(8):
        total = 0.0
        for i in range(24):
            if response[b, i] and x_t[b, i] == process.mask_id:
                weight = float(dsigma[b]) / math.expm1(float(sigma[b]))
                total += weight * -float(log_probs[b, i, x0[b, i]])
        by_hand.append(total / int(response[b].sum()))
    expected = sum(by_hand) / 8
    terms = masked_nelbo_terms(log_probs, process, x_t, x0, sigma, dsigma)
    assert float((terms * response).sum(-1).div(response.sum(-1)).mean()) == pytest.approx(expected, rel=1e-5)
    assert trainer.train_step(0) == pytest.approx(expected, rel=1e-5)


def test_sft_trains_and_the_pipeline_keeps_the_prompt(base_dir, jsonl, tmp_path, tokenizer):
    metrics = Trainer(recipe_from_dict(sft_recipe(base_dir, jsonl, tmp_path / "run"))).fit()
    assert math.isfinite(metrics["loss"]) and metrics["val_nats_per_token"] > 0
    pipe = DiffusionLMPipeline.from_pretrained(tmp_path / "run" / "final")
    prompt = PAIRS[0][0]
    out = pipe(prompt, length=6, steps=6, seed=0)
    ids = encode(tokenizer, prompt)
    assert out.tokens[0, : len(ids)].tolist() == ids
    assert (out.tokens[0, len(ids):] != pipe.mask_id).all()


def test_a_float16_checkpoint_fine_tunes_in_float32(base_dir, jsonl, tmp_path):
    """The shipped model is stored in float16; init_from must still give float32 master weights."""
    half = tmp_path / "half"
    DLMForDiffusion.from_pretrained(base_dir).to(torch.float16).save_pretrained(half)
    raw = sft_recipe(base_dir, jsonl, tmp_path / "run")
    raw["model"]["init_from"] = str(half)
    trainer = Trainer(recipe_from_dict(raw))
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
