"""``dlm tokenizer train``: train a byte-level BPE tokenizer on a named corpus or on text files.

Example: ``dlm tokenizer train --corpus shakespeare --vocab-size 8192 --out tokenizers/shakespeare``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dlm.errors import ConfigError


def add_parser(subparsers) -> None:
    """Register ``dlm tokenizer`` and its ``train`` action."""
    parser = subparsers.add_parser("tokenizer", help="train tokenizers")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    train = actions.add_parser("train", help="train a byte-level BPE tokenizer (<pad>=0 <bos>=1 <eos>=2, <mask> last)")
    text = train.add_mutually_exclusive_group(required=True)
    text.add_argument("--corpus", help="named offline corpus: austen, kjv or shakespeare")
    text.add_argument("--files", nargs="+", type=Path, help="UTF-8 text files to train on")
    train.add_argument("--vocab-size", type=int, required=True, help="upper bound on the vocabulary, specials included")
    train.add_argument("--min-frequency", type=int, default=2, help="minimum count of a merged pair (default 2)")
    train.add_argument("--out", type=Path, required=True, help="directory to save_pretrained the tokenizer into")
    train.set_defaults(func=run)
    parser.set_defaults(func=_missing_action)


def _missing_action(args: argparse.Namespace) -> int:
    """``dlm tokenizer`` alone: name the missing action."""
    raise ConfigError("'dlm tokenizer' needs an action", hint="run 'dlm tokenizer train --help'")


def run(args: argparse.Namespace) -> int:
    """Train, save and print the special-token ids."""
    from dlm.tokenization import mask_token_id_for, train_bpe_tokenizer
    from dlm.training.corpora import load_corpus

    texts = [doc.text for doc in load_corpus(args.corpus)] if args.corpus else args.files
    tokenizer = train_bpe_tokenizer(texts, args.vocab_size, args.out, min_frequency=args.min_frequency)
    _, mask_id = mask_token_id_for(tokenizer)
    print(f"saved a {len(tokenizer)}-token byte-level BPE tokenizer to {args.out} "
          f"(<pad>={tokenizer.pad_token_id} <bos>={tokenizer.bos_token_id} "
          f"<eos>={tokenizer.eos_token_id} <mask>={mask_id})")
    return 0
