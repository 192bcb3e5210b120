"""Hub: local/hub-id resolution (offline, unreachable, cached), push_to_hub against a stand-in API, model cards."""

from __future__ import annotations

import fnmatch
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import ModelCard, constants

from dlm.cli.main import main
from dlm.errors import CheckpointError
from dlm.hub import REQUIRED_FILES, push_to_hub, resolve_model_dir, upload_files
from dlm.model_card import model_card
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.tokenization import load_tokenizer, mask_token_id_for, train_bpe_tokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny training run: final/ (model + tokenizer), a checkpoint with training state, log.jsonl."""
    run = tmp_path_factory.mktemp("hub") / "run"
    tokenizer = train_bpe_tokenizer(["the cat sat on the mat. " * 20, "a dog ran to the red house. " * 20], 300)
    _, mask = mask_token_id_for(tokenizer)
    torch.manual_seed(0)
    model = DLMForDiffusion(DLMConfig(vocab_size=mask + 1, mask_id=mask, hidden_size=32, cond_dim=16,
                                      num_hidden_layers=1, num_attention_heads=2, max_seq_len=16))
    for folder in (run / "final", run / "checkpoint-20"):
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    recipe = {"model": {"init_from": None, "config": {"hidden_size": 32}}, "tokenizer": {"name": "train", "vocab_size": 300},
              "data": {"source": "austen", "block_size": 16, "packing": "wrap", "val_fraction": 0.1},
              "optim": {"lr": 0.003, "warmup_steps": 5, "lr_schedule": "cosine", "weight_decay": 0.0},
              "train": {"objective": "nelbo", "time_sampling": "count", "max_steps": 20, "batch_size": 8, "ema": 0.0, "mixed_precision": "no"}}
    ckpt = run / "checkpoint-20"
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 20, "recipe": recipe}))
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        (ckpt / name).write_bytes(b"training state")
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 10, "loss": 5.0, "val_nats_per_token": 4.0, "val_bits_per_token": 5.7708, "val_ppl_bound": 54.6},
        {"step": 15, "loss": 4.5},
        {"step": 20, "loss": 4.0, "val_nats_per_token": 3.5, "val_bits_per_token": 5.0494, "val_ppl_bound": 33.12},
    ]) + "\n")
    return run


def fake_cache(cache: Path, repo_id: str, source: Path | None, files: list[str]) -> Path:
    """The layout huggingface_hub writes: refs/main → commit, snapshots/<commit>/<files>."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    for name in files:
        shutil.copy2(source / name, snapshot / name)
    return snapshot


# --- resolving ---------------------------------------------------------------------------------------------------
def test_local_directory_is_returned_as_is(run_dir):
    assert resolve_model_dir(run_dir / "final") == run_dir / "final"
    with pytest.raises(CheckpointError, match="not found"):
        resolve_model_dir(run_dir / "missing")


def test_offline_hub_id_names_the_missing_files_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        resolve_model_dir("someone/not-cached", cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 5
    message = err.value.one_line()
    assert "someone/not-cached" in message and "HF_HUB_OFFLINE" in message
    assert "missing config.json, model.safetensors, tokenizer_config.json, tokenizer.json" in message
    assert "\n" not in message


def test_partly_cached_snapshot_names_exactly_what_is_missing(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_cache(tmp_path, "me/partial", run_dir / "final", ["config.json"])
    with pytest.raises(CheckpointError) as err:
        resolve_model_dir("me/partial", cache_dir=str(tmp_path))
    assert "lacks model.safetensors, tokenizer_config.json, tokenizer.json" in err.value.message


def test_unreachable_hub_is_a_quick_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:  # port 9 (discard): connection refused, no network needed
        resolve_model_dir("someone/model", cache_dir=str(tmp_path), endpoint="http://127.0.0.1:9", timeout=3)
    assert time.perf_counter() - start < 15
    assert "cannot be reached" in err.value.message
    assert err.value.message.endswith("missing " + ", ".join(REQUIRED_FILES))


def test_cached_hub_id_loads_offline(run_dir, tmp_path, monkeypatch):
    from dlm.pipeline import DiffusionLMPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = fake_cache(tmp_path, "me/tiny", run_dir / "final", MODEL_FILES)
    folder = resolve_model_dir("me/tiny", cache_dir=str(tmp_path))
    assert folder == snapshot
    pipe = DiffusionLMPipeline.from_pretrained(folder)
    out = pipe("the cat", length=3, steps=3, seed=0)
    assert out.tokens.shape[1] == out.prompt_lengths[0] + 3


# --- pushing -----------------------------------------------------------------------------------------------------
class StandInHub:
    """A local stand-in for ``HfApi``: records the repository it creates and the files it is given."""

    def __init__(self):
        self.repos: list[tuple] = []
        self.files: dict[str, bytes] = {}
        self.commit: dict = {}

    def create_repo(self, repo_id, *, private=None, exist_ok=False, repo_type=None):
        self.repos.append((repo_id, private, exist_ok, repo_type))
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, revision=None, commit_message=None,
                      create_pr=False, allow_patterns=None):
        for path in Path(folder_path).rglob("*"):
            name = path.relative_to(folder_path).as_posix()
            if path.is_file() and (allow_patterns is None or any(fnmatch.fnmatchcase(name, p) for p in allow_patterns)):
                self.files[name] = path.read_bytes()
        self.commit = {"repo_id": repo_id, "revision": revision, "message": commit_message, "create_pr": create_pr}
        return SimpleNamespace(commit_url=f"https://hub.local/{repo_id}/commit/1")


def test_push_uploads_model_tokenizer_and_card_exactly(run_dir):
    hub = StandInHub()
    result = push_to_hub(run_dir / "final", "me/tiny", api=hub, private=True, commit_message="first")
    assert hub.repos == [("me/tiny", True, True, "model")]
    assert sorted(hub.files) == sorted(MODEL_FILES + ["README.md"]) == result.files
    for name in MODEL_FILES:
        assert hub.files[name] == (run_dir / "final" / name).read_bytes()
    expected_card = str(model_card(run_dir / "final", run_dir=run_dir, repo_id="me/tiny"))
    assert hub.files["README.md"].decode() == expected_card == result.card
    assert hub.commit == {"repo_id": "me/tiny", "revision": None, "message": "first", "create_pr": False}
    assert result.commit_url == "https://hub.local/me/tiny/commit/1"


def test_push_never_uploads_training_state(run_dir):
    hub = StandInHub()
    push_to_hub(run_dir / "checkpoint-20", "me/ckpt", api=hub)
    assert sorted(hub.files) == sorted(MODEL_FILES + ["README.md"])
    assert upload_files(run_dir / "checkpoint-20") == sorted(MODEL_FILES)


def test_push_a_model_object_with_its_tokenizer(run_dir):
    hub = StandInHub()
    model = DLMForDiffusion.from_pretrained(run_dir / "final")
    tokenizer = load_tokenizer(run_dir / "final")
    push_to_hub(model, "me/obj", tokenizer=tokenizer, api=hub, card="# my card\n")
    assert sorted(hub.files) == sorted(MODEL_FILES + ["README.md"])
    assert hub.files["README.md"] == b"# my card\n"
    assert hub.files["model.safetensors"] == (run_dir / "final" / "model.safetensors").read_bytes()


def test_push_refuses_a_directory_without_tokenizer(run_dir, tmp_path):
    folder = tmp_path / "no-tok"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(run_dir / "final" / name, folder / name)
    with pytest.raises(CheckpointError, match="lacks tokenizer_config.json, tokenizer.json"):
        push_to_hub(folder, "me/x", api=StandInHub())


def test_dry_run_and_cli(run_dir, capsys):
    result = push_to_hub(run_dir / "final", "me/tiny", dry_run=True)
    assert result.files == sorted(MODEL_FILES + ["README.md"]) and result.commit_url is None
    assert main(["push", str(run_dir / "final"), "me/tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would upload to me/tiny: README.md, config.json, model.safetensors, tokenizer.json, "
                          "tokenizer_config.json\n")
    assert result.card in out


# --- model cards -------------------------------------------------------------------------------------------------
def test_model_card_metadata_recipe_figures_and_usage(run_dir):
    card = model_card(run_dir / "final", repo_id="me/tiny", prompt="the cat")
    data = ModelCard(str(card)).data.to_dict()
    assert data["library_name"] == "dlm" and data["pipeline_tag"] == "text-generation"
    assert data["license"] == "apache-2.0" and data["language"] == "en"
    assert {"dlm", "diffusion", "masked-diffusion", "mdlm"} <= set(data["tags"])
    metric = data["model-index"][0]["results"][0]
    assert metric["metrics"][0] == {"type": "nelbo_bits_per_token", "value": 5.0494, "name": "validation NELBO (bits/token)"}
    assert metric["dataset"]["type"] == "austen"
    text = card.text
    assert "| validation NELBO (bits/token) | 5.049 |" in text and "at step 20" in text
    assert "| steps | 20 × batch 8, 2,560 tokens |" in text
    assert "| objective | NELBO (MDLM masked-KL / uniform ELBO), count-weighted estimator" in text
    assert "| data | Jane Austen's six novels" in text
    n_params = sum(p.numel() for p in DLMForDiffusion.from_pretrained(run_dir / "final").parameters())
    assert f"| parameters | {n_params:,} |" in text
    assert 'DiffusionLMPipeline.from_pretrained("me/tiny")' in text
    assert 'dlm generate --model me/tiny "the cat" --length 64' in text
    assert "x0 \\| x_t" in text  # a pipe inside a table cell is escaped


def test_model_card_without_run_and_cli(run_dir, tmp_path):
    folder = tmp_path / "bare"
    shutil.copytree(run_dir / "final", folder)
    card = model_card(folder, license="mit", datasets=["me/corpus"],
                      samples=[{"prompt": "the cat", "text": "the cat sat\non the mat", "settings": "ancestral, 64 steps"},
                               {"prompt": "", "text": "a dog ran"}])
    data = card.data.to_dict()
    assert data["license"] == "mit" and data["datasets"] == ["me/corpus"] and "model-index" not in data
    assert "No training recipe was recorded" in card.text and "No evaluation figures" in card.text
    assert "Prompt `the cat` (ancestral, 64 steps):\n\n> the cat sat on the mat\n\nUnconditional:\n\n> a dog ran\n" in card.text
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"generative perplexity (GPT-2)": 123.4}))
    assert main(["card", str(run_dir / "final"), "--metrics", str(metrics), "-o", str(tmp_path / "README.md")]) == 0
    assert "| generative perplexity (GPT-2) | 123.4 |" in (tmp_path / "README.md").read_text()
