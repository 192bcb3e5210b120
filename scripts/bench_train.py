"""Training throughput of `dlm train` for 1 and 2 processes (CPU DDP through accelerate), tiny and small configs.

    python scripts/bench_train.py [--json OUT] [--steps N]

Each row is a real `dlm train` run on Jane Austen (GPT-2 tokenizer, wrap packing; needs
`bash scripts/setup_assets.sh`); tokens/s is read from the trainer's own log over the last logging window,
so start-up, tokenisation and validation are excluded. Model FLOP utilisation (MFU) is the matmul FLOPs of
those tokens (`step_flops` of scripts/bench_model.py: 6·P·T + 12·L·d·layers·T) per second over an fp32
`torch.mm` rate measured in the same run with the same total number of threads (2).
2 processes: `accelerate launch --multi_gpu --num_processes 2` with one thread each; 1 process: 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import matmul_gflops, step_flops  # noqa: E402

from dlm.models import DLMConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "tiny": {"model": {"hidden_size": 128, "cond_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
             "seq": 128, "batch": 16},
    "small": {"model": {"hidden_size": 384, "cond_dim": 128, "num_hidden_layers": 6, "num_attention_heads": 6},
              "seq": 256, "batch": 8},
}


def recipe(name: str, out: Path, steps: int, procs: int) -> dict:
    spec = CONFIGS[name]
    return {
        "model": {"config": {**spec["model"], "max_seq_len": spec["seq"]}},
        "tokenizer": {"name": "gpt2"},
        "data": {"source": "austen", "block_size": spec["seq"], "val_fraction": 0.0},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
        "train": {"output_dir": str(out), "max_steps": steps, "batch_size": spec["batch"], "log_every": steps // 2,
                  "eval_every": 10 * steps, "save_every": 10 * steps, "cpu": True},
    }


def run_training(name: str, procs: int, steps: int, workdir: Path) -> float:
    """tokens/s of the last logging window of a `dlm train` run."""
    out = workdir / f"{name}-{procs}"
    path = workdir / f"{name}-{procs}.yaml"
    path.write_text(yaml.safe_dump(recipe(name, out, steps, procs)))
    cli = ["-m", "dlm.cli.main", "train", str(path)]
    if procs == 1:
        cmd, env = [sys.executable, *cli], {**os.environ, "OMP_NUM_THREADS": "2"}
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(procs),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *cli]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} with {procs} process(es) failed:\n{done.stderr[-2000:]}")
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return float(last["tokens_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in CONFIGS.items():
            config = DLMConfig(vocab_size=50258, max_seq_len=spec["seq"], **spec["model"])
            tokens = spec["batch"] * spec["seq"]
            reference = matmul_gflops(tokens, config.hidden_size, 4 * config.hidden_size, 5)
            flops_per_token = step_flops(config, tokens, spec["seq"]) / tokens
            for procs in (1, 2):
                rate = run_training(name, procs, args.steps, Path(tmp))
                results[f"{name}/{procs}"] = {"tokens_per_s": rate, "matmul_gflops": reference,
                                              "mfu": rate * flops_per_token / 1e9 / reference}
    print(f"{'config':8}{'procs':>6}{'tokens/s':>11}{'MFU':>8}{'fp32 mm GFLOP/s':>17}")
    for key, row in results.items():
        name, procs = key.split("/")
        print(f"{name:8}{procs:>6}{row['tokens_per_s']:>11.0f}{row['mfu']:>8.0%}{row['matmul_gflops']:>17.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
