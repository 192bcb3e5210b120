"""Package a trained run as the model shipped inside dlm (``dlm/assets/austen-mdlm``).

    python scripts/ship_model.py runs/austen_small/final [--out dlm/assets/austen-mdlm]
    python scripts/ship_model.py runs/austen_small/checkpoint-1200     # EMA weights of a checkpoint

Takes a ``final/`` directory or a ``checkpoint-<step>`` (whose ``ema.safetensors``, when present, replaces the
weights), stores the weights in float16 (safetensors; ``from_pretrained(dtype=torch.float32)`` upcasts them on
load) with the tokenizer, and reports how far the rounded weights move the clean-token log-probabilities.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

import dlm  # noqa: F401
from dlm.hf_utils import no_progress_bars
from dlm.models import DLMForDiffusion
from dlm.tokenization import load_tokenizer

REPO = Path(__file__).resolve().parents[1]


def load_run(path: Path) -> DLMForDiffusion:
    """The model of a run directory, with the EMA weights of a checkpoint when it has them."""
    with no_progress_bars():
        model = DLMForDiffusion.from_pretrained(path, dtype=torch.float32)
    ema = path / "ema.safetensors"
    if ema.is_file():
        model.load_state_dict(load_file(ema))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a final/ or checkpoint-<step>/ directory")
    parser.add_argument("--out", type=Path, default=REPO / "dlm" / "assets" / "austen-mdlm")
    args = parser.parse_args()
    model = load_run(args.run)
    tokenizer = load_tokenizer(args.run)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with no_progress_bars():
        model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 2**20
    print(f"shipped {args.run} -> {args.out} ({size:.1f} MiB); "
          f"max |Δ log p(x0|x_t)| from fp16 storage: {rounding_error(load_run(args.run), args.out):.2e}")


@torch.no_grad()
def rounding_error(reference: DLMForDiffusion, shipped: Path) -> float:
    """max |log p_fp16-stored − log p_fp32| over a random half-masked batch."""
    with no_progress_bars():
        rounded = DLMForDiffusion.from_pretrained(shipped, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    config = reference.config
    x = torch.randint(0, config.num_real_tokens, (4, config.max_seq_len), generator=gen)
    x = torch.where(torch.rand(x.shape, generator=gen) < 0.5, config.mask_id, x)
    t = torch.full((4,), 0.5)
    a, b = reference(x, t=t).x0_logits, rounded(x, t=t).x0_logits
    finite = torch.isfinite(a)
    return float((a[finite] - b[finite]).abs().max())


if __name__ == "__main__":
    main()
