"""``dlm convert {sedd,mdlm} SRC OUT``: an upstream SEDD/MDLM checkpoint directory to a ``save_pretrained`` one."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlm.convert import from_mdlm, from_sedd
from dlm.errors import InputError

CONVERTERS = {"sedd": from_sedd, "mdlm": from_mdlm}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an upstream SEDD or MDLM checkpoint to a dlm model directory",
        description="Convert an upstream checkpoint directory (config.json + model.safetensors, "
                    "weights.safetensors or a weights-only checkpoint.pth) into a directory that "
                    "transformers' AutoModel.from_pretrained loads (after `import dlm`).",
    )
    parser.add_argument("source", choices=sorted(CONVERTERS), help="which upstream code wrote the checkpoint")
    parser.add_argument("src", type=Path, help="upstream checkpoint directory")
    parser.add_argument("out", type=Path, help="output directory (must be new or empty unless --overwrite)")
    parser.add_argument("--use-ema", action="store_true", help="take the EMA weights of a training checkpoint")
    parser.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (or Hub id) to save into OUT")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    parser.set_defaults(func=run)


def _load_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load tokenizer {name!r}: {str(exc).splitlines()[0]}",
                         hint="pass a directory written by tokenizer.save_pretrained") from None


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise InputError(f"{out} is not empty", hint="choose a new directory or pass --overwrite")
    model = CONVERTERS[args.source](args.src, use_ema=args.use_ema)
    tokenizer = _load_tokenizer(args.tokenizer) if args.tokenizer else None
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    config = model.config
    print(f"converted {args.source} checkpoint {args.src} -> {out}: {model.num_parameters():,} parameters, "
          f"head={config.head}, process={config.process}, vocab_size={config.vocab_size}")
    return 0
