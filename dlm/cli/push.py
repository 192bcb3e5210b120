"""``dlm push MODEL_DIR REPO_ID``: upload a dlm model, its tokenizer and a generated model card to the hub."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a model directory (model, tokenizer, model card) to the Hugging Face hub",
        description="Upload the model files (config, safetensors weights), the tokenizer and a README.md model card "
                    "of MODEL_DIR to the hub repository REPO_ID (created if needed). The card is the directory's "
                    "README.md when it has one, else generated from model_cards/template.md with the training "
                    "run's recipe and validation figures. Training state (optimizer, RNG) is never uploaded. "
                    "Log in first with `hf auth login` (or set HF_TOKEN).")
    parser.add_argument("model_dir", type=Path, help="a directory written by dlm train (final/), save_pretrained or dlm convert")
    parser.add_argument("repo_id", help="hub repository, e.g. your-name/austen-mdlm")
    parser.add_argument("--run", type=Path, default=None, help="training run directory for the card (default: found from <run>/final)")
    parser.add_argument("--card", type=Path, default=None, help="use this markdown file as the model card")
    parser.add_argument("--license", default="apache-2.0", help="license in the card's metadata (default apache-2.0)")
    parser.add_argument("--dataset", action="append", default=None, help="hub dataset id for the metadata (repeatable)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, help="branch to push to")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--message", default="Upload dlm model", help="commit message")
    parser.add_argument("--dry-run", action="store_true", help="list the files and print the card; upload nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dlm.hub import push_to_hub

    result = push_to_hub(args.model_dir, args.repo_id, card=args.card, run_dir=args.run, private=args.private or None,
                         revision=args.revision, commit_message=args.message, create_pr=args.create_pr,
                         dry_run=args.dry_run, license=args.license, datasets=args.dataset)
    if args.dry_run:
        print(f"would upload to {result.repo_id}: {', '.join(result.files)}")
        print(result.card)
    else:
        print(f"uploaded {', '.join(result.files)} to https://huggingface.co/{result.repo_id}"
              + (f" ({result.commit_url})" if result.commit_url else ""))
    return 0
