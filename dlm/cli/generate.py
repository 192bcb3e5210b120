"""``dlm generate [PROMPT ...]``: sample text from a diffusion LM (default: the model shipped in the package)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dlm.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate text with a diffusion LM",
        description="Sample continuations of each PROMPT ('-' reads prompts from stdin, one per line). "
                    "With no prompt, sample unconditionally.")
    parser.add_argument("prompts", nargs="*", metavar="PROMPT")
    parser.add_argument("--model", default=None, help="model directory or hub id (default: the shipped model)")
    parser.add_argument("--prompt-file", type=Path, help="read prompts from this file, one per line")
    parser.add_argument("--length", type=int, default=128, help="tokens to generate after each prompt (default 128)")
    parser.add_argument("--steps", type=int, default=128, help="sampling steps (default 128)")
    parser.add_argument("--sampler", default="ancestral",
                        help="euler, analytic, ancestral, first_hitting or confidence (default ancestral)")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per prompt (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed, same output)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.9,
                        help="nucleus sampling on the clean-token posterior (default 0.9, which reads better from the "
                             "shipped model; 1 samples the model's own law)")
    parser.add_argument("--cfg", type=float, default=0.0, help="classifier-free guidance scale towards the prompt")
    parser.add_argument("--block-length", type=int, default=None, help="semi-autoregressive blocks (confidence sampler)")
    parser.add_argument("--remask", type=float, default=0.0, help="ReMDM remasking strength (ancestral sampler)")
    parser.add_argument("--chat", action="store_true", help="wrap each prompt in the tokenizer's chat template (SFT models)")
    parser.add_argument("--show-steps", action="store_true", help="print the denoising as it unfolds (masks as _)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per sample")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: sampling a small model is latency-bound, and on a shared "
                             "machine more OpenMP threads spin instead of working; raise it for large models)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def read_prompts(args: argparse.Namespace) -> list[str]:
    """Prompts from the arguments, '-' (stdin) and --prompt-file, in that order; [""] when none."""
    prompts: list[str] = []
    for prompt in args.prompts:
        if prompt == "-":
            prompts.extend(line for line in sys.stdin.read().splitlines() if line.strip())
        else:
            prompts.append(prompt)
    if args.prompt_file is not None:
        if not args.prompt_file.is_file():
            raise InputError(f"prompt file {args.prompt_file} not found")
        prompts.extend(line for line in args.prompt_file.read_text().splitlines() if line.strip())
    return prompts or [""]


def sampler_options(args: argparse.Namespace) -> dict:
    """The sampler-specific options the user set (others keep the sampler's defaults)."""
    options = {}
    if args.block_length is not None:
        options["block_length"] = args.block_length
    if args.remask:
        options["remask"] = args.remask
    return options


def run(args: argparse.Namespace) -> int:
    from dlm.pipeline import DiffusionLMPipeline

    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    prompts = read_prompts(args)
    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    if args.chat:
        from dlm.training.sft import chat_prompt

        prompts = [chat_prompt(pipe.tokenizer, p) for p in prompts]
    callback = None
    if args.show_steps:
        def callback(step, t, x):
            print(f"[step {step:>4} t={t:.3f}] {pipe.decode(x[0].tolist(), show_masks=True)!r}", flush=True)
    start = time.perf_counter()
    out = pipe(prompts, length=args.length, steps=args.steps, sampler=args.sampler, num_samples=args.num_samples,
               seed=args.seed, temperature=args.temperature, top_p=args.top_p, cfg_scale=args.cfg, callback=callback,
               progress=not args.no_progress, **sampler_options(args))
    seconds = time.perf_counter() - start
    rows = [p for p in prompts for _ in range(args.num_samples)]
    for i, (prompt, completion) in enumerate(zip(rows, out.completions)):
        if args.json:
            print(json.dumps({"prompt": prompt, "completion": completion, "text": out.texts[i],
                              "tokens": out.tokens[i, : out.prompt_lengths[i] + args.length].tolist(),
                              "nfe": out.nfe, "seconds": seconds}))
        else:
            if i:
                print()
            print(out.texts[i])
    return 0
