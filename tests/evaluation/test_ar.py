import json

import pytest
import torch

from dlm.errors import ConfigError
from dlm.training.ar import ar_config_for, ar_sample, ar_token_nll, build_ar_model
from dlm.training.recipe import recipe_from_dict
from dlm.training.trainer import Trainer

FIELDS = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "max_seq_len": 16}


def test_config_maps_the_diffusion_fields(tokenizer):
    config = ar_config_for(tokenizer, {**FIELDS, "mlp_ratio": 2, "dropout": 0.1})
    assert (config.n_embd, config.n_layer, config.n_head, config.n_positions, config.n_inner) == (32, 1, 2, 16, 64)
    assert config.vocab_size == len(tokenizer) and config.bos_token_id == len(tokenizer) - 1  # V real + start
    assert config.resid_pdrop == config.attn_pdrop == config.embd_pdrop == 0.1 and not config.tie_word_embeddings
    with pytest.raises(ConfigError, match="no meaning"):
        ar_config_for(tokenizer, {**FIELDS, "cond_dim": 16})
    with pytest.raises(ConfigError, match="unknown"):
        ar_config_for(tokenizer, {**FIELDS, "n_wings": 2})


def test_ar_loss_is_the_hand_computed_cross_entropy(tokenizer):
    torch.manual_seed(0)
    model = build_ar_model(tokenizer, FIELDS).eval()
    x0 = torch.randint(0, model.config.bos_token_id, (2, 7))
    with torch.no_grad():
        loss = ar_token_nll(model, x0)
        V = model.config.bos_token_id
        for b in range(2):
            for j in range(7):
                context = torch.tensor([[V] + x0[b, :j].tolist()])  # start token, then the block's prefix
                logits = model(input_ids=context).logits[0, -1, :V].double()
                assert loss[b, j].item() == pytest.approx(-torch.log_softmax(logits, -1)[x0[b, j]].item(), rel=1e-5)


def test_ar_sample_is_seeded_and_in_range(tokenizer):
    torch.manual_seed(0)
    model = build_ar_model(tokenizer, FIELDS)
    a = ar_sample(model, 3, 10, torch.Generator().manual_seed(1))
    b = ar_sample(model, 3, 10, torch.Generator().manual_seed(1))
    assert a.shape == (3, 10) and torch.equal(a, b) and int(a.max()) < model.config.bos_token_id


def test_ar_sample_fills_the_whole_context_and_follows_the_uncached_model(tokenizer):
    """length = n_positions works (no forward pass after the last draw), and the cached logits are the model's."""
    torch.manual_seed(0)
    model = build_ar_model(tokenizer, FIELDS).eval()
    full = ar_sample(model, 2, FIELDS["max_seq_len"], torch.Generator().manual_seed(2), temperature=1e-3)
    assert full.shape == (2, FIELDS["max_seq_len"])
    start = torch.full((2, 1), model.config.bos_token_id)
    with torch.no_grad():
        logits = model(input_ids=torch.cat([start, full[:, :-1]], 1)).logits[..., : model.config.bos_token_id]
    torch.testing.assert_close(full, logits.argmax(-1))  # temperature → 0 is greedy decoding of the uncached model


def ar_recipe(corpus, out, **train):
    return {"model": {"arch": "ar", "config": FIELDS}, "tokenizer": {"name": "train", "vocab_size": 300},
            "data": {"source": str(corpus), "block_size": 16, "val_fraction": 0.1, "txt_documents": "paragraph"},
            "optim": {"lr": 3e-3, "warmup_steps": 2},
            "train": {"output_dir": str(out), "objective": "ar", "max_steps": 4, "batch_size": 4, "eval_every": 4,
                      "eval_batches": 2, "save_every": 4, "log_every": 1, "cpu": True, **train}}


def test_trainer_trains_and_validates_the_baseline(corpus, tmp_path):
    trainer = Trainer(recipe_from_dict(ar_recipe(corpus, tmp_path / "run")))
    first = trainer.train_step(0)
    # the step's loss is the mean next-token CE of its blocks
    rows = trainer.train_data[trainer.batch_indices(1)]["input_ids"]
    with torch.no_grad():
        expected = ar_token_nll(trainer.model, rows).mean().item()
    assert trainer.train_step(1) == pytest.approx(expected, rel=1e-4)
    metrics = trainer.evaluate()
    val = trainer.val_data[: min(len(trainer.val_data), 2 * 4)]["input_ids"]
    with torch.no_grad():
        assert metrics["val_nats_per_token"] == pytest.approx(ar_token_nll(trainer.model, val).mean().item(), rel=1e-4)
    assert first > 0


def test_fit_exports_a_loadable_baseline(corpus, tmp_path):
    from dlm.evaluation.samples import load_for_eval

    Trainer(recipe_from_dict(ar_recipe(corpus, tmp_path / "run"))).fit()
    model, tokenizer, kind = load_for_eval(tmp_path / "run" / "final")
    assert kind == "ar" and json.loads((tmp_path / "run" / "final" / "config.json").read_text())["dlm_baseline"] == "ar"
    assert "val_nats_per_token" in (tmp_path / "run" / "log.jsonl").read_text()


def test_recipe_checks(corpus, tmp_path):
    raw = ar_recipe(corpus, tmp_path)
    raw["train"]["objective"] = "nelbo"
    with pytest.raises(ConfigError, match="go together"):
        recipe_from_dict(raw)
    raw = ar_recipe(corpus, tmp_path)
    raw["model"]["arch"] = "rnn"
    with pytest.raises(ConfigError, match="arch"):
        recipe_from_dict(raw)
