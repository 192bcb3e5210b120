"""Loading a model to evaluate (a dlm diffusion model or the AR baseline) and drawing text samples from it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dlm.errors import CheckpointError, InputError


@dataclass
class SampleSet:
    """Samples as token ids [N, length] and texts, with their cost: seconds per sample and network evaluations
    per sample (one per step for the diffusion samplers, fewer with the ancestral cache; one per token for AR)."""

    tokens: torch.LongTensor
    texts: list[str]
    seconds_per_sample: float
    nfe_per_sample: float


def model_kind(path: str | Path) -> str:
    """"dlm" or "ar" from a model directory's config.json."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{path} has no config.json, so it is not a saved model",
                              hint="give a directory written by dlm train (its final/ or a checkpoint-N/)")
    try:
        data = json.loads(config.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{config} is not valid JSON") from None
    if data.get("model_type") == "dlm":
        return "dlm"
    if data.get("dlm_baseline") == "ar":
        return "ar"
    raise CheckpointError(f"{path} holds a {data.get('model_type')!r} model, neither a dlm model nor a dlm AR baseline",
                          hint="judge other causal LMs with --judge, convert SEDD/MDLM checkpoints with dlm convert")


def load_for_eval(name_or_path: str | Path | None = None, device: str = "cpu"):
    """(model in eval mode, tokenizer, kind) of a dlm model directory (None: the shipped model) or an AR baseline."""
    from dlm.pipeline import DiffusionLMPipeline, shipped_model_dir

    path = Path(name_or_path) if name_or_path is not None else shipped_model_dir()
    if not path.is_dir():
        if name_or_path is None:
            raise CheckpointError(f"the shipped model is missing from {path}", hint="pass --model DIR")
        from dlm.hub import resolve_model_dir

        path = resolve_model_dir(str(name_or_path))
    kind = model_kind(path)
    if kind == "dlm":
        pipe = DiffusionLMPipeline.from_pretrained(path, device=device)
        return pipe.model, pipe.tokenizer, kind
    from transformers import GPT2LMHeadModel

    from dlm.hf_utils import no_progress_bars
    from dlm.tokenization import load_tokenizer

    try:
        with no_progress_bars():
            model = GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load AR baseline {path}: {' '.join(str(err).split())[:200]}") from None
    return model.to(device).eval(), load_tokenizer(path), kind


def draw_samples(model, tokenizer, num_samples: int, length: int, steps: int = 128, sampler: str = "ancestral",
                 seed: int = 0, batch_size: int = 16, **options) -> SampleSet:
    """``num_samples`` unconditional samples of ``length`` tokens, in batches; texts decoded without specials."""
    from dlm.training.ar import ar_sample, is_ar_model

    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise InputError(f"num_samples must be a positive integer, got {num_samples!r}")
    rows, nfe, seconds = [], 0.0, 0.0
    device = next(model.parameters()).device
    for k, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        generator = torch.Generator(device).manual_seed(seed + k)
        clock = time.perf_counter()
        if is_ar_model(model):
            tokens = ar_sample(model, n, length, generator, options.get("temperature", 1.0))
            nfe += length * n
        else:
            from dlm.processes import process_from_config
            from dlm.samplers import sample_with_info

            out = sample_with_info(model, process_from_config(model.config), n, length, steps, sampler, generator,
                                   **options)
            tokens = out.tokens
            nfe += out.nfe_per_sample * n
        seconds += time.perf_counter() - clock
        rows.append(tokens.cpu())
    tokens = torch.cat(rows)
    texts = [tokenizer.decode(row.tolist(), skip_special_tokens=True) for row in tokens]
    return SampleSet(tokens, texts, seconds / num_samples, nfe / num_samples)
