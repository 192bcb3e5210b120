"""Validation curves of training runs side by side, from their ``log.jsonl`` files (what ``dlm train`` logs).

    python scripts/learning_curves.py runs/austen_small runs/ar_austen_small \\
        --labels "MDLM (count NELBO)" "AR baseline" --plot docs/figures/learning_curves.png

Every ``eval_every`` steps the trainer logs the validation nats/token of its EMA weights on the run's held-out
blocks: the NELBO (a bound) for a diffusion model, the exact next-token NLL for the AR baseline. Runs of the
same data recipe share the held-out blocks and, with the same batch and schedule, a step is the same number of
training tokens, so the table compares the runs at equal training budgets: the steps all runs have reached, and
each run's last one. A resumed run logs some steps twice; the later entry counts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from dlm.evaluation.report import markdown_table


def validation_curve(run: Path) -> dict[int, float]:
    """{step: validation nats/token} of a run directory (or its log.jsonl)."""
    log = run / "log.jsonl" if run.is_dir() else run
    if not log.is_file():
        raise SystemExit(f"error: no training log at {log}")
    curve = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if "val_nats_per_token" in entry:
            curve[int(entry["step"])] = float(entry["val_nats_per_token"])
    return curve


def comparison_rows(curves: dict[str, dict[int, float]], every: int = 1000) -> list[dict]:
    """One row per compared step (multiples of ``every`` all runs reached, plus the common last step), nats and
    bits per token of every run."""
    common = sorted(set.intersection(*(set(c) for c in curves.values())))
    if not common:
        return []
    steps = [s for s in common if s % every == 0]
    steps += [common[-1]] if not steps or steps[-1] != common[-1] else []
    rows = []
    for step in steps:
        row = {"step": step}
        for label, curve in curves.items():
            row[f"{label} nats"] = curve[step]
            row[f"{label} bits"] = curve[step] / math.log(2)
        rows.append(row)
    return rows


def plot(curves: dict[str, dict[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, curve in curves.items():
        steps = sorted(curve)
        ax.plot(steps, [curve[s] for s in steps], label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation nats/token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (or log.jsonl files)")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: the directory names)")
    parser.add_argument("--every", type=int, default=1000, help="compare at multiples of this step (default 1000)")
    parser.add_argument("--plot", type=Path, help="write the curves as a PNG here")
    args = parser.parse_args(argv)
    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit(f"error: {len(args.runs)} runs but {len(labels)} labels")
    curves = {label: validation_curve(run) for label, run in zip(labels, args.runs)}
    rows = comparison_rows(curves, args.every)
    columns = [("step", "step", "")] + [(f"{label} {unit}", f"{label} {unit}/token", ".3f")
                                        for label in labels for unit in ("nats", "bits")]
    print(markdown_table(rows, columns))
    for label, curve in curves.items():
        last = max(curve) if curve else None
        print(f"{label}: last validation at step {last}: {curve[last]:.3f} nats/token" if curve else f"{label}: none")
    if args.plot:
        plot(curves, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
