"""Benchmark the discrete samplers: speed, network calls and accuracy.

    python scripts/bench_sampling.py --json runs/bench_sampling.json            # exact toy (CPU, ~1 min)
    python scripts/bench_sampling.py --model DIR --device cuda --json OUT       # + a trained model

Part 1 (always): an enumerable toy language (V tokens, length L, p ∝ exp(2z)) with the exact posterior as the
denoiser. For every sampler and step count: seconds per sample, network calls per sample, the total-variation
distance TV(samples, p) (next to the sampling-noise floor E TV(p̂_n, p) of n exact draws) and, for the per-token
step samplers, the exact TV of the sampler's own law (no sampling noise). Writes a markdown table, ``--json`` and
a plot (``docs/figures/sampling_tv.png``).

Part 2 (``--model DIR``): the same samplers on a saved dlm model: seconds per sample, network calls and the mean
unigram entropy of the samples (low entropy flags repetitive text, a known failure of few-step samplers).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlm.evaluation.report import markdown_table, write_report  # noqa: E402
from dlm.exact import ExactPosterior, TabulatedPosterior, random_toy_distribution  # noqa: E402
from dlm.processes import MaskedProcess, UniformProcess  # noqa: E402
from dlm.samplers import sample_with_info, time_grid  # noqa: E402
from dlm.samplers.reference import chain_law, empirical, expected_tv_noise, step_fn, total_variation  # noqa: E402

# (label, method, options, processes); first_hitting ignores the step count
SAMPLERS = [
    ("euler", "euler", {}, ("masked", "uniform")),
    ("analytic", "analytic", {}, ("masked", "uniform")),
    ("ancestral", "ancestral", {"cache": False}, ("masked", "uniform")),
    ("ancestral+cache", "ancestral", {"cache": True}, ("masked",)),
    ("ancestral+ReMDM(η=0.02)", "ancestral", {"remask": 0.02, "remask_strategy": "cap"}, ("masked",)),
    ("ancestral+point-estimate", "ancestral", {"point_estimate": True}, ("uniform",)),
    ("first_hitting", "first_hitting", {}, ("masked",)),
    ("confidence(prob)", "confidence", {"confidence": "prob"}, ("masked",)),
    ("confidence(random)", "confidence", {"confidence": "random"}, ("masked",)),
]
CHAIN = {"euler": "euler", "analytic": "analytic", "ancestral": "ancestral", "ancestral+cache": "ancestral"}


def toy_steps(method: str, length: int, steps_list: list[int]) -> list[int]:
    """Step counts worth running on the toy: confidence reveals ≥ 1 token per call, so at most L steps."""
    if method == "first_hitting":
        return [length]
    if method == "confidence":
        return list(range(1, length + 1))
    return steps_list


def toy_rows(vocab: int, length: int, samples: int, steps_list: list[int], seed: int) -> list[dict]:
    """Part 1: every sampler × step count on the exact toy."""
    probs = random_toy_distribution(vocab, length, seed=seed)
    noise = expected_tv_noise(probs, samples)
    rows = []
    for process in (MaskedProcess(vocab), UniformProcess(vocab)):
        exact = ExactPosterior(process, probs, length)
        for label, method, options, processes in SAMPLERS:
            if process.name not in processes:
                continue
            for steps in toy_steps(method, length, steps_list):
                denoiser = TabulatedPosterior(exact, time_independent=isinstance(process, MaskedProcess))
                start = time.perf_counter()
                out = sample_with_info(denoiser, process, samples, length, steps, method=method,
                                       generator=torch.Generator().manual_seed(seed), **options)
                seconds = time.perf_counter() - start
                row = {"process": process.name, "sampler": label, "steps": steps if method != "first_hitting" else None,
                       "nfe": out.nfe, "nfe_per_sample": out.nfe_per_sample, "seconds_per_sample": seconds / samples,
                       "tv": total_variation(empirical(out.tokens, vocab), probs), "tv_noise_floor": noise}
                if label in CHAIN or label.startswith("ancestral+ReMDM"):
                    remask = {k: v for k, v in options.items() if k.startswith("remask")}
                    law = chain_law(step_fn(CHAIN.get(label, "ancestral"), process, **remask), exact,
                                    time_grid(process.schedule, steps))
                    row["tv_exact_law"] = total_variation(law, probs)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def unigram_entropy(tokens: torch.LongTensor) -> float:
    """Mean over samples of the entropy (nats) of each sample's token histogram."""
    values = []
    for row in tokens:
        counts = torch.bincount(row).double()
        p = counts[counts > 0] / counts.sum()
        values.append(float(-(p * p.log()).sum()))
    return sum(values) / len(values)


def model_rows(model_dir: str, samples: int, seq_len: int, steps_list: list[int], device: str, seed: int) -> list[dict]:
    """Part 2: the samplers on a trained model directory."""
    from transformers import AutoModel

    import dlm  # noqa: F401  (registers the dlm model type)
    from dlm.processes import process_from_config

    model = AutoModel.from_pretrained(model_dir).to(device).eval()
    process = process_from_config(model.config)
    rows = []
    for label, method, options, processes in SAMPLERS:
        if process.name not in processes:
            continue
        for steps in [seq_len] if method == "first_hitting" else steps_list:
            generator = torch.Generator(device).manual_seed(seed)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = sample_with_info(model, process, samples, seq_len, steps, method=method, generator=generator,
                                   **options)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            row = {"sampler": label, "steps": steps if method != "first_hitting" else None, "nfe": out.nfe,
                   "nfe_per_sample": out.nfe_per_sample, "seconds_per_sample": seconds / samples,
                   "unigram_entropy": unigram_entropy(out.tokens.cpu())}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


TOY_COLUMNS = [("process", "process", ""), ("sampler", "sampler", ""), ("steps", "steps", ""), ("nfe", "calls", ""),
               ("nfe_per_sample", "NFE / sample", ".1f"),
               ("seconds_per_sample", "s / sample", ".2e"), ("tv", "TV (samples)", ".4f"),
               ("tv_exact_law", "TV (exact law)", ".4f")]
MODEL_COLUMNS = [("sampler", "sampler", ""), ("steps", "steps", ""), ("nfe", "calls", ""),
                 ("nfe_per_sample", "NFE / sample", ".1f"),
                 ("seconds_per_sample", "s / sample", ".3f"), ("unigram_entropy", "unigram entropy (nats)", ".3f")]


def plot(rows: list[dict], path: Path) -> None:
    """TV against network evaluations per sample, one panel per process, the sampling-noise floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    processes = sorted({r["process"] for r in rows})
    fig, axes = plt.subplots(1, len(processes), figsize=(6 * len(processes), 4.2), squeeze=False)
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-"), ("v", "--"), ("P", ":"), ("X", "-"), ("h", "--")]
    for ax, name in zip(axes[0], processes):
        subset = [r for r in rows if r["process"] == name]
        for (marker, line), label in zip(styles, dict.fromkeys(r["sampler"] for r in subset)):
            points = [(r["nfe_per_sample"], r["tv"]) for r in subset if r["sampler"] == label]
            ax.plot(*zip(*points), marker="*" if len(points) == 1 else marker, linestyle=line,
                    markersize=11 if len(points) == 1 else 5, label=label)
        ax.axhline(subset[0]["tv_noise_floor"], color="gray", linestyle="--", label="noise floor (exact draws)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("network evaluations per sample")
        ax.set_ylabel("TV(samples, p)")
        ax.set_title(f"{name} process")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--vocab", type=int, default=4, help="toy vocabulary size V")
    parser.add_argument("--length", type=int, default=4, help="toy sequence length L")
    parser.add_argument("--samples", type=int, default=20_000, help="toy samples per sampler and step count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write all rows as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the tables here (default: print)")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "figures" / "sampling_tv.png")
    parser.add_argument("--model", help="part 2: a saved dlm model directory")
    parser.add_argument("--model-samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy tensors are small: one thread is fastest and its timings are stable

    toy = toy_rows(args.vocab, args.length, args.samples, args.steps, args.seed)
    tables = [f"### Exact toy: V={args.vocab}, L={args.length}, {args.samples} samples "
              f"(noise floor TV = {toy[0]['tv_noise_floor']:.4f})\n", markdown_table(toy, TOY_COLUMNS)]
    plot(toy, args.plot)
    result = {"toy": {"vocab": args.vocab, "length": args.length, "samples": args.samples, "rows": toy}}
    if args.model:
        torch.set_num_threads(threads)
        rows = model_rows(args.model, args.model_samples, args.seq_len, args.steps, args.device, args.seed)
        tables += [f"\n### Model {args.model}: {args.model_samples} samples of {args.seq_len} tokens\n",
                   markdown_table(rows, MODEL_COLUMNS)]
        result["model"] = {"path": args.model, "seq_len": args.seq_len, "rows": rows}
    text = "\n".join(tables) + "\n"
    write_report(text, result, args.markdown, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
