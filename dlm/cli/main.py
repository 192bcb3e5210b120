"""Entry point of the ``dlm`` command: dispatches to subcommands and turns user mistakes into one line.

Each subcommand lives in its own module of :mod:`dlm.cli` and exposes ``add_parser(subparsers)``,
which registers an ``argparse`` sub-parser whose ``func`` default runs the command and returns an
exit code. A :class:`dlm.errors.DLMError` raised anywhere is printed as one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dlm.errors import DLMError

SUBCOMMANDS = ("generate", "generate-image", "train", "eval", "convert", "tokenizer", "push", "card", "lora")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2 (argparse's own code)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (hint: run '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dlm", description="Diffusion language models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        module_name = f"dlm.cli.{name.replace('-', '_')}"  # generate-image -> dlm.cli.generate_image
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except DLMError as err:
        print(err.one_line(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
