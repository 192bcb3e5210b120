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
    parser.add_argument("--tokenizer", metavar="NAME",
                        help="tokenizer to save into OUT: a directory, 'gpt2' (offline, from scripts/setup_assets.sh), "
                             "a hub id, or 'none'; default: gpt2 for checkpoints with GPT-2's vocabulary (SEDD, MDLM)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    parser.set_defaults(func=run)


GPT2_REAL_TOKENS = 50257


def _load_tokenizer(name: str):
    """A tokenizer by name: a save_pretrained directory, 'gpt2' (built offline) or a hub id."""
    from dlm.errors import DataError
    from dlm.tokenization import load_tokenizer

    try:
        return load_tokenizer(name)
    except DataError as exc:
        raise InputError(exc.message, hint=exc.hint or "pass a directory written by tokenizer.save_pretrained") from None


def _tokenizer_for(name: str | None, config):
    """The tokenizer to save with the converted model (None: none), checked against its vocabulary."""
    from dlm.tokenization import mask_token_id_for

    if name is None:
        if config.num_real_tokens != GPT2_REAL_TOKENS:
            return None
        name = "gpt2"
    if name == "none":
        return None
    tokenizer = _load_tokenizer(name)
    num_real, _ = mask_token_id_for(tokenizer)
    if num_real != config.num_real_tokens:
        raise InputError(f"tokenizer {name!r} has {num_real} real tokens but the checkpoint {config.num_real_tokens}",
                         hint="pass the tokenizer the checkpoint was trained with, or --tokenizer none")
    return tokenizer


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise InputError(f"{out} is not empty", hint="choose a new directory or pass --overwrite")
    model = CONVERTERS[args.source](args.src, use_ema=args.use_ema)
    tokenizer = _tokenizer_for(args.tokenizer, model.config)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    config = model.config
    print(f"converted {args.source} checkpoint {args.src} -> {out}: {model.num_parameters():,} parameters, "
          f"head={config.head}, process={config.process}, vocab_size={config.vocab_size}"
          + (f", tokenizer: {args.tokenizer or 'gpt2'}" if tokenizer is not None else ", no tokenizer"))
    return 0
