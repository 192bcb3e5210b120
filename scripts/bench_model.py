"""Benchmark the DLM denoiser on CPU: training-step throughput, achieved GFLOP/s against a plain matmul, fp32 vs bf16.

    python scripts/bench_model.py [--threads 2 1] [--json OUT] [--profile]

One step = forward at random t on a masked x_t, the MDLM loss −log p(x0 | x_t) at masked positions on
``x0_logits``, and backward. Achieved FLOP/s counts matmuls only, forward + backward = 3 × forward:

    FLOPs/step = 6·P·T + 12·L·d·n_layers·T

with T = B·L tokens, P = n_layers·(3d² + d² + 2·r·d²) + d·N the matmul weights applied to every token
(fused qkv, attention output, MLP with ratio r, output projection over N = vocab_size), and 12·L·d per token
and layer for QKᵀ and AV (2·2·L·d forward). Not counted: the embedding gather, the per-sequence σ̄ MLP and
adaLN, norms, softmax, rotary and elementwise work, so the fraction is a lower bound on hardware use.
The reference is one fp32 ``torch.mm`` of the MLP's shape [T, d] × [d, r·d], timed before and after the model.
Every figure is the fastest of several runs, since the CPU may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from dlm.models import DLMConfig, DLMForDiffusion


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=50258, help="embedding rows incl. the mask (GPT-2 + 1)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="intra-op thread counts to run, e.g. 2 1 (the table repeats per count)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per precision (fastest reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--profile", action="store_true", help="print the top operators of one fp32 step")
    return parser.parse_args()


def random_model(config: DLMConfig, seed: int = 0) -> DLMForDiffusion:
    """Random weights everywhere (adaLN-zero would make the bf16-vs-fp32 comparison trivial)."""
    model = DLMForDiffusion(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1 + 0.1 * noise if "norm" in name else noise * (0.02 if p.dim() == 1 else p.shape[-1] ** -0.5))
    return model


def masked_batch(config: DLMConfig, batch: int, seq: int, seed: int = 0):
    """(x0, x_t, t): tokens masked with probability t ~ U(0.05, 1)."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, config.num_real_tokens, (batch, seq), generator=gen)
    t = 0.05 + 0.95 * torch.rand(batch, generator=gen)
    x_t = torch.where(torch.rand(batch, seq, generator=gen) < t[:, None], config.mask_id, x0)
    return x0, x_t, t


def train_step(model: DLMForDiffusion, x0, x_t, t, dtype: torch.dtype | None) -> None:
    """Forward, −log p(x0 | x_t) averaged over masked positions, backward."""
    autocast = torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext()
    with autocast:
        log_probs = model(x_t, t=t).x0_logits
    masked = x_t == model.config.mask_id
    loss = -(log_probs.gather(-1, x0[..., None])[..., 0] * masked).sum() / masked.sum()
    loss.backward()
    model.zero_grad(set_to_none=True)


def best_seconds(fn, steps: int, warmup: int) -> float:
    """Fastest of ``steps`` timed calls: on a shared CPU the minimum is the least disturbed run."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def step_flops(config: DLMConfig, tokens: int, seq: int) -> float:
    """6·P·T + 12·L·d·n_layers·T (matmuls, forward + backward)."""
    d, r = config.hidden_size, config.mlp_ratio
    per_token_weights = config.num_hidden_layers * (4 + 2 * r) * d * d + d * config.vocab_size
    return 6 * per_token_weights * tokens + 12 * seq * d * config.num_hidden_layers * tokens


def matmul_gflops(m: int, k: int, n: int, steps: int) -> float:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    return 2 * m * k * n / best_seconds(lambda: torch.mm(a, b), steps * 4, 3) / 1e9


def logits_difference(model: DLMForDiffusion, x_t, t) -> tuple[float, float]:
    """max |logits_bf16 − logits_fp32| and max |logits_fp32| of one forward in eval mode."""
    model.eval()
    with torch.no_grad():
        reference = model(x_t, t=t).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x_t, t=t).logits
    model.train()
    return (low - reference).abs().max().item(), reference.abs().max().item()


def profile(model: DLMForDiffusion, batch) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(model, *batch, None)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def run(model: DLMForDiffusion, batch, threads: int, steps: int, warmup: int) -> dict:
    """fp32 and bf16-autocast training steps with ``threads`` intra-op threads, against the fp32 matmul rate."""
    torch.set_num_threads(threads)
    config = model.config
    tokens, seq = batch[0].shape[0] * batch[0].shape[1], batch[0].shape[1]
    flops = step_flops(config, tokens, seq)
    matmul_shape = (tokens, config.hidden_size, config.mlp_ratio * config.hidden_size)
    matmul_before = matmul_gflops(*matmul_shape, steps)
    result = {"threads": threads}
    for name, dtype in (("fp32", None), ("bf16_autocast", torch.bfloat16)):
        seconds = best_seconds(lambda: train_step(model, *batch, dtype), steps, warmup)
        result[name] = {"step_ms": 1e3 * seconds, "tokens_per_s": tokens / seconds, "gflops": flops / seconds / 1e9}
    result["matmul_fp32_gflops"] = max(matmul_before, matmul_gflops(*matmul_shape, steps))  # better of before/after
    for name in ("fp32", "bf16_autocast"):
        result[name]["fraction_of_matmul"] = result[name]["gflops"] / result["matmul_fp32_gflops"]
    result["bf16_speedup"] = result["fp32"]["step_ms"] / result["bf16_autocast"]["step_ms"]
    return result


def print_table(results: dict) -> None:
    config = results["config"]
    print(f"DLM denoiser: {config['layers']} layers, hidden {config['hidden']}, {config['heads']} heads, "
          f"seq {config['seq']}, batch {config['batch']}, vocab {config['vocab']}, torch {results['torch']}")
    tokens = config["batch"] * config["seq"]
    print(f"matmul FLOPs per training step: {results['step_gflop']:.1f} GFLOP; reference fp32 mm "
          f"[{tokens}x{config['hidden']}]@[{config['hidden']}x{4 * config['hidden']}]")
    print(f"{'threads':>8}{'':3}{'':16}{'fp32':>10}{'bf16 autocast':>16}")
    rows = (("step_ms", "step (ms)", "{:.0f}"), ("tokens_per_s", "tokens/s", "{:.0f}"),
            ("gflops", "GFLOP/s", "{:.1f}"), ("fraction_of_matmul", "of fp32 matmul", "{:.0%}"))
    for run_result in results["runs"]:
        for i, (key, label, fmt) in enumerate(rows):
            threads = str(run_result["threads"]) if i == 0 else ""
            print(f"{threads:>8}{'':3}{label:16}{fmt.format(run_result['fp32'][key]):>10}"
                  f"{fmt.format(run_result['bf16_autocast'][key]):>16}")
        print(f"{'':11}fp32 matmul {run_result['matmul_fp32_gflops']:.1f} GFLOP/s; "
              f"bf16 speed-up {run_result['bf16_speedup']:.2f}x")
    print(f"max |Δlogits| bf16 vs fp32 = {results['bf16_max_abs_logit_diff']:.3g} "
          f"(max |logits| {results['max_abs_logit']:.3g})")


def main() -> None:
    args = parse_args()
    config = DLMConfig(vocab_size=args.vocab, hidden_size=args.hidden, cond_dim=128, num_hidden_layers=args.layers,
                       num_attention_heads=args.heads, max_seq_len=args.seq, time_conditioning=True)
    model = random_model(config).train()
    batch = masked_batch(config, args.batch, args.seq)
    results = {"config": {k: getattr(args, k) for k in ("layers", "hidden", "heads", "seq", "batch", "vocab")},
               "torch": torch.__version__, "step_gflop": step_flops(config, args.batch * args.seq, args.seq) / 1e9,
               "runs": [run(model, batch, threads, args.steps, args.warmup) for threads in args.threads]}
    diff, scale = logits_difference(model, *batch[1:])
    results["bf16_max_abs_logit_diff"], results["max_abs_logit"] = diff, scale
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.profile:
        profile(model, batch)


if __name__ == "__main__":
    main()
