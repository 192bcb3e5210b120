"""The reproduction and benchmark scripts run end to end in --quick mode and write the DESIGN.md layout."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], check=True, cwd=ROOT, timeout=900)


@pytest.mark.slow
def test_reproduce_quick_writes_the_design_layout(tmp_path):
    out = tmp_path / "results.json"
    run_script("reproduce_path_integral.py", "--quick", "--out", str(out), "--figure", str(tmp_path / "samples.png"))
    results = json.loads(out.read_text())
    for data in ("swissroll", "25gaussians"):
        for sde in ("simple", "cosine"):
            entry = results[data][sde]
            assert {"nll", "nll_std", "nll_corr", "nll_corr_std", "tol"} <= set(entry)
            assert entry["tol"] == 1e-5
    assert (tmp_path / "samples.png").stat().st_size > 0


@pytest.mark.slow
def test_bench_quick_runs(tmp_path):
    out = tmp_path / "bench.json"
    run_script("bench_continuous.py", "--quick", "--out", str(out))
    results = json.loads(out.read_text())
    euler = [r for r in results["samplers"]["rows"] if r["sampler"] == "h_sample euler h=0"]
    reference = [r for r in results["samplers"]["rows"] if r["sampler"] == "torchdiffeq euler"]
    assert [r["path_error"] for r in euler] == pytest.approx([r["path_error"] for r in reference], rel=1e-9)
