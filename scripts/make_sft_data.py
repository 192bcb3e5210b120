"""Write a small prompt/response JSONL from an offline corpus, for SFT demos (recipes/sft_tiny.yaml).

    python scripts/make_sft_data.py kjv runs/sft_data/kjv_verses.jsonl

Each record continues a passage: ``prompt`` = "Continue: " + the first half of a verse (KJV) or paragraph
(Austen, Shakespeare), cut at a comma, colon or semicolon near its middle; ``response`` = the rest.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlm.training.corpora import load_corpus  # noqa: E402

_CUT = re.compile(r"[,;:] ")


def split_passage(text: str) -> tuple[str, str] | None:
    """(first part including the punctuation, rest with its leading space), cut nearest the middle."""
    cuts = [m.end() - 1 for m in _CUT.finditer(text)]
    if not cuts:
        return None
    cut = min(cuts, key=lambda i: abs(i - len(text) / 2))
    head, tail = text[:cut], text[cut:]
    return (head, tail) if len(head) > 8 and len(tail) > 8 else None


def passages(corpus: str) -> list[str]:
    """Verses (KJV: one per line) or paragraphs (other corpora) of a corpus."""
    texts = []
    for doc in load_corpus(corpus):
        parts = doc.text.split("\n") if corpus == "kjv" else re.split(r"\n\s*\n", doc.text)
        texts.extend(" ".join(p.split()) for p in parts if p.strip())
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="an offline corpus name: austen, kjv or shakespeare")
    parser.add_argument("out", type=Path, help="output .jsonl")
    parser.add_argument("--max-records", type=int, default=4000)
    parser.add_argument("--max-chars", type=int, default=240, help="skip longer passages")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pairs = [pair for text in passages(args.corpus) if len(text) <= args.max_chars
             for pair in [split_passage(text)] if pair]
    random.Random(args.seed).shuffle(pairs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for head, tail in pairs[: args.max_records]:
            f.write(json.dumps({"prompt": f"Continue: {head}", "response": tail}) + "\n")
    print(f"wrote {min(len(pairs), args.max_records)} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
