"""scripts/bench_images.py runs end to end in --quick mode on a tiny digits model and writes its JSON layout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_quick(tiny_model_dir, tmp_path):
    out, grid = tmp_path / "bench.json", tmp_path / "grid.png"
    env = {**os.environ, "DLM_ASSETS": str(tmp_path / "assets"), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_images.py"), "--model", str(tiny_model_dir),
                    "--quick", "--wkb", "2", "--wkb-steps", "3", "--out", str(out), "--grid", str(grid)],
                   check=True, cwd=ROOT, env=env, timeout=600, capture_output=True)
    results = json.loads(out.read_text())
    assert results["dataset"] == "digits" and 0 <= results["classifier_test_accuracy"] <= 1
    assert [(r["h"], r["guidance"]) for r in results["samples"]] == [(0.0, 0.0), (0.0, 3.0), (1.0, 0.0), (1.0, 3.0)]
    assert all(0 <= r["accuracy"] <= 1 and r["frechet"] >= 0 for r in results["samples"])
    assert results["bits_per_dim"]["images"] == 4 and results["bits_per_dim"]["mean"] > 0
    wkb = results["wkb"]
    assert wkb["images"] == 2 and set(wkb["bits_per_dim"]) == {"0.0", "1.0"} and wkb["first_order"]["stderr"] >= 0
    assert wkb["bits_per_dim"]["1.0"] - wkb["bits_per_dim"]["0.0"] == pytest.approx(wkb["first_order"]["mean"])
    assert grid.is_file() and len(list(tmp_path.glob("grid-*.png"))) == 20
    assert (tmp_path / "assets" / "images" / "classifier-digits-e1.safetensors").is_file()


@pytest.mark.parametrize("flags", [["--wkb", "-1"], ["--wkb", "2", "--wkb-paths", "0"], ["--wkb", "2", "--wkb-steps", "0"]])
def test_bad_wkb_budget_is_refused_before_any_work(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("bench_images").parse_args(flags)
    assert exit_info.value.code == 2 and "--wkb-paths" in capsys.readouterr().err
