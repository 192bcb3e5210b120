"""LoRA through peft: settings, targets, merge = adapted model, training with adapters, exact resume, `dlm lora merge`."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("peft")

from dlm.cli.main import main  # noqa: E402
from dlm.errors import ConfigError  # noqa: E402
from dlm.models import DLMConfig, DLMForDiffusion  # noqa: E402
from dlm.tokenization import mask_token_id_for, train_bpe_tokenizer  # noqa: E402
from dlm.training.lora import LoraSettings, apply_lora, load_adapter, merged_copy  # noqa: E402
from dlm.training.recipe import recipe_from_dict  # noqa: E402
from dlm.training.trainer import Trainer  # noqa: E402

WORDS = "the cat sat on a mat and dog ran to big red house with small blue door".split()
TARGETS = {"attn_qkv", "attn_out", "mlp.0", "mlp.2"}


def tiny_model(vocab: int = 20, layers: int = 2, randomize: bool = False) -> DLMForDiffusion:
    """A tiny masked model; ``randomize``: every weight random (the adaLN-zero init gives constant outputs)."""
    torch.manual_seed(0)
    model = DLMForDiffusion(DLMConfig(vocab_size=vocab, mask_id=vocab - 1, hidden_size=32, cond_dim=16,
                                      num_hidden_layers=layers, num_attention_heads=2, max_seq_len=16)).eval()
    if randomize:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape) * 0.3)
    return model


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """(base model directory with its tokenizer, a small text corpus)."""
    root = tmp_path_factory.mktemp("lora")
    rng = random.Random(0)
    text = "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) + "." for _ in range(200))
    corpus = root / "corpus.txt"
    corpus.write_text(text)
    tokenizer = train_bpe_tokenizer([text], 300)
    _, mask = mask_token_id_for(tokenizer)
    model = tiny_model(mask + 1, randomize=True)  # adaLN-zero weights would give the adapters no gradient
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    return root / "base", corpus


def test_settings_are_validated():
    assert LoraSettings.from_dict({"r": 4}).target_modules == ["attn_qkv", "attn_out", "mlp.0", "mlp.2"]
    with pytest.raises(ConfigError) as err:
        LoraSettings.from_dict({"rank": 4})
    assert err.value.one_line() == ("error: unknown recipe key(s) train.lora.rank (hint: valid keys of 'train.lora': "
                                    "r, alpha, dropout, target_modules)")
    for bad in ({"r": 0}, {"alpha": -1}, {"dropout": 1.0}, {"target_modules": []}):
        with pytest.raises(ConfigError):
            LoraSettings.from_dict(bad)
    with pytest.raises(ConfigError) as err:
        apply_lora(tiny_model(), LoraSettings(target_modules=["attn"]))
    assert "['attn'] are not linear layers of a DDiT block" in err.value.message
    assert err.value.hint == "choose among attn_qkv, attn_out, mlp.0, mlp.2, adaLN_modulation"
    raw = {"model": {"config": {}}, "data": {"source": "x"}, "train": {"lora": {"r": 4}}}
    with pytest.raises(ConfigError, match="model.init_from is not set"):
        recipe_from_dict(raw)


def test_adapters_sit_on_the_block_linears_only():
    model = apply_lora(tiny_model(), LoraSettings(r=4))
    adapted = {name for name, module in model.named_modules() if hasattr(module, "lora_A")}
    expected = {f"base_model.model.blocks.{i}.{t}" for i in range(2) for t in TARGETS}
    assert adapted == expected  # sigma_map.mlp.0 / .2 are not blocks.N.mlp.0 / .2
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{m}.lora_{ab}.default.weight" for m in expected for ab in "AB"}


def test_merged_model_equals_the_adapted_model():
    model = apply_lora(tiny_model(randomize=True), LoraSettings(r=4, alpha=8))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    base = tiny_model(randomize=True)
    x = torch.randint(0, 20, (3, 12), generator=gen)  # id 19 is the mask
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.no_grad():
        adapted = model(x, t=t).logits
        merged_model = merged_copy(model)
        merged = merged_model(x, t=t).logits
        assert torch.equal(model(x, t=t).logits, adapted)  # the peft model is left as it was
        assert (base(x, t=t).logits - adapted).abs().max() > 0.1
    assert type(merged_model) is DLMForDiffusion
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-5)


def lora_recipe(base_dir: Path, corpus: Path, out: Path, **train) -> dict:
    return {"model": {"init_from": str(base_dir)}, "tokenizer": {"name": str(base_dir)},
            "data": {"source": str(corpus), "block_size": 16, "val_fraction": 0.1, "txt_documents": "paragraph"},
            "optim": {"lr": 1e-2, "warmup_steps": 0},
            "train": {"output_dir": str(out), "max_steps": 4, "batch_size": 8, "micro_batch_size": 4, "eval_every": 4,
                      "eval_batches": 1, "save_every": 2, "log_every": 1, "cpu": True,
                      "lora": {"r": 4, "alpha": 8}, **train}}


def test_lora_training_merges_into_a_plain_final_model(base, tmp_path):
    base_dir, corpus = base
    out = tmp_path / "run"
    Trainer(recipe_from_dict(lora_recipe(base_dir, corpus, out))).fit()
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (out / "checkpoint-4").iterdir()}
    assert not (out / "checkpoint-4" / "model.safetensors").exists()
    assert sorted(p.name for p in (out / "final").iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                                 "tokenizer_config.json"]
    before, after = load_file(base_dir / "model.safetensors"), load_file(out / "final" / "model.safetensors")
    assert before.keys() == after.keys()
    for name in before:
        targeted = name.startswith("blocks.") and any(f".{t}.weight" in name for t in TARGETS)
        assert torch.equal(before[name], after[name]) != targeted, name  # only adapted weights move
    final = DLMForDiffusion.from_pretrained(out / "final").eval()
    adapted = load_adapter(out / "adapter").eval()
    x = torch.randint(0, final.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(final(x, t=0.5).logits, adapted(x, t=0.5).logits, atol=1e-5, rtol=1e-5)
    assert main(["lora", "merge", str(out / "adapter"), str(tmp_path / "merged")]) == 0
    merged = load_file(tmp_path / "merged" / "model.safetensors")
    for name in after:
        torch.testing.assert_close(merged[name], after[name], atol=1e-6, rtol=1e-6)
    assert (tmp_path / "merged" / "tokenizer.json").is_file()


def test_lora_resume_is_exact(base, tmp_path):
    base_dir, corpus = base
    raw = lora_recipe(base_dir, corpus, tmp_path / "run", eval_every=100)
    Trainer(recipe_from_dict(raw)).fit()
    shutil.rmtree(tmp_path / "run" / "checkpoint-4")
    shutil.copytree(tmp_path / "run", tmp_path / "resumed")
    Trainer(recipe_from_dict(lora_recipe(base_dir, corpus, tmp_path / "resumed", eval_every=100))).fit(resume=True)
    ours = load_file(tmp_path / "resumed" / "adapter" / "adapter_model.safetensors")
    ref = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    assert ours.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(ours[name], ref[name], atol=1e-6, rtol=1e-6)


def test_an_adapter_pushes_with_its_own_card(base, tmp_path):
    from dlm.hub import push_to_hub

    base_dir, corpus = base
    out = tmp_path / "run"
    Trainer(recipe_from_dict(lora_recipe(base_dir, corpus, out, max_steps=1, save_every=1, eval_every=1))).fit()
    result = push_to_hub(out / "adapter", "me/adapter", dry_run=True)
    assert result.files == ["README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                            "tokenizer_config.json"]
    assert "A LoRA adapter (peft) for the dlm model" in result.card and "lora" in result.card
