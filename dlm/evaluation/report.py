"""Benchmark results as markdown: the tables the scripts under ``scripts/`` write into the README and docs."""

from __future__ import annotations

import json
from pathlib import Path


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A markdown table of ``rows`` with ``(key, header, format spec)`` columns; a missing or None value is "–"."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = ["–" if row.get(key) is None else format(row[key], spec) for key, _, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(text: str, result: dict, markdown: Path | None = None, json_path: Path | None = None) -> None:
    """Print the markdown ``text`` and write it to ``markdown``, and ``result`` as indented JSON to ``json_path``."""
    print(text)
    if markdown is not None:
        write_text(markdown, text)
    write_json(result, json_path)


def write_json(result: dict, json_path: Path | None) -> None:
    """``result`` as indented JSON at ``json_path`` (nothing for None); benchmarks also call it between parts."""
    if json_path is not None:
        write_text(json_path, json.dumps(result, indent=1))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` at ``path``, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
