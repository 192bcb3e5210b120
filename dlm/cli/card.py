"""``dlm card MODEL_DIR``: write the model card (README.md) of a dlm model from model_cards/template.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "card", help="write a model card for a model directory",
        description="Fill model_cards/template.md for MODEL_DIR: metadata (library_name dlm, pipeline tag, license, "
                    "datasets, tags), architecture, the training recipe and last validation figures of its run, "
                    "and a usage snippet. Printed, or written with --out.")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--run", type=Path, default=None, help="training run directory (default: found from <run>/final)")
    parser.add_argument("--repo-id", default=None, help="hub id used in the usage snippet (default: the directory)")
    parser.add_argument("--name", default=None, help="model name (title)")
    parser.add_argument("--description", default=None, help="one paragraph under the title")
    parser.add_argument("--license", default="apache-2.0")
    parser.add_argument("--dataset", action="append", default=None, help="hub dataset id for the metadata (repeatable)")
    parser.add_argument("--base-model", default=None, help="hub id of the model this one was fine-tuned from")
    parser.add_argument("--prompt", default=None, help="prompt used in the usage snippet")
    parser.add_argument("--metrics", type=Path, default=None,
                        help="JSON file of extra evaluation figures {name: value} (e.g. from dlm eval)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="JSON file of samples [{prompt, text, settings}] to show in the card")
    parser.add_argument("--out", "-o", type=Path, default=None, help="write the card here (e.g. MODEL_DIR/README.md)")
    parser.set_defaults(func=run)


def _read_json(path: Path | None):
    from dlm.errors import InputError

    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {path}: {' '.join(str(err).split())[:200]}") from None


def run(args: argparse.Namespace) -> int:
    from dlm.model_card import model_card

    card = model_card(args.model_dir, run_dir=args.run, repo_id=args.repo_id, model_name=args.name,
                      description=args.description, license=args.license, datasets=args.dataset,
                      base_model=args.base_model, prompt=args.prompt, evaluation=_read_json(args.metrics),
                      samples=_read_json(args.samples))
    if args.out is None:
        print(card)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(str(card), encoding="utf-8")
        print(f"model card written to {args.out}")
    return 0
