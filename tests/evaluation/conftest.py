"""Tiny offline fixtures for the evaluation tests: a BPE tokenizer, a text corpus, a random dlm model, a random
AR baseline and a random GPT-2 judge, all saved to temporary directories."""

import random
from pathlib import Path

import pytest
import torch

from dlm.models import DLMConfig, DLMForDiffusion
from dlm.tokenization import mask_token_id_for, train_bpe_tokenizer

WORDS = "the cat sat on a mat and dog ran to big red house with small blue door".split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + "." for _ in range(n)]


def perturb(model, scale: float = 0.1, seed: int = 0):
    """Random weights everywhere (zero-initialised heads would make every output uniform)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    lines = []
    for i, sentence in enumerate(sentences(300)):
        lines.append(sentence)
        if i % 10 == 9:
            lines.append("")
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="session")
def tokenizer():
    return train_bpe_tokenizer(sentences(300), 300)


def saved(model, tokenizer, out: Path) -> Path:
    """A model directory: ``model`` with every weight perturbed (see :func:`perturb`) and its tokenizer."""
    perturb(model).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def dlm_dir(tmp_path_factory, tokenizer) -> Path:
    _, mask_id = mask_token_id_for(tokenizer)
    torch.manual_seed(0)
    config = DLMConfig(vocab_size=mask_id + 1, hidden_size=32, cond_dim=16, num_hidden_layers=1,
                       num_attention_heads=2, max_seq_len=24)
    return saved(DLMForDiffusion(config), tokenizer, tmp_path_factory.mktemp("dlm"))


@pytest.fixture(scope="session")
def ar_dir(tmp_path_factory, tokenizer) -> Path:
    from dlm.training.ar import build_ar_model

    torch.manual_seed(0)
    model = build_ar_model(tokenizer, {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                       "max_seq_len": 24})
    return saved(model, tokenizer, tmp_path_factory.mktemp("ar"))


@pytest.fixture(scope="session")
def judge_dir(tmp_path_factory, tokenizer) -> Path:
    """A random GPT-2 with a 12-token context over the BPE: an AutoModelForCausalLM directory."""
    from transformers import GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("judge")
    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=12,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    perturb(GPT2LMHeadModel(config), 0.5).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
