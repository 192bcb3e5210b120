import json

from dlm.evaluation.report import markdown_table, write_report


def test_markdown_table_formats_and_marks_missing_values():
    rows = [{"name": "a", "x": 1234.5}, {"name": "b", "x": None}]
    assert markdown_table(rows, [("name", "name", ""), ("x", "x", ",.1f")]) == (
        "| name | x |\n|---|---|\n| a | 1,234.5 |\n| b | – |")


def test_write_report_writes_markdown_and_json(tmp_path, capsys):
    write_report("| t |", {"rows": [1]}, tmp_path / "d" / "r.md", tmp_path / "r.json")
    assert (tmp_path / "d" / "r.md").read_text() == "| t |"
    assert json.loads((tmp_path / "r.json").read_text()) == {"rows": [1]}
    assert "| t |" in capsys.readouterr().out
