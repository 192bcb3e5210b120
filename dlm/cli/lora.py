"""``dlm lora merge ADAPTER_DIR OUT``: merge a LoRA adapter into its base model, giving a plain dlm model."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("lora", help="LoRA adapters: merge into the base model",
                                   description="LoRA adapters trained with train.lora in a recipe.")
    commands = parser.add_subparsers(dest="lora_command", metavar="COMMAND", parser_class=type(parser))
    merge = commands.add_parser(
        "merge", help="merge an adapter into its base model and save a plain dlm model",
        description="Load the base model the adapter names (or --base), merge the LoRA update into its weights "
                    "(W + alpha/r * B A) and save_pretrained the result with the tokenizer to OUT.")
    merge.add_argument("adapter_dir", type=Path, help="<output_dir>/adapter or a checkpoint of a LoRA run")
    merge.add_argument("out", type=Path, help="output directory (must be new or empty unless --overwrite)")
    merge.add_argument("--base", default=None, help="base model directory or hub id (default: the adapter's)")
    merge.add_argument("--overwrite", action="store_true")
    merge.set_defaults(func=run_merge)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_merge(args: argparse.Namespace) -> int:
    from dlm.errors import InputError
    from dlm.training.lora import merge_adapter

    if args.out.exists() and (not args.out.is_dir() or (any(args.out.iterdir()) and not args.overwrite)):
        raise InputError(f"{args.out} exists and is not an empty directory", hint="choose a new directory or pass --overwrite")
    out = merge_adapter(args.adapter_dir, args.out, args.base)
    print(f"merged {args.adapter_dir} into a plain dlm model: {out}")
    return 0
