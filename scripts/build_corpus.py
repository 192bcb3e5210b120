"""Usage: python scripts/build_corpus.py {austen,kjv,shakespeare,all} [--out DIR]

Save a named offline corpus (or all of them) as a ``datasets.Dataset`` with ``save_to_disk``,
one document per row, columns ``text`` and ``source``, into ``DIR/NAME`` (default
``.cache/corpora/NAME``, git-ignored). The saved directory is itself a data source for training:
``DataConfig(source=".cache/corpora/austen")``. Run ``bash scripts/setup_assets.sh`` first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import datasets

from dlm.errors import DLMError
from dlm.training.corpora import CORPORA, load_corpus


def build(name: str, out: Path) -> datasets.Dataset:
    """Save corpus ``name`` to ``out/name`` and return the dataset."""
    docs = load_corpus(name)
    dataset = datasets.Dataset.from_dict({"text": [d.text for d in docs], "source": [d.source for d in docs]})
    dataset.save_to_disk(str(out / name))
    return dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=[*CORPORA, "all"], help="corpus to build, or all")
    parser.add_argument("--out", type=Path, default=Path(".cache/corpora"),
                        help="parent directory of the saved corpora (default .cache/corpora)")
    args = parser.parse_args(argv)
    try:
        for name in CORPORA if args.name == "all" else [args.name]:
            dataset = build(name, args.out)
            chars = sum(len(text) for text in dataset["text"])
            print(f"{name}: {len(dataset)} documents, {chars} characters -> {args.out / name}")
    except DLMError as err:
        print(err.one_line(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
