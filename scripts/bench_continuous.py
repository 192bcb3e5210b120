"""Benchmark the continuous samplers and the WKB likelihood correction on exact Gaussian-mixture scores.

    .venv/bin/python scripts/bench_continuous.py --out bench_continuous.json --figures docs/figures [--quick]

1. Samplers at equal network-call (NFE) budgets, exact score of a 2-D mixture under the VP SDE:
   - deterministic solvers (PF-ODE): mean ‖x − x_ref‖ against a dopri5 solve at rtol = 1e-10 from the same x_T;
   - every solver: sliced Wasserstein-2 to a large exact sample of the mixture (noise floor reported);
   - the same fixed-grid solvers from torchdiffeq on the same grid (torchsde / diffusers rows when installed).
2. The WKB correction: our one augmented backward solve against the paper's approach, which integrates δx
   along the PF-ODE and estimates ∇log q_t and Δlog q_t by central finite differences of nested PF-ODE
   likelihood solves (2D + 1 per evaluation). The score is 1.1 × the exact mixture score, the score of no
   diffusion, so the correction is far from zero; the reference is our solve at rtol = atol = 1e-10.
Wall times are single-thread CPU times on a shared machine: compare rows, not absolute numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from torchdiffeq import odeint
from tqdm import tqdm

from dlm.continuous.grids import time_grid
from dlm.continuous.likelihood import jacobian, log_likelihood, pf_ode_dynamics, solve
from dlm.continuous.metrics import sliced_wasserstein
from dlm.continuous.mixture import GaussianMixture, exact_score
from dlm.continuous.samplers import h_sample, heun_sample, pc_sample
from dlm.continuous.sde import SDE, ScoreFn, VPSDE, h_drift

Sampler = Callable[[int, Tensor, torch.Generator], Tensor]


def ring_mixture(k: int = 8, radius: float = 1.0, std: float = 0.1) -> GaussianMixture:
    """k equal Gaussians of std `std` on a circle: the benchmark's target."""
    angles = torch.arange(k, dtype=torch.float64) * (2 * torch.pi / k)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=-1)
    return GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), means, torch.full_like(means, std))


def torchdiffeq_sampler(score: ScoreFn, sde: SDE, method: str) -> Sampler:
    """torchdiffeq's fixed-grid `method` on the PF-ODE, stepping between the points of our uniform grid."""

    def run(steps: int, x_T: Tensor, generator: torch.Generator) -> Tensor:
        grid = time_grid(sde, steps).to(x_T.dtype)
        with torch.no_grad():
            return odeint(lambda t, x: h_drift(score, sde, x, t, 0.0), x_T, grid, method=method)[-1]

    return run


def torchsde_sampler(score: ScoreFn, sde: SDE, h: float) -> Sampler:
    """torchsde's Euler–Maruyama on the 𝔥-SDE in reversed time s = −t (needs torchsde)."""
    import torchsde

    class Reverse(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, s: Tensor, x: Tensor) -> Tensor:
            return -h_drift(score, sde, x, -s, h)

        def g(self, s: Tensor, x: Tensor) -> Tensor:
            return (h**0.5 * sde.g(-s)).expand_as(x)

    def run(steps: int, x_T: Tensor, generator: torch.Generator) -> Tensor:
        grid = -time_grid(sde, steps).to(x_T.dtype)
        dt = (grid[1] - grid[0]).item()
        with torch.no_grad():
            return torchsde.sdeint(Reverse(), x_T, grid[[0, -1]], method="euler", dt=dt)[-1]

    return run


def samplers(score: ScoreFn, sde: SDE) -> dict[str, tuple[int, bool, Sampler]]:
    """name -> (network calls per step, deterministic?, run(steps, x_T, generator))."""
    table: dict[str, tuple[int, bool, Sampler]] = {
        "h_sample euler h=0": (1, True, lambda n, x, g: h_sample(score, sde, x.shape, 0.0, n, g, x_T=x)),
        "h_sample heun h=0": (2, True, lambda n, x, g: h_sample(score, sde, x.shape, 0.0, n, g, method="heun", x_T=x)),
        "h_sample heun h=0 (karras grid)": (
            2,
            True,
            lambda n, x, g: h_sample(score, sde, x.shape, 0.0, n, g, method="heun", spacing="karras", x_T=x),
        ),
        "heun_sample (EDM, karras grid)": (2, True, lambda n, x, g: heun_sample(score, sde, x.shape, n, g, x_T=x)),
        "torchdiffeq euler": (1, True, torchdiffeq_sampler(score, sde, "euler")),
        "torchdiffeq midpoint": (2, True, torchdiffeq_sampler(score, sde, "midpoint")),
        "torchdiffeq rk4": (4, True, torchdiffeq_sampler(score, sde, "rk4")),
    }
    for h in (0.1, 0.3, 1.0):
        table[f"h_sample euler h={h}"] = (1, False, lambda n, x, g, h=h: h_sample(score, sde, x.shape, h, n, g, x_T=x))
    table["h_sample heun h=1"] = (2, False, lambda n, x, g: h_sample(score, sde, x.shape, 1.0, n, g, method="heun", x_T=x))
    table["pc_sample (1 corrector)"] = (2, False, lambda n, x, g: pc_sample(score, sde, x.shape, n, g, x_T=x))
    table["heun_sample churn=10"] = (2, False, lambda n, x, g: heun_sample(score, sde, x.shape, n, g, s_churn=10.0, x_T=x))
    if importlib.util.find_spec("torchsde") is not None:
        table["torchsde euler h=1"] = (1, False, torchsde_sampler(score, sde, 1.0))
    return table


def skipped_libraries() -> list[str]:
    """Messages for the optional libraries that are not installed."""
    return [
        f"{name}: not installed, its rows are skipped"
        for name in ("torchsde", "diffusers")
        if importlib.util.find_spec(name) is None
    ]


def timed(fn: Callable[[], Tensor], repeats: int) -> tuple[Tensor, float]:
    """fn()'s result and its best wall time over `repeats` runs (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def bench_samplers(budgets: list[int], n: int, seed: int, repeats: int) -> dict:
    """Error and wall time of every sampler at every NFE budget."""
    mixture, sde = ring_mixture(), VPSDE(t_min=1e-3)
    score = exact_score(mixture, sde)
    gen = torch.Generator().manual_seed(seed)
    x_T = sde.prior_sample((n, 2), gen, dtype=torch.float64)
    reference_sample = mixture.sample(50_000, gen)
    times = torch.tensor([sde.t_max, sde.t_min], dtype=torch.float64)
    with torch.no_grad():
        x_ref = odeint(
            lambda t, x: h_drift(score, sde, x, t, 0.0), x_T, times, rtol=1e-10, atol=1e-10, options={"step_t": times[1:]}
        )[-1]
    floor = sliced_wasserstein(mixture.sample(n, gen), reference_sample, 256, torch.Generator().manual_seed(1))
    rows = []
    table = samplers(score, sde)
    for name, (calls, deterministic, run) in tqdm(table.items(), desc="samplers"):
        for nfe in budgets:
            steps = max(nfe // calls, 1)
            x, seconds = timed(lambda: run(steps, x_T, torch.Generator().manual_seed(seed + 1)), repeats)
            rows.append(
                {
                    "sampler": name,
                    "nfe": steps * calls,
                    "seconds": seconds,
                    "path_error": (x - x_ref).norm(dim=-1).mean().item() if deterministic else None,
                    "sliced_w2": sliced_wasserstein(x, reference_sample, 256, torch.Generator().manual_seed(1)),
                }
            )
    return {"rows": rows, "sliced_w2_noise_floor": floor, "samples": n, "skipped": skipped_libraries()}


def fd_log_q(score: ScoreFn, sde: SDE, x: Tensor, t: float, tol: float) -> Tensor:
    """log q_t(x) of the PF-ODE marginal by a nested solve from t to t_max (the paper's building block)."""
    if t >= sde.t_max:
        return sde.prior_log_prob(x)
    x_T, div = solve(pf_ode_dynamics(score, sde, None), (x, x.new_zeros(x.shape[0])), t, sde.t_max, tol, tol, "dopri5")
    return sde.prior_log_prob(x_T) + div


def fd_grad_and_laplacian(score: ScoreFn, sde: SDE, x: Tensor, t: float, eps: float, tol: float) -> tuple[Tensor, Tensor]:
    """Central differences of log q_t: ∇ℓ ≈ (ℓ(x+εe_i) − ℓ(x−εe_i))/2ε, Δℓ ≈ Σ_i (ℓ(x+εe_i) − 2ℓ(x) + ℓ(x−εe_i))/ε²."""
    batch, dim = x.shape
    eye = torch.eye(dim, dtype=x.dtype)
    shifts = torch.cat([x.new_zeros(1, dim), eps * eye, -eps * eye])
    values = fd_log_q(score, sde, (x[:, None, :] + shifts).reshape(-1, dim), t, tol).reshape(batch, 2 * dim + 1)
    plus, minus = values[:, 1 : dim + 1], values[:, dim + 1 :]
    return (plus - minus) / (2 * eps), (plus + minus - 2 * values[:, :1]).sum(-1) / eps**2


def fd_correction(score: ScoreFn, sde: SDE, x: Tensor, steps: int, eps: float, tol: float) -> Tensor:
    """The paper's route: Heun steps of (x, δx, C) on the PF-ODE, δẋ = (∇f̃)δx − ½g²(s − a); a, Δℓ by finite differences."""

    def rhs(t: float, x: Tensor, dx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        tt = torch.tensor(t, dtype=x.dtype)
        half_g2 = 0.5 * sde.g(tt).square()
        grad_log_q, laplacian = fd_grad_and_laplacian(score, sde, x, t, eps, tol)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            s = score(xg, tt.expand(x.shape[0]))
            drift = sde.f(xg, tt) - half_g2 * s
            jac = jacobian(drift, xg, create_graph=True)
            div = torch.diagonal(jac, dim1=1, dim2=2).sum(-1)
            grad_div = torch.autograd.grad(div.sum(), xg)[0]
        div_s = (sde.drift_coef(tt) * x.shape[1] - div.detach()) / half_g2
        d_dx = torch.einsum("bij,bj->bi", jac.detach(), dx) + half_g2 * (grad_log_q - s.detach())
        d_c = (dx * grad_div).sum(-1) + half_g2 * (laplacian - div_s)
        return drift.detach(), d_dx, d_c

    grid = torch.linspace(sde.t_min, sde.t_max, steps + 1, dtype=torch.float64).tolist()
    dx, c = torch.zeros_like(x), x.new_zeros(x.shape[0])
    for t, t_next in zip(grid[:-1], grid[1:]):
        dt = t_next - t
        k1 = rhs(t, x, dx)
        k2 = rhs(t_next, x + dt * k1[0], dx + dt * k1[1])
        x, dx, c = (v + 0.5 * dt * (a + b) for v, a, b in zip((x, dx, c), k1, k2))
    return (dx * -x / sde.prior_std**2).sum(-1) + c


def bench_wkb(n: int, tols: list[float], fd_tols: list[float], fd_steps: list[int], fd_eps: float, seed: int) -> dict:
    """Time and error of the correction: augmented solve vs finite differences of nested solves."""
    truth = ring_mixture()
    sde = VPSDE(t_min=1e-3)
    exact = exact_score(truth, sde)

    def score(x: Tensor, t: Tensor) -> Tensor:  # overconfident: 1.1 × an exact score is no diffusion's score
        return 1.1 * exact(x, t)

    x = truth.sample(n, torch.Generator().manual_seed(seed))
    reference = log_likelihood(score, sde, x, rtol=1e-10, atol=1e-10).correction
    rows = []

    def record(method: str, tol: float, run: Callable[[], Tensor]) -> None:
        value, seconds = timed(run, 1)
        error = (value - reference).abs().mean().item()
        rows.append({"method": method, "tol": tol, "seconds": seconds, "mean_abs_error": error})

    for tol in tols:
        record("augmented ODE (ours)", tol, lambda: log_likelihood(score, sde, x, rtol=tol, atol=tol).correction)
    for tol in tqdm(fd_tols, desc="wkb finite differences"):
        for steps in fd_steps:
            with torch.no_grad():
                fd = partial(fd_correction, score, sde, x, steps, fd_eps, tol)
                record(f"finite differences, {steps} Heun steps (paper)", tol, fd)
    return {
        "rows": rows,
        "points": n,
        "mean_correction": reference.mean().item(),
        "mean_abs_correction": reference.abs().mean().item(),
    }


def plot(results: dict, figures: Path) -> list[str]:
    """Error-vs-NFE, sliced-W2-vs-NFE and WKB time/error figures; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    rows = results["samplers"]["rows"]
    names = list(dict.fromkeys(r["sampler"] for r in rows))
    fig, (ax_path, ax_sw) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, name in enumerate(names):
        mine = [r for r in rows if r["sampler"] == name]
        style = dict(ls="--" if name.startswith("torch") else "-", color=plt.cm.tab20(index % 20), label=name)
        if mine[0]["path_error"] is not None:
            ax_path.loglog([r["nfe"] for r in mine], [r["path_error"] for r in mine], marker="o", **style)
        ax_sw.loglog([r["nfe"] for r in mine], [r["sliced_w2"] for r in mine], marker=".", **style)
    ax_sw.axhline(results["samplers"]["sliced_w2_noise_floor"], color="k", lw=0.8, ls=":", label="noise floor")
    ax_path.set(xlabel="network calls", ylabel="mean ‖x − x_ref‖", title="PF-ODE solvers vs dopri5 reference")
    ax_sw.set(xlabel="network calls", ylabel="sliced W2 to exact samples", title="all samplers (exact score)")
    ax_path.legend(fontsize=7)
    ax_sw.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    paths = [figures / "bench_continuous_samplers.png"]
    fig.savefig(paths[0], dpi=120)
    wkb = results["wkb"]["rows"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method in dict.fromkeys(r["method"] for r in wkb):
        mine = [r for r in wkb if r["method"] == method]
        ax.loglog([r["seconds"] for r in mine], [r["mean_abs_error"] for r in mine], marker="o", label=method)
        for r in mine:
            ax.annotate(f"tol {r['tol']:.0e}", (r["seconds"], r["mean_abs_error"]), fontsize=7)
    ax.set(xlabel="wall time [s]", ylabel="mean |correction − reference|", title="first-order WKB correction")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(figures / "bench_continuous_wkb.png")
    fig.savefig(paths[1], dpi=120)
    return [str(p) for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_continuous.json"))
    parser.add_argument("--figures", type=Path, default=None, help="folder for the PNG figures (none if omitted)")
    parser.add_argument("--quick", action="store_true", help="CI-sized: two budgets, few samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        results = {
            "samplers": bench_samplers([20, 50], 500, args.seed, repeats=1),
            "wkb": bench_wkb(8, [1e-3, 1e-5], [1e-3], [10], 1e-3, args.seed),
        }
    else:
        results = {
            "samplers": bench_samplers([10, 20, 50, 100, 200, 500], 10_000, args.seed, repeats=3),
            "wkb": bench_wkb(64, [1e-3, 1e-5, 1e-7], [1e-3, 1e-5], [25, 100], 1e-3, args.seed),
        }
    for message in results["samplers"]["skipped"]:
        print(message)
    if args.figures is not None:
        results["figures"] = plot(results, args.figures)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
