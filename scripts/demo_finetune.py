"""Fine-tune a dlm model on another public-domain corpus for a few minutes; NELBO and generations before/after.

    python scripts/demo_finetune.py                                  # the shipped Austen model on the KJV Bible
    python scripts/demo_finetune.py --lora --steps 150 --json runs/demo_finetune_lora.json
    python scripts/demo_finetune.py --model runs/tiny/final --corpus shakespeare --steps 50

Continued pretraining (``model.init_from``, or LoRA adapters with ``--lora``, merged at the end) through the
same Trainer as ``dlm train``. The validation NELBO (bits/token) is measured on the same held-out documents of
the new corpus with the same fixed noise before and after; generations use fixed seeds, so the before/after
texts differ only by the weights. Needs the offline corpora: bash scripts/setup_assets.sh.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPTS = {
    "kjv": ["And God said,", "And it came to pass, when"],
    "austen": ["It is a truth universally acknowledged", "Elizabeth could not"],
    "shakespeare": ["To be, or not to be", "My lord,"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dlm/assets/austen-mdlm", help="model directory (or hub id) to fine-tune")
    parser.add_argument("--corpus", default="kjv", help="new corpus: kjv, austen, shakespeare, or a .txt/.jsonl path")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100: a few minutes on 2 CPU cores)")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--block-size", type=int, default=None, help="default: the model's max_seq_len (at most 160)")
    parser.add_argument("--lr", type=float, default=None, help="default 5e-4 (full), 2e-3 (LoRA)")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (r=8, alpha=16) and merge them")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--precision", default="bf16", choices=("no", "bf16"), help="training autocast (eval is float32)")
    parser.add_argument("--eval-batches", type=int, default=8, help="validation micro-batches (fixed, same before/after)")
    parser.add_argument("--prompts", nargs="*", default=None, help="prompts ('' = unconditional); default per corpus")
    parser.add_argument("--length", type=int, default=48, help="generated tokens per prompt")
    parser.add_argument("--sample-steps", type=int, default=64)
    parser.add_argument("--sampler", default="ancestral")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="training output directory (default runs/demo_finetune-CORPUS[-lora])")
    parser.add_argument("--json", type=Path, default=None, help="write the figures and generations here")
    return parser.parse_args(argv)


def generate(pipe, prompts: list[str], args) -> list[dict]:
    """One sample per prompt with seeds seed, seed+1, ... (the same before and after)."""
    rows = []
    for k, prompt in enumerate(prompts):
        out = pipe(prompt or None, length=args.length, steps=args.sample_steps, sampler=args.sampler, seed=args.seed + k)
        rows.append({"prompt": prompt, "text": out.texts[0], "seed": args.seed + k})
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from dlm.hub import resolve_model_dir
    from dlm.models import DLMForDiffusion
    from dlm.pipeline import DiffusionLMPipeline
    from dlm.tokenization import load_tokenizer
    from dlm.training.recipe import recipe_from_dict
    from dlm.training.trainer import Trainer

    torch.manual_seed(args.seed)
    model_dir = resolve_model_dir(args.model)
    base = DLMForDiffusion.from_pretrained(str(model_dir), dtype=torch.float32)
    tokenizer = load_tokenizer(model_dir)
    block = args.block_size or min(base.config.max_seq_len, 160)
    corpus_name = Path(args.corpus).stem if Path(args.corpus).exists() else args.corpus
    out = args.out or Path("runs") / f"demo_finetune-{corpus_name}{'-lora' if args.lora else ''}"
    shutil.rmtree(out, ignore_errors=True)
    raw = {
        "model": {"init_from": str(model_dir)},
        "tokenizer": {"name": str(model_dir)},
        "data": {"source": args.corpus, "block_size": block, "packing": "wrap", "val_fraction": 0.03,
                 "txt_documents": "paragraph"},  # .txt paths: hold out paragraphs (corpus names ignore it)
        "optim": {"lr": args.lr or (2e-3 if args.lora else 5e-4), "warmup_steps": min(20, args.steps // 5),
                  "lr_schedule": "cosine"},
        "train": {"output_dir": str(out), "max_steps": args.steps, "batch_size": args.batch_size,
                  "mixed_precision": args.precision, "eval_every": args.steps, "eval_batches": args.eval_batches,
                  "save_every": args.steps, "log_every": 10, "keep_last": 1, "cpu": True, "seed": args.seed},
    }
    if args.lora:
        raw["train"]["lora"] = {"r": args.lora_r, "alpha": 2 * args.lora_r}
    trainer = Trainer(recipe_from_dict(raw))
    prompts = args.prompts if args.prompts is not None else PROMPTS.get(corpus_name, []) + [""]

    before = trainer.evaluate()  # the validation noise is seeded: the same draws again after training
    samples_before = generate(DiffusionLMPipeline(base, tokenizer), prompts, args)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    start = time.perf_counter()
    after = trainer.fit()
    seconds = time.perf_counter() - start
    samples_after = generate(DiffusionLMPipeline.from_pretrained(out / "final"), prompts, args)

    tokens = args.steps * args.batch_size * block
    mode = f"LoRA r={args.lora_r} on attn_qkv, attn_out, mlp" if args.lora else "full fine-tuning"
    report = {
        "model": str(args.model), "corpus": args.corpus, "mode": mode, "steps": args.steps,
        "batch_size": args.batch_size, "block_size": block, "tokens": tokens, "trainable_parameters": trainable,
        "seconds": round(seconds, 1),
        "validation_blocks": min(len(trainer.val_data), args.eval_batches * trainer.micro),
        "before": {"val_bits_per_token": before["val_bits_per_token"], "val_ppl_bound": before["val_ppl_bound"],
                   "generations": samples_before},
        "after": {"val_bits_per_token": after["val_bits_per_token"], "val_ppl_bound": after["val_ppl_bound"],
                  "generations": samples_after},
        "sampling": {"sampler": args.sampler, "steps": args.sample_steps, "length": args.length},
        "final_model": str(out / "final"),
    }
    print(f"\nfine-tuned {args.model} on {args.corpus}: {mode}, {trainable:,} trainable parameters, "
          f"{args.steps} steps × {args.batch_size} × {block} tokens ({tokens:,} tokens) in {seconds:.0f} s")
    print(f"validation NELBO on {args.corpus} (held-out 3% of its documents, {report['validation_blocks']} blocks, "
          f"bits/token): before {before['val_bits_per_token']:.3f}, after {after['val_bits_per_token']:.3f} "
          f"(perplexity bound {before['val_ppl_bound']:.1f} -> {after['val_ppl_bound']:.1f})")
    print(f"generations ({args.sampler}, {args.sample_steps} steps, {args.length} tokens, fixed seeds):")
    for b, a in zip(samples_before, samples_after):
        print(f"\n  prompt {b['prompt']!r} (seed {b['seed']})")
        print(f"    before: {' '.join(b['text'].split())}")
        print(f"    after:  {' '.join(a['text'].split())}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    from dlm.errors import DLMError

    try:
        sys.exit(main())
    except DLMError as err:
        print(err.one_line(), file=sys.stderr)
        sys.exit(2)
