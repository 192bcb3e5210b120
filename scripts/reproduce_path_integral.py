"""Reproduce Hirono, Tanaka & Fukushima (ICML'24), Table 1: PF-ODE NLL and its first-order WKB correction in 𝔥.

    .venv/bin/python scripts/reproduce_path_integral.py --out results.json \
        --figure docs/figures/path_integral_samples.png          # full run, ~30 min on one CPU thread
    .venv/bin/python scripts/reproduce_path_integral.py --quick --out /tmp/quick.json   # CI-sized, ~1 min

For each data set (Swiss roll, 25 Gaussians), SDE (SIMPLE, COSINE) and seed: train the 2-D MLP score model
(3×128 swish, input concat(x, t)) on 3000 points by denoising score matching with the likelihood weighting
λ = g², then on held-out points report the NLL at 𝔥 = 0 and the paper's "1st-corr" = −mean(correction) at
ODE tolerances 1e-3 and 1e-5, and the sample quality (sliced W2, MMD²) of the 𝔥-sampler for several 𝔥.
Means ± standard deviations are over seeds. Output layout: DESIGN.md, "Paper reproduction output".
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from sklearn.datasets import make_swiss_roll
from torch import Tensor
from tqdm import tqdm

from dlm.continuous.likelihood import log_likelihood
from dlm.continuous.losses import dsm_loss
from dlm.continuous.metrics import mmd2, sliced_wasserstein
from dlm.continuous.mixture import diffused_log_prob, grid_mixture
from dlm.continuous.models import MLP
from dlm.continuous.samplers import h_sample
from dlm.continuous.sde import SDE, get_sde

PAPER = {  # Table 1 of the paper: NLL at 𝔥 = 0 and 1st-corr at tolerances 1e-3 and 1e-5, mean ± std
    "swissroll": {"simple": (1.39, 0.05, -0.31, 0.21, -0.44, 0.38), "cosine": (1.42, 0.02, -1.59, 0.57, -3.27, 1.11)},
    "25gaussians": {"simple": (-1.22, 0.01, -3.64, 0.49, -3.61, 0.64), "cosine": (-1.71, 0.02, -17.57, 5.56, -19.65, 17.46)},
}
TOLS = (1e-3, 1e-5)


@dataclass(frozen=True)
class Config:
    """Sizes of one reproduction run."""

    seeds: int = 3
    train_points: int = 3000
    test_points: int = 500
    train_steps: int = 12_000
    batch_size: int = 512
    lr: float = 5e-3
    ema_decay: float = 0.999
    sample_points: int = 2000
    sample_steps: int = 250
    hs: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0)


QUICK = Config(seeds=2, test_points=32, train_steps=300, ema_decay=0.95, sample_points=256, sample_steps=100)


def swiss_roll(n: int, seed: int) -> Tensor:
    """scikit-learn's Swiss roll (noise 0.5), columns 0 and 2, scaled by 1/6.865."""
    points, _ = make_swiss_roll(n, noise=0.5, random_state=seed)
    return torch.tensor(points[:, [0, 2]] / 6.865, dtype=torch.float32)


def gaussians25(n: int, seed: int) -> Tensor:
    """25 Gaussians on a 5×5 grid, spacing 2, std 0.05, scaled by 1/2.828."""
    return grid_mixture().sample(n, torch.Generator().manual_seed(seed)).float()


DATASETS = {"swissroll": swiss_roll, "25gaussians": gaussians25}


def train(data: Tensor, sde: SDE, config: Config, seed: int) -> MLP:
    """Adam (cosine-decayed lr) on the likelihood-weighted DSM loss, score parameterisation; returns the EMA of the weights."""
    torch.manual_seed(seed)
    net = MLP()
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.train_steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(config.train_steps), desc="train", leave=False, mininterval=5):
        batch = data[torch.randint(0, data.shape[0], (config.batch_size,), generator=gen)]
        loss = dsm_loss(net, sde, batch, weighting="likelihood", parameterization="score", generator=gen).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        with torch.no_grad():
            for avg, param in zip(ema.parameters(), net.parameters()):
                avg.lerp_(param, 1.0 - config.ema_decay)
    return ema


def evaluate(model: MLP, sde: SDE, test: Tensor, held_out: Tensor, config: Config, seed: int) -> tuple[dict, dict]:
    """NLL and 1st-corr per tolerance (float64), and sample quality per 𝔥 with the samples themselves."""
    model64 = copy.deepcopy(model).double()
    metrics: dict = {}
    for tol in TOLS:
        start = time.perf_counter()
        out = log_likelihood(model64, sde, test.double(), rtol=tol, atol=tol)
        metrics[f"tol={tol:g}"] = {
            "nll": -out.log_prob.mean().item(),
            "nll_corr": -out.correction.mean().item(),
            "seconds": time.perf_counter() - start,
        }
    samples = {}
    for h in config.hs:
        gen = torch.Generator().manual_seed(seed)
        x = h_sample(model, sde, (config.sample_points, 2), h, config.sample_steps, gen, method="heun", spacing="karras")
        samples[h] = x
        metrics[f"h={h:g}"] = {
            "sliced_w2": sliced_wasserstein(x, held_out, 256, torch.Generator().manual_seed(0)),
            "mmd2": mmd2(x, held_out),
        }
    return metrics, samples


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (NaN stays NaN; 0 spread for one seed)."""
    stacked = torch.tensor(values, dtype=torch.float64)
    return stacked.mean().item(), stacked.std().item() if len(values) > 1 else 0.0


def summarize(runs: list[dict], data: str, sde: str) -> dict:
    """The DESIGN.md entry (tol 1e-5) plus every tolerance, the sample quality per 𝔥 and the paper's numbers."""
    entry: dict = {}
    for tol in TOLS:
        key = f"tol={tol:g}"
        nll, nll_std = mean_std([r[key]["nll"] for r in runs])
        corr, corr_std = mean_std([r[key]["nll_corr"] for r in runs])
        entry[key] = {"nll": nll, "nll_std": nll_std, "nll_corr": corr, "nll_corr_std": corr_std, "tol": tol}
    entry.update(entry["tol=1e-05"])
    entry["sample_quality"] = {}
    for key in (k for k in runs[0] if k.startswith("h=")):
        quality = entry["sample_quality"][key] = {}
        for name in ("sliced_w2", "mmd2"):
            quality[name], quality[f"{name}_std"] = mean_std([r[key][name] for r in runs])
    paper = PAPER[data][sde]
    entry["paper"] = {"nll": paper[0:2], "nll_corr_tol=1e-3": paper[2:4], "nll_corr_tol=1e-5": paper[4:6]}
    entry["seeds"] = runs
    return entry


def plot_samples(samples: dict, held_out: dict, path: Path) -> None:
    """One row per (data set, SDE), one column per 𝔥 plus held-out data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(samples)
    hs = list(next(iter(samples.values())))
    fig, axes = plt.subplots(len(rows), len(hs) + 1, figsize=(2.4 * (len(hs) + 1), 2.4 * len(rows)), squeeze=False)
    for axes_row, (data, sde) in zip(axes, rows):
        panels = [(f"data ({data})", held_out[data])] + [(f"{sde}, h={h:g}", samples[(data, sde)][h]) for h in hs]
        for ax, (title, x) in zip(axes_row, panels):
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
            ax.set_title(title, fontsize=8)
            ax.set(xlim=(-2.2, 2.2), ylim=(-2.2, 2.2), xticks=[], yticks=[], aspect="equal")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    parser.add_argument("--quick", action="store_true", help="CI-sized run (minutes, numbers not meaningful)")
    parser.add_argument("--figure", type=Path, default=None, help="PNG of samples per 𝔥 (seed 0)")
    parser.add_argument("--seeds", type=int, default=None, help="override the number of seeds")
    parser.add_argument("--train-steps", type=int, default=None, help="override the training steps per model")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = QUICK if args.quick else Config()
    overrides = {"seeds": args.seeds, "train_steps": args.train_steps}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    results: dict = {"config": asdict(config)}
    figure_samples, figure_data = {}, {}
    exact = grid_mixture()
    for data_name, make in DATASETS.items():
        train_data = make(config.train_points, 0)
        test = make(config.test_points, 1)
        held_out = make(config.sample_points, 2)
        figure_data[data_name] = held_out
        results[data_name] = {}
        for sde_name in ("simple", "cosine"):
            sde = get_sde(sde_name)
            runs = []
            for seed in tqdm(range(config.seeds), desc=f"{data_name}/{sde_name}"):
                start = time.perf_counter()
                model = train(train_data, sde, config, seed)
                train_seconds = time.perf_counter() - start
                metrics, samples = evaluate(model, sde, test, held_out, config, seed)
                runs.append({**metrics, "train_seconds": train_seconds})
                if seed == 0:
                    figure_samples[(data_name, sde_name)] = samples
            results[data_name][sde_name] = summarize(runs, data_name, sde_name)
            if data_name == "25gaussians":
                results[data_name][sde_name]["exact_nll"] = -diffused_log_prob(exact, sde, test.double(), sde.t_min).mean().item()
            entry = results[data_name][sde_name]
            print(
                f"{data_name:12s} {sde_name:7s} NLL {entry['nll']:.3f}±{entry['nll_std']:.3f}  "
                f"1st-corr(1e-3) {entry['tol=0.001']['nll_corr']:.3f}±{entry['tol=0.001']['nll_corr_std']:.3f}  "
                f"1st-corr(1e-5) {entry['nll_corr']:.3f}±{entry['nll_corr_std']:.3f}",
                flush=True,
            )
            args.out.write_text(json.dumps(results, indent=2))
    if args.figure is not None:
        plot_samples(figure_samples, figure_data, args.figure)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
