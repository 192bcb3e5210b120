import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dlm.cli.main import main
from dlm.errors import CheckpointError, ConfigError
from dlm.training.recipe import load_recipe, recipe_from_dict
from dlm.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
WORDS = "the cat sat on a mat and dog ran to big red house with small blue door".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = random.Random(0)
    lines = []
    for i in range(300):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) + ".")
        if i % 10 == 9:
            lines.append("")
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text("\n".join(lines))
    return path


def tiny_recipe(corpus: Path, out: Path, **train) -> dict:
    return {
        "model": {"config": {"hidden_size": 32, "cond_dim": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "max_seq_len": 16}},
        "tokenizer": {"name": "train", "vocab_size": 300},
        "data": {"source": str(corpus), "block_size": 16, "val_fraction": 0.1, "txt_documents": "paragraph"},
        "optim": {"lr": 3e-3, "warmup_steps": 5},
        "train": {"output_dir": str(out), "max_steps": 20, "batch_size": 8, "micro_batch_size": 4, "eval_every": 10,
                  "eval_batches": 2, "save_every": 10, "log_every": 1, "cpu": True, **train},
    }


def write_recipe(path: Path, raw: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return path


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("time_sampling", ["uniform", "count"])
def test_loss_goes_down_on_a_tiny_overfit_run(corpus, tmp_path, time_sampling):
    raw = tiny_recipe(corpus, tmp_path / "run", max_steps=60, eval_every=60, save_every=60, log_every=1,
                      time_sampling=time_sampling)
    metrics = Trainer(recipe_from_dict(raw)).fit()
    curve = losses(tmp_path / "run")
    assert len(curve) == 60
    assert sum(curve[-10:]) / 10 < 0.8 * sum(curve[:5]) / 5
    assert 0 < metrics["val_bits_per_token"] < 20 and metrics["val_ppl_bound"] > 1
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert not list((tmp_path / "run").glob("*.bin")) and not list((tmp_path / "run" / "final").glob("*.bin"))


@pytest.mark.parametrize("objective,process,head", [("score_entropy", "masked", "score"), ("nelbo", "uniform", "x0"),
                                                     ("score_entropy", "uniform", "x0")])
def test_other_objectives_train(corpus, tmp_path, objective, process, head):
    raw = tiny_recipe(corpus, tmp_path / "run", max_steps=4, eval_every=4, save_every=4, objective=objective)
    raw["model"]["config"].update(process=process, head=head, scale_by_sigma=head == "score", time_conditioning=True)
    metrics = Trainer(recipe_from_dict(raw)).fit()
    assert torch.isfinite(torch.tensor(metrics["loss"])) and metrics["val_nats_per_token"] > 0


def test_count_time_sampling_needs_the_masked_nelbo(corpus, tmp_path):
    raw = tiny_recipe(corpus, tmp_path / "run", time_sampling="count")
    raw["model"]["config"].update(process="uniform")
    with pytest.raises(ConfigError, match="time_sampling: count"):
        Trainer(recipe_from_dict(raw))
    with pytest.raises(ConfigError, match="unknown train.time_sampling"):
        recipe_from_dict(tiny_recipe(corpus, tmp_path / "run", time_sampling="stratified"))


def test_accumulation_equals_one_big_batch(corpus, tmp_path):
    """Micro-batches of 2 × 4 accumulation steps give the weights of one batch of 8 (same rows, same noise)."""
    results = []
    for micro in (8, 2):
        raw = tiny_recipe(corpus, tmp_path / f"run{micro}", max_steps=3, micro_batch_size=micro, save_every=3, eval_every=3)
        Trainer(recipe_from_dict(raw)).fit()
        results.append(load_file(tmp_path / f"run{micro}" / "final" / "model.safetensors"))
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], atol=1e-6, rtol=1e-5)


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dlm.cli.main", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_resume_after_sigkill_equals_uninterrupted_run(corpus, tmp_path):
    raw = tiny_recipe(corpus, tmp_path / "full", max_steps=24, save_every=6, eval_every=100, ema=0.9)
    full = write_recipe(tmp_path / "full.yaml", raw)
    assert run_cli("train", str(full)).returncode == 0
    raw["train"]["output_dir"] = str(tmp_path / "killed")
    killed = write_recipe(tmp_path / "killed.yaml", raw)
    proc = subprocess.Popen([sys.executable, "-m", "dlm.cli.main", "train", str(killed)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (tmp_path / "killed" / "checkpoint-6" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "final").exists()
    resumed = run_cli("train", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(tmp_path / "full" / "final" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    assert len(list((tmp_path / "killed").glob("checkpoint-*"))) == 2  # keep_last


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(corpus, tmp_path):
    raw = tiny_recipe(corpus, tmp_path / "one", max_steps=6, save_every=6, eval_every=6)
    one = write_recipe(tmp_path / "one.yaml", raw)
    assert run_cli("train", str(one)).returncode == 0
    raw["train"]["output_dir"] = str(tmp_path / "two")
    two = write_recipe(tmp_path / "two.yaml", raw)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "dlm.cli.main", "train", str(two)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    torch.testing.assert_close(torch.tensor(losses(tmp_path / "two")), torch.tensor(losses(tmp_path / "one")),
                               atol=1e-5, rtol=1e-5)


def test_recipe_errors(corpus, tmp_path):
    raw = tiny_recipe(corpus, tmp_path / "run")
    raw["train"]["bacth_size"] = 4
    with pytest.raises(ConfigError, match="unknown recipe key.*train.bacth_size"):
        recipe_from_dict(raw)
    raw = tiny_recipe(corpus, tmp_path / "run", batch_size=8, micro_batch_size=3)
    with pytest.raises(ConfigError, match="not a multiple of micro_batch_size"):
        recipe_from_dict(raw)
    raw = tiny_recipe(corpus, tmp_path / "run", objective="mse")
    with pytest.raises(ConfigError, match="unknown objective"):
        recipe_from_dict(raw)


def test_cli_errors_are_one_line_and_exit_2(corpus, tmp_path, capsys):
    raw = tiny_recipe(corpus, tmp_path / "run")
    raw["data"]["source"] = str(tmp_path / "missing.txt")
    path = write_recipe(tmp_path / "bad.yaml", raw)
    assert main(["train", str(path), "train.max_steps=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.txt" in err and "\n" not in err
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    good = write_recipe(tmp_path / "good.yaml", tiny_recipe(corpus, tmp_path / "run"))
    assert main(["train", str(good), "train.max_steps"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_corrupt_checkpoint_and_existing_run(corpus, tmp_path):
    raw = tiny_recipe(corpus, tmp_path / "run", max_steps=2, save_every=2, eval_every=2)
    Trainer(recipe_from_dict(raw)).fit()
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        Trainer(recipe_from_dict(raw)).fit()
    (tmp_path / "run" / "checkpoint-2" / "optimizer.pt").write_bytes(b"garbage")
    before = (tmp_path / "run" / "checkpoint-2" / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(recipe_from_dict(tiny_recipe(corpus, tmp_path / "run", max_steps=4))).fit(resume=True)
    assert (tmp_path / "run" / "checkpoint-2" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads_and_is_headed_by_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and "recipes/" + path.name in first
    recipe = load_recipe(path)
    assert recipe.train.max_steps > 0


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_headed_by_a_command(path):
    import yaml

    first = path.read_text().splitlines()[0]
    assert first.startswith("# accelerate launch --config_file recipes/accelerate/" + path.name)
    assert yaml.safe_load(path.read_text())["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
