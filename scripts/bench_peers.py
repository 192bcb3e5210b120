"""Side by side with the field's reference code: our denoiser and samplers against the original MDLM and SEDD
code and Meta's ``flow_matching`` discrete solver, in one process, on the same inputs.

    python scripts/bench_peers.py --sedd-repo /tmp/peers/sedd --mdlm-repo /tmp/peers/mdlm \\
        --model dlm/assets/austen-mdlm --ar-model runs/ar_austen_small/final --judge smollm2 \\
        --json runs/bench_peers.json --markdown runs/bench_peers.md

The upstream code is never downloaded or vendored: pass checkouts of github.com/louaaron/Score-Entropy-Discrete-
Diffusion (``--sedd-repo``) and github.com/kuleshov-group/mdlm (``--mdlm-repo``); a row whose checkout (or
``flow_matching``, the ``[bench]`` extra) is missing is skipped with a message. Their import-time needs are met
without installing their training stacks:

- **flash-attn** (CUDA only): when it is not importable, a stand-in ``flash_attn`` package is put in
  ``sys.modules`` with the two functions the DDiT blocks call: ``flash_attn_varlen_qkvpacked_func`` (packed
  varlen attention, computed per sequence with ``torch.nn.functional.scaled_dot_product_attention``, the kernel
  our model uses) and ``layers.rotary.apply_rotary_emb_qkv_`` (flash-attn's non-interleaved rotary on q and k,
  in place). So both sides run the same attention kernel and the comparison measures the rest of the code.
- MDLM's ``diffusion.py`` imports lightning, hydra, torchmetrics and its data/util modules at import time but its
  samplers use none of them: those names are stub modules (``LightningModule`` = ``nn.Module`` with a ``device``
  property) and the ``Diffusion`` object is made without its ``__init__``, with the attributes the sampler reads.
  ``models/dit.py`` is loaded from its file (``models/__init__`` would import mamba).
- Needs ``einops`` and ``omegaconf`` (and ``flow_matching`` for its solver): the ``[bench]`` extra, which
  ``scripts/setup.sh`` installs.

Part 1, the denoiser: upstream ``DIT`` (MDLM) and ``SEDD`` with random weights on the shape of ``--model`` (or
``--hidden/--layers/...``), converted to ours with ``dlm.convert``; forward and forward+backward tokens/s of each
(best of ``--repeats``), the largest difference of outputs, and of the per-token losses at the same (x_t, t)
(MDLM's SUBS loss; SEDD's score entropy).

Part 2, the samplers, each with its own code and the same denoiser: ours (ancestral with the no-change cache,
analytic), MDLM's ``_sample`` (ddpm_cache), SEDD's ``pc_sampler`` (analytic; the denoiser's exact mean-of-ratios
turned into SEDD's score), and ``flow_matching``'s ``MixtureDiscreteEulerSolver`` (masked source, linear
κ_t = t, p(x1 | x_t) from the denoiser at diffusion time 1 − t). On the exact-posterior toy: network calls, seconds
per sample and TV to the true law; on ``--model``: network calls, seconds per sample, gen-PPL under ``--judge``
and unigram entropy (plus the AR baseline, ``--ar-model``, sampled token by token with its KV cache).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import sys
import time
import types
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlm.denoiser import clean_log_probs  # noqa: E402
from dlm.evaluation.report import markdown_table, write_json, write_report  # noqa: E402
from dlm.exact import ExactPosterior, TabulatedPosterior, random_toy_distribution  # noqa: E402
from dlm.losses import nelbo_terms_at, posterior_log_ratios, score_entropy_at  # noqa: E402
from dlm.processes import MaskedProcess  # noqa: E402
from dlm.samplers import sample_with_info  # noqa: E402
from dlm.samplers.reference import empirical, expected_tv_noise, total_variation  # noqa: E402


# --- upstream code, imported in isolation ---------------------------------------------------------------------
def flash_attn_standin() -> dict[str, types.ModuleType]:
    """A ``flash_attn`` package with the two functions SEDD's and MDLM's DDiT blocks call (see the module doc)."""

    def varlen_qkvpacked(qkv, cu_seqlens, max_seqlen, dropout_p=0.0, causal=False, **_):
        bounds = cu_seqlens.tolist()
        lengths = {b - a for a, b in zip(bounds[:-1], bounds[1:])}
        if len(lengths) == 1:  # equal lengths: one batched call
            n = lengths.pop()
            q, k, v = qkv.view(-1, n, *qkv.shape[1:]).permute(2, 0, 3, 1, 4).unbind(0)  # [B, H, L, D] each
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal)
            return out.transpose(1, 2).reshape(-1, *qkv.shape[2:])
        outs = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            q, k, v = qkv[a:b].permute(1, 2, 0, 3).unbind(0)  # [H, l, D]
            outs.append(F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal).transpose(0, 1))
        return torch.cat(outs)

    def apply_rotary_emb_qkv_(qkv, cos, sin, *_, **__):
        half = cos.shape[-1]
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]  # [1, L, 1, D/2]
        for j in (0, 1):  # q and k, non-interleaved halves
            x1, x2 = qkv[:, :, j, :, :half].clone(), qkv[:, :, j, :, half:2 * half].clone()
            qkv[:, :, j, :, :half] = x1 * cos - x2 * sin
            qkv[:, :, j, :, half:2 * half] = x2 * cos + x1 * sin
        return qkv

    root, interface = types.ModuleType("flash_attn"), types.ModuleType("flash_attn.flash_attn_interface")
    layers, rotary = types.ModuleType("flash_attn.layers"), types.ModuleType("flash_attn.layers.rotary")
    interface.flash_attn_varlen_qkvpacked_func = varlen_qkvpacked
    rotary.apply_rotary_emb_qkv_ = apply_rotary_emb_qkv_
    root.flash_attn_interface, root.layers, layers.rotary = interface, layers, rotary
    root.__path__, layers.__path__ = [], []
    return {"flash_attn": root, "flash_attn.flash_attn_interface": interface, "flash_attn.layers": layers,
            "flash_attn.layers.rotary": rotary}


class _Anything(types.ModuleType):
    """A stub module: any attribute is a fresh (subclassable) class."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (), {"__init__": lambda self, *a, **k: None})
        setattr(self, name, value)
        return value


def _mdlm_stubs() -> dict[str, types.ModuleType]:
    class LightningModule(torch.nn.Module):
        @property
        def device(self):
            return next(self.parameters()).device

    lightning = _Anything("lightning")
    lightning.LightningModule = LightningModule
    torchmetrics = _Anything("torchmetrics")
    torchmetrics.aggregation = _Anything("torchmetrics.aggregation")
    hydra = _Anything("hydra")
    hydra.utils = _Anything("hydra.utils")
    models = _Anything("models")
    return {"lightning": lightning, "torchmetrics": torchmetrics, "torchmetrics.aggregation": torchmetrics.aggregation,
            "hydra": hydra, "hydra.utils": hydra.utils, "dataloader": _Anything("dataloader"),
            "utils": _Anything("utils"), "models": models}


@contextlib.contextmanager
def isolated(repo: Path, stubs: dict[str, types.ModuleType]):
    """sys.path += repo and ``stubs`` in sys.modules while importing; afterwards every module imported from the
    repo (and every stub) leaves sys.modules again, so SEDD's and MDLM's same-named modules never meet."""
    before = set(sys.modules)
    added = {name: mod for name, mod in stubs.items() if name not in sys.modules}
    sys.modules.update(added)
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        sys.path.remove(str(repo))
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            if name in added or str(getattr(module, "__file__", "") or "").startswith(str(repo)):
                del sys.modules[name]


def _load_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def attention_stubs() -> dict[str, types.ModuleType]:
    try:
        import flash_attn  # noqa: F401

        return {}
    except ImportError:
        return flash_attn_standin()


def load_sedd(repo: Path | None):
    """SEDD's model, graphs, noises and sampling modules, or None (with a message) when unavailable."""
    if repo is None or not (repo / "model" / "transformer.py").is_file():
        print(f"[skip] SEDD: no checkout at {repo} (pass --sedd-repo PATH)", file=sys.stderr)
        return None
    with isolated(repo, attention_stubs()):
        import graph_lib
        import model as sedd_model
        import noise_lib
        import sampling
    return types.SimpleNamespace(SEDD=sedd_model.SEDD, graph_lib=graph_lib, noise_lib=noise_lib, sampling=sampling)


def load_mdlm(repo: Path | None):
    """MDLM's DIT backbone, Diffusion class (for its samplers) and noise schedules, or None when unavailable."""
    if repo is None or not (repo / "diffusion.py").is_file():
        print(f"[skip] MDLM: no checkout at {repo} (pass --mdlm-repo PATH)", file=sys.stderr)
        return None
    with isolated(repo, {**attention_stubs(), **_mdlm_stubs()}):
        dit = _load_file("mdlm_dit", repo / "models" / "dit.py")
        import noise_schedule
        diffusion = _load_file("mdlm_diffusion", repo / "diffusion.py")
    return types.SimpleNamespace(DIT=dit.DIT, Diffusion=diffusion.Diffusion, noise_schedule=noise_schedule)


def load_flow_matching():
    try:
        from flow_matching.path import MixtureDiscreteProbPath
        from flow_matching.path.scheduler import PolynomialConvexScheduler
        from flow_matching.solver import MixtureDiscreteEulerSolver
        from flow_matching.utils import ModelWrapper
    except ImportError:
        print("[skip] flow_matching: not installed (pip install flow_matching, the [bench] extra)", file=sys.stderr)
        return None
    return types.SimpleNamespace(Path=MixtureDiscreteProbPath, Scheduler=PolynomialConvexScheduler,
                                 Solver=MixtureDiscreteEulerSolver, ModelWrapper=ModelWrapper)


# --- part 1: the denoiser ---------------------------------------------------------------------------------------
def randomise(module: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere (the DDiT zero-inits its output and adaLN layers)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1 + 0.1 * noise if "norm" in name else noise * (0.02 if p.dim() == 1 else p.shape[-1] ** -0.5))


def best_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def shape_of(args) -> dict:
    """The benchmark shape: --model's config, else the command-line sizes."""
    if args.model:
        config = json.loads((Path(args.model) / "config.json").read_text())
        return {"hidden": config["hidden_size"], "layers": config["num_hidden_layers"],
                "heads": config["num_attention_heads"], "cond": config["cond_dim"], "vocab": config["vocab_size"],
                "seq": args.seq or config["max_seq_len"], "batch": args.batch}
    return {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "cond": args.cond,
            "vocab": args.vocab, "seq": args.seq or 256, "batch": args.batch}


def model_rows(sedd, mdlm, shape: dict, repeats: int, seed: int = 0) -> list[dict]:
    """Part 1: upstream DIT/SEDD vs their conversions to DLMForDiffusion."""
    from omegaconf import OmegaConf

    from dlm.convert.checkpoint import build_model
    from dlm.convert.mdlm import mdlm_config
    from dlm.convert.sedd import sedd_config
    from dlm.processes import process_from_config

    rows = []
    vocab, batch, seq = shape["vocab"], shape["batch"], shape["seq"]
    model_cfg = {"hidden_size": shape["hidden"], "cond_dim": shape["cond"], "length": seq, "n_blocks": shape["layers"],
                 "n_heads": shape["heads"], "dropout": 0.0}
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, vocab - 1, (batch, seq), generator=gen)
    t = 0.05 + 0.9 * torch.rand(batch, generator=gen, dtype=torch.float64)

    def bench(label, impl, forward, loss):
        """Tokens/s of ``forward()`` (no grad) and of ``loss().backward()``."""
        tokens = batch * seq
        with torch.no_grad():
            fwd = best_seconds(forward, repeats)
        bwd = best_seconds(lambda: loss().backward(), repeats)
        return {"model": label, "impl": impl, "fwd_tokens_per_s": tokens / fwd, "fwd_bwd_tokens_per_s": tokens / bwd}

    if mdlm is not None:
        config = {"backbone": "dit", "parameterization": "subs", "diffusion": "absorbing_state",
                  "noise": {"type": "loglinear"}, "time_conditioning": False,
                  "model": {**model_cfg, "scale_by_sigma": False}}
        upstream = mdlm.DIT(OmegaConf.create(config), vocab_size=vocab)
        randomise(upstream, seed)
        ours = build_model(mdlm_config(config, upstream.state_dict()), upstream.state_dict())
        process = process_from_config(ours.config)
        noise = mdlm.noise_schedule.LogLinearNoise()
        sigma, dsigma = noise(t)
        x_t = process.corrupt(x0, t, torch.rand(batch, seq, generator=gen, dtype=torch.float64))
        masked = x_t == process.mask_id

        def mdlm_loss():  # MDLM's SUBS loss: −log p(x0) · σ̄'/(e^σ̄ − 1) at masked positions (diffusion.py)
            logits = upstream(x_t, torch.zeros(batch)).float()  # time_conditioning=False feeds σ̄ = 0
            logits[:, :, vocab - 1] += -1e6
            log_p = (logits - logits.logsumexp(-1, keepdim=True)).gather(-1, x0[..., None])[..., 0]
            return torch.where(masked, -log_p, 0.0) * (dsigma / torch.expm1(sigma))[:, None].float()

        def ours_loss():
            return nelbo_terms_at(ours, process, x0, x_t, t.float())

        with torch.no_grad():
            up_logits = upstream(x_t, torch.zeros(batch)).float()
            our_logits = ours(x_t, sigma=torch.zeros(batch)).logits
            diff_out = (up_logits - our_logits).abs().max().item()
            diff_loss = (mdlm_loss() - ours_loss()).abs().max().item()
            scale = mdlm_loss().abs().max().item()
        for impl, model, loss in (("MDLM DIT (upstream)", upstream, mdlm_loss), ("dlm DLMForDiffusion", ours, ours_loss)):
            model.train()
            forward = (lambda m=model: m(x_t, torch.zeros(batch))) if model is upstream else \
                (lambda: ours(x_t, t=t.float()).x0_logits)
            row = bench("MDLM (x0 / SUBS head)", impl, forward, lambda f=loss: f().sum() / (batch * seq))
            row.update(max_abs_output_diff=diff_out, max_abs_loss_diff=diff_loss, max_abs_loss=scale)
            rows.append(row)
            print(json.dumps(row), flush=True)

    if sedd is not None:
        config = {"tokens": vocab - 1, "graph": {"type": "absorb"}, "noise": {"type": "loglinear"},
                  "model": {**model_cfg, "type": "ddit", "scale_by_sigma": True}}
        upstream = sedd.SEDD(OmegaConf.create(config))
        randomise(upstream, seed + 1)
        ours = build_model(sedd_config(config), upstream.state_dict())
        process = process_from_config(ours.config)
        graph, noise = sedd.graph_lib.Absorbing(vocab - 1), sedd.noise_lib.LogLinearNoise()
        sigma, dsigma = noise(t)
        x_t = process.corrupt(x0, t, torch.rand(batch, seq, generator=gen, dtype=torch.float64))

        def sedd_loss():  # SEDD's loss at given (x_t, σ̄): σ̄'·score_entropy (losses.py)
            log_score = upstream(x_t, sigma.float())
            return dsigma.float()[:, None] * graph.score_entropy(log_score, sigma.float()[:, None], x_t, x0)

        def ours_loss():
            return score_entropy_at(ours, process, x0, x_t, t.float(), "score")

        with torch.no_grad():
            diff_out = (upstream(x_t, sigma.float()).float() - ours(x_t, sigma=sigma.float()).logits).abs().max().item()
            diff_loss = (sedd_loss() - ours_loss()).abs().max().item()
            scale = sedd_loss().abs().max().item()
        for impl, model, loss in (("SEDD (upstream)", upstream, sedd_loss), ("dlm DLMForDiffusion", ours, ours_loss)):
            model.train()
            forward = (lambda m=model: m(x_t, sigma.float())) if model is upstream else \
                (lambda: ours(x_t, sigma=sigma.float()).logits)
            row = bench("SEDD (score head)", impl, forward, lambda f=loss: f().sum() / (batch * seq))
            row.update(max_abs_output_diff=diff_out, max_abs_loss_diff=diff_loss, max_abs_loss=scale)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# --- part 2: samplers with the same denoiser --------------------------------------------------------------------
class Counted:
    """A denoiser that counts its calls (and passes ``time_independent`` through)."""

    def __init__(self, denoiser):
        self.denoiser, self.calls = denoiser, 0
        flag = getattr(denoiser, "time_independent", None)
        if flag is None:
            flag = getattr(getattr(denoiser, "config", None), "time_conditioning", None) is False
        self.time_independent = bool(flag)

    def __call__(self, x_t, t):
        self.calls += 1
        return self.denoiser(x_t, t)


def _time_at_sigma(process: MaskedProcess, sigma: torch.Tensor) -> torch.Tensor:
    return process.schedule.time_at_alpha(torch.exp(-sigma.double())).double().clamp(0.0, 1.0).float()


def _with_clean_rows(log_probs: torch.Tensor, x: torch.LongTensor, process: MaskedProcess) -> torch.Tensor:
    """Posterior probabilities [B, L, V+1]: the denoiser's at masked positions, δ(x_i) at clean ones, mask col 0."""
    probs = torch.cat([log_probs.exp(), torch.zeros_like(log_probs[..., :1])], dim=-1)
    onehot = F.one_hot(x, process.num_states).to(probs.dtype)
    return torch.where((x == process.mask_id).unsqueeze(-1), probs, onehot)


def run_ours(denoiser, process, n, length, steps, method, seed, **options):
    """Our sampler; also records the network evaluations per sequence (the ancestral cache skips sequences that did
    not change, MDLM's only whole batches that did not) on the denoiser."""
    out = sample_with_info(denoiser, process, n, length, steps, method, torch.Generator().manual_seed(seed), **options)
    denoiser.per_sample = getattr(denoiser, "per_sample", 0.0) + out.nfe_per_sample * n
    return out.tokens


def run_mdlm(mdlm, denoiser, process, n, length, steps, seed):
    """MDLM's own ``Diffusion._sample`` (ddpm_cache) with ``denoiser`` as its backbone."""
    from omegaconf import OmegaConf

    class Backbone(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the object a device

        def forward(self, x, sigma):
            log_probs = clean_log_probs(denoiser, x, _time_at_sigma(process, sigma.reshape(-1)), process.vocab_size)
            return torch.cat([log_probs, torch.zeros_like(log_probs[..., :1])], dim=-1)

    model = mdlm.Diffusion.__new__(mdlm.Diffusion)
    torch.nn.Module.__init__(model)
    model.backbone = Backbone()
    model.config = OmegaConf.create({"sampling": {"steps": steps, "noise_removal": True},
                                     "loader": {"eval_batch_size": n}, "model": {"length": length},
                                     "noise": {"type": "loglinear"}})
    model.noise = mdlm.noise_schedule.LogLinearNoise()
    model.mask_index, model.vocab_size = process.mask_id, process.num_states
    model.sampler, model.parameterization = "ddpm_cache", "subs"
    model.time_conditioning = not getattr(denoiser, "time_independent", False)
    model.neg_infinity = -1000000.0
    torch.manual_seed(seed)
    return model._sample(num_steps=steps)


def run_sedd(sedd, denoiser, process, n, length, steps, seed, predictor="analytic"):
    """SEDD's own ``get_pc_sampler`` with the denoiser's exact mean of ratios as its score model."""

    class Score(torch.nn.Module):
        def forward(self, x, sigma):
            log_probs = clean_log_probs(denoiser, x, _time_at_sigma(process, sigma), process.vocab_size)
            return posterior_log_ratios(log_probs, process, x, sigma.double())

    graph, noise = sedd.graph_lib.Absorbing(process.vocab_size), sedd.noise_lib.LogLinearNoise()
    sampler = sedd.sampling.get_pc_sampler(graph, noise, (n, length), predictor, steps, denoise=True, eps=1e-5,
                                           device=torch.device("cpu"))
    torch.manual_seed(seed)
    return sampler(Score())


def run_flow_matching(fm, denoiser, process, n, length, steps, seed):
    """flow_matching's MixtureDiscreteEulerSolver, masked source, κ_t = t; p(x1 | x_t) from the denoiser at 1 − t."""

    class Posterior(fm.ModelWrapper):
        def __init__(self):
            super().__init__(None)

        def forward(self, x, t, **extras):
            log_probs = clean_log_probs(denoiser, x, (1 - t).clamp(1e-5, 1.0).float(), process.vocab_size)
            return _with_clean_rows(log_probs.double(), x, process).float()

    path = fm.Path(scheduler=fm.Scheduler(n=1.0))
    solver = fm.Solver(model=Posterior(), path=path, vocabulary_size=process.num_states)
    torch.manual_seed(seed)
    x_init = torch.full((n, length), process.mask_id, dtype=torch.long)
    return solver.sample(x_init=x_init, step_size=None, time_grid=torch.linspace(0.0, 1.0, steps + 1))


def sampler_specs(sedd, mdlm, fm):
    """(label, runner(denoiser, process, n, length, steps, seed)) of every available sampler."""
    specs = [("dlm ancestral (cache)", lambda d, p, n, L, s, r: run_ours(d, p, n, L, s, "ancestral", r)),
             ("dlm analytic", lambda d, p, n, L, s, r: run_ours(d, p, n, L, s, "analytic", r))]
    if mdlm is not None:
        specs.append(("MDLM ddpm_cache (upstream)", lambda d, p, n, L, s, r: run_mdlm(mdlm, d, p, n, L, s, r)))
    if sedd is not None:
        specs.append(("SEDD analytic (upstream)", lambda d, p, n, L, s, r: run_sedd(sedd, d, p, n, L, s, r)))
    if fm is not None:
        specs.append(("flow_matching Euler", lambda d, p, n, L, s, r: run_flow_matching(fm, d, p, n, L, s, r)))
    return specs


def toy_rows(specs, vocab: int, length: int, samples: int, steps_list: list[int], seed: int) -> list[dict]:
    """Every sampler × step count on the exact-posterior toy (masked process)."""
    probs = random_toy_distribution(vocab, length, seed=seed)
    process = MaskedProcess(vocab)
    exact = ExactPosterior(process, probs, length)
    noise = expected_tv_noise(probs, samples)
    rows = []
    for label, runner in specs:
        for steps in steps_list:
            denoiser = Counted(TabulatedPosterior(exact, time_independent=True))
            start = time.perf_counter()
            tokens = runner(denoiser, process, samples, length, steps, seed)
            seconds = time.perf_counter() - start
            per_sample = getattr(denoiser, "per_sample", None)
            row = {"sampler": label, "steps": steps, "nfe": denoiser.calls,
                   "nfe_per_sample": denoiser.calls if per_sample is None else per_sample / samples,
                   "seconds_per_sample": seconds / samples,
                   "tv": total_variation(empirical(tokens.long(), vocab), probs), "tv_noise_floor": noise}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def trained_rows(specs, model_dir: str, ar_dir: str | None, judge: str, samples: int, length: int, steps: int,
                 batch: int, seed: int, reference_recipe: str | None = None) -> list[dict]:
    """Every sampler on a saved model (and the AR baseline): calls, s/sample, gen-PPL, unigram entropy."""
    from dlm.evaluation import generative_perplexity, load_judge, unigram_entropy
    from dlm.evaluation.samples import load_for_eval
    from dlm.processes import process_from_config

    model, tokenizer, _ = load_for_eval(model_dir)
    process = process_from_config(model.config)
    length = length or model.config.max_seq_len
    outputs = []
    for label, runner in specs:
        denoiser = Counted(model)
        chunks, seconds = [], 0.0
        for k, start in enumerate(range(0, samples, batch)):
            n = min(batch, samples - start)
            clock = time.perf_counter()
            with torch.no_grad():
                chunks.append(runner(denoiser, process, n, length, steps, seed + k).long().cpu())
            seconds += time.perf_counter() - clock
        tokens = torch.cat(chunks)
        per_sample = getattr(denoiser, "per_sample", None)
        nfe = denoiser.calls / math.ceil(samples / batch) if per_sample is None else per_sample / samples
        outputs.append((label, steps, nfe, seconds / samples, tokens))
        print(f"[samples] {label}: {seconds / samples:.3f} s/sample", file=sys.stderr, flush=True)
    if ar_dir:
        from dlm.training.ar import ar_sample

        ar, _, _ = load_for_eval(ar_dir)
        chunks, seconds = [], 0.0
        for k, start in enumerate(range(0, samples, batch)):
            clock = time.perf_counter()
            chunks.append(ar_sample(ar, min(batch, samples - start), length, torch.Generator().manual_seed(seed + k)))
            seconds += time.perf_counter() - clock
        outputs.append(("AR baseline (GPT-2, KV cache)", None, length, seconds / samples, torch.cat(chunks)))
    if reference_recipe:  # held-out text itself, cut like the samples: what the judge gives real Austen
        from dlm.evaluation import heldout_blocks
        from dlm.training.recipe import load_recipe

        blocks = heldout_blocks(load_recipe(reference_recipe).data, tokenizer).with_format("torch")
        tokens = blocks[: min(samples, len(blocks))]["input_ids"][:, :length]
        outputs.insert(0, ("held-out text (reference)", None, None, None, tokens))
    judge_model = load_judge(judge) if judge else None
    rows = []
    for label, steps_used, nfe, seconds, tokens in outputs:
        texts = [tokenizer.decode(row.tolist(), skip_special_tokens=True) for row in tokens]
        row = {"sampler": label, "steps": steps_used, "nfe_per_sample": nfe, "seconds_per_sample": seconds,
               "unigram_entropy": unigram_entropy(tokens)}
        if judge_model is not None:
            row["gen_ppl"] = generative_perplexity(texts, judge_model).gen_ppl
        row["example"] = texts[0][:160]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# --- output -------------------------------------------------------------------------------------------------------
MODEL_COLUMNS = [("model", "model", ""), ("impl", "implementation", ""), ("fwd_tokens_per_s", "fwd tokens/s", ",.0f"),
                 ("fwd_bwd_tokens_per_s", "fwd+bwd tokens/s", ",.0f"),
                 ("max_abs_output_diff", "max |Δ output|", ".1e"), ("max_abs_loss_diff", "max |Δ loss|", ".1e")]
TOY_COLUMNS = [("sampler", "sampler", ""), ("steps", "steps", ""), ("nfe", "network calls", ""),
               ("nfe_per_sample", "NFE / sample", ".1f"),
               ("seconds_per_sample", "s / sample", ".2e"), ("tv", "TV to p", ".4f")]
TRAINED_COLUMNS = [("sampler", "sampler", ""), ("steps", "steps", ""), ("nfe_per_sample", "NFE / sample", ".1f"),
                   ("seconds_per_sample", "s / sample", ".3f"), ("gen_ppl", "gen-PPL", ".1f"),
                   ("unigram_entropy", "unigram entropy", ".3f")]


def plot(result: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if result.get("denoiser"):
        rows = result["denoiser"]
        fig, ax = plt.subplots(figsize=(7, 3.6))
        labels = [f"{r['impl']}\n{r['model']}" for r in rows]
        y = range(len(rows))
        ax.barh([i + 0.2 for i in y], [r["fwd_tokens_per_s"] for r in rows], height=0.4, label="forward")
        ax.barh([i - 0.2 for i in y], [r["fwd_bwd_tokens_per_s"] for r in rows], height=0.4, label="forward+backward")
        ax.set_yticks(list(y), labels, fontsize=7)
        ax.set_xlabel("tokens / s (higher is better)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "peers_throughput.png", dpi=120)
        written.append(str(out_dir / "peers_throughput.png"))
    if result.get("toy"):
        rows = result["toy"]["rows"]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for label in dict.fromkeys(r["sampler"] for r in rows):
            points = [(r["nfe_per_sample"], r["tv"]) for r in rows if r["sampler"] == label]
            ax.plot(*zip(*points), marker="o", label=label)
        ax.axhline(rows[0]["tv_noise_floor"], color="gray", linestyle="--", label="noise floor (exact draws)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("network evaluations per sample")
        ax.set_ylabel("TV(samples, p)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "peers_toy_tv.png", dpi=120)
        written.append(str(out_dir / "peers_toy_tv.png"))
    if result.get("trained") and any("gen_ppl" in r for r in result["trained"]["rows"]):
        rows = result["trained"]["rows"]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        markers = "o s ^ D v P X h *".split()
        for r, marker in zip(rows, markers * 3):
            ax.scatter(r["unigram_entropy"], r["gen_ppl"], s=45, marker=marker, label=r["sampler"], alpha=0.8)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.set_xlabel("unigram entropy (nats; higher = less repetition)")
        ax.set_ylabel(f"gen-PPL, judge {result['trained']['judge']} (log)")
        fig.tight_layout()
        fig.savefig(out_dir / "peers_samples.png", dpi=120)
        written.append(str(out_dir / "peers_samples.png"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sedd-repo", type=Path, help="checkout of louaaron/Score-Entropy-Discrete-Diffusion")
    parser.add_argument("--mdlm-repo", type=Path, help="checkout of kuleshov-group/mdlm")
    parser.add_argument("--model", help="a dlm model directory: its shape for part 1, its samples for part 2")
    parser.add_argument("--ar-model", help="the AR baseline's directory (part 2 row)")
    parser.add_argument("--judge", default="smollm2", help="gen-PPL judge ('smollm2', a directory, or '' for none)")
    parser.add_argument("--reference-recipe", help="add a row for held-out blocks of this recipe's data (real text)")
    parser.add_argument("--parts", nargs="+", default=["denoiser", "toy", "trained"],
                        choices=["denoiser", "toy", "trained"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--cond", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=4096, help="embedding rows incl. the mask")
    parser.add_argument("--seq", type=int, default=None, help="sequence length (default: the model's context)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--toy-vocab", type=int, default=4)
    parser.add_argument("--toy-length", type=int, default=4)
    parser.add_argument("--toy-samples", type=int, default=20_000)
    parser.add_argument("--toy-steps", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--samples", type=int, default=32, help="samples per sampler on --model")
    parser.add_argument("--sample-length", type=int, default=None, help="default: the model's context")
    parser.add_argument("--steps", type=int, default=128, help="sampling steps on --model")
    parser.add_argument("--sample-batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path, help="write the tables here (default: print)")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--replot", type=Path, help="only redraw the figures from this --json output")
    args = parser.parse_args(argv)

    if args.replot:
        print("\n".join(plot(json.loads(args.replot.read_text()), args.figures)))
        return 0
    clock = time.perf_counter()
    warnings.filterwarnings("ignore", category=FutureWarning)  # upstream's torch.cuda.amp.autocast calls
    sedd, mdlm, fm = load_sedd(args.sedd_repo), load_mdlm(args.mdlm_repo), load_flow_matching()
    result: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    tables = []
    if "denoiser" in args.parts:
        shape = shape_of(args)
        rows = model_rows(sedd, mdlm, shape, args.repeats, args.seed)
        result["denoiser"] = rows
        result["shape"] = shape
        write_json(result, args.json)  # a failure in a later part loses none of this
        tables += [f"### Denoiser: hidden {shape['hidden']}, {shape['layers']} layers, {shape['heads']} heads, vocab "
                   f"{shape['vocab']}, batch {shape['batch']} × {shape['seq']} tokens, fp32, "
                   f"{result['threads']} thread(s)\n", markdown_table(rows, MODEL_COLUMNS), ""]
    specs = sampler_specs(sedd, mdlm, fm)
    if "toy" in args.parts:
        rows = toy_rows(specs, args.toy_vocab, args.toy_length, args.toy_samples, args.toy_steps, args.seed)
        result["toy"] = {"vocab": args.toy_vocab, "length": args.toy_length, "samples": args.toy_samples, "rows": rows}
        write_json(result, args.json)  # a failure in a later part loses none of this
        tables += [f"### Samplers on the exact-posterior toy: masked, V={args.toy_vocab}, L={args.toy_length}, "
                   f"{args.toy_samples} samples (TV noise floor {rows[0]['tv_noise_floor']:.4f})\n",
                   markdown_table(rows, TOY_COLUMNS), ""]
    if "trained" in args.parts:
        if not args.model:
            print("[skip] trained-model samplers: pass --model DIR", file=sys.stderr)
        else:
            rows = trained_rows(specs, args.model, args.ar_model, args.judge, args.samples, args.sample_length,
                                args.steps, args.sample_batch, args.seed, args.reference_recipe)
            result["trained"] = {"model": args.model, "ar_model": args.ar_model, "judge": args.judge,
                                 "samples": args.samples, "steps": args.steps, "rows": rows}
            tables += [f"### Samplers on {args.model}: {args.samples} samples, {args.steps} steps, judge "
                       f"{args.judge or 'none'}\n", markdown_table(rows, TRAINED_COLUMNS), ""]
    result["figures"] = plot(result, args.figures)
    result["seconds"] = time.perf_counter() - clock
    text = "\n".join(tables) + f"\n(total {result['seconds']:.0f} s)\n"
    write_report(text, result, args.markdown, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
