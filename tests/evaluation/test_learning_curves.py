import json
import math
from pathlib import Path

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def curves_script():
    return load_script("learning_curves")


def write_log(path: Path, entries: list[dict]) -> Path:
    path.mkdir(parents=True)
    (path / "log.jsonl").write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    return path


def test_runs_are_compared_at_common_steps_and_resumed_steps_keep_the_last_entry(curves_script, tmp_path, capsys):
    a = write_log(tmp_path / "a", [{"step": 500, "loss": 7.0, "val_nats_per_token": 6.0},
                                   {"step": 1000, "val_nats_per_token": 5.9},
                                   {"step": 1000, "val_nats_per_token": 5.5},  # resumed: logged twice
                                   {"step": 1500, "val_nats_per_token": 5.2}, {"step": 1600, "loss": 5.0}])
    b = write_log(tmp_path / "b", [{"step": 500, "val_nats_per_token": 5.0}, {"step": 1000, "val_nats_per_token": 4.0}])
    curves = {"a": curves_script.validation_curve(a), "b": curves_script.validation_curve(b)}
    assert curves["a"] == {500: 6.0, 1000: 5.5, 1500: 5.2}
    rows = curves_script.comparison_rows(curves, every=1000)
    assert [r["step"] for r in rows] == [1000]
    assert rows[0]["a nats"] == 5.5 and rows[0]["b bits"] == pytest.approx(4.0 / math.log(2))
    assert curves_script.main([str(a), str(b), "--every", "500", "--plot", str(tmp_path / "c.png")]) == 0
    assert "| 500 | 6.000 |" in capsys.readouterr().out and (tmp_path / "c.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="no training log"):
        curves_script.validation_curve(tmp_path / "missing")
