"""LoRA fine-tuning of dlm models through ``peft`` (Hu et al. 2021): adapters on the DDiT linear layers.

``train.lora: {r, alpha, dropout, target_modules}`` in a recipe wraps the ``model.init_from`` model in a
``peft`` LoRA model: only the adapters train. Targets are names of linear layers inside a DDiT block
(default ``attn_qkv``, ``attn_out``, ``mlp.0``, ``mlp.2``; also ``adaLN_modulation``), matched in every
block and nowhere else (``sigma_map.mlp.0`` is not ``blocks.N.mlp.0``). Checkpoints hold the adapters
(``adapter_config.json`` + ``adapter_model.safetensors``); at the end of training ``<output_dir>/adapter``
holds the final adapter and ``<output_dir>/final`` the merged, plain dlm model. ``dlm lora merge
ADAPTER_DIR OUT`` merges a saved adapter into its base model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlm.errors import CheckpointError, ConfigError

DEFAULT_TARGETS = ("attn_qkv", "attn_out", "mlp.0", "mlp.2")
PEFT_HINT = "install peft: pip install peft"


@dataclass
class LoraSettings:
    """Rank ``r``, scale ``alpha`` (the update is (alpha/r)·B·A), ``dropout`` on the adapter input, targets."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> LoraSettings:
        """Validated settings from a recipe's ``train.lora`` mapping (unknown keys are errors)."""
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ConfigError(f"train.lora must be a mapping, got {type(values).__name__}",
                              hint="e.g. train.lora: {r: 8, alpha: 16}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"unknown recipe key(s) {', '.join('train.lora.' + k for k in unknown)}",
                              hint=f"valid keys of 'train.lora': {', '.join(names)}")
        settings = cls(**values)
        if isinstance(settings.r, bool) or not isinstance(settings.r, int) or settings.r < 1:
            raise ConfigError(f"train.lora.r must be a positive integer, got {settings.r!r}")
        if not isinstance(settings.alpha, (int, float)) or settings.alpha <= 0:
            raise ConfigError(f"train.lora.alpha must be > 0, got {settings.alpha!r}")
        if not isinstance(settings.dropout, (int, float)) or not 0 <= settings.dropout < 1:
            raise ConfigError(f"train.lora.dropout must be in [0, 1), got {settings.dropout!r}")
        targets = settings.target_modules
        if isinstance(targets, str):
            targets = settings.target_modules = [targets]
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise ConfigError("train.lora.target_modules must be a non-empty list of layer names",
                              hint=f"e.g. {list(DEFAULT_TARGETS)}")
        return settings


def block_linear_names(model) -> list[str]:
    """Names of the linear layers inside one DDiT block (valid LoRA targets)."""
    return [name for name, module in model.blocks[0].named_modules() if isinstance(module, nn.Linear)]


def target_regex(targets: list[str]) -> str:
    """A ``peft`` target regex (full match) for the named layers of every DDiT block, and nothing else."""
    return r"blocks\.\d+\.(" + "|".join(re.escape(t) for t in targets) + ")"


def _peft():
    try:
        import peft
    except ImportError:
        raise ConfigError("LoRA needs the peft package, which is not installed", hint=PEFT_HINT) from None
    return peft


def apply_lora(model, settings: LoraSettings):
    """Wrap a ``DLMForDiffusion`` in a peft LoRA model; only the adapters require grad."""
    peft = _peft()
    valid = block_linear_names(model)
    bad = [t for t in settings.target_modules if t not in valid]
    if bad:
        raise ConfigError(f"train.lora.target_modules {bad} are not linear layers of a DDiT block",
                          hint=f"choose among {', '.join(valid)}")
    config = peft.LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                             target_modules=target_regex(settings.target_modules), bias="none")
    return peft.get_peft_model(model, config)


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def merged_copy(peft_model):
    """A plain ``DLMForDiffusion`` with the adapters merged into its weights (the peft model is untouched)."""
    return copy.deepcopy(peft_model).merge_and_unload()


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter directory was trained on (``base_model_name_or_path``)."""
    config = Path(adapter_dir) / "adapter_config.json"
    if not config.is_file():
        raise CheckpointError(f"{adapter_dir} has no adapter_config.json, so it is not a LoRA adapter",
                              hint="give a checkpoint or <output_dir>/adapter of a run with train.lora")
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise CheckpointError(f"{config} does not name its base model", hint="pass the base model with --base")
    return base


def load_adapter(adapter_dir: str | Path, base: str | Path | None = None):
    """The base ``DLMForDiffusion`` (a directory or hub id; default: the one the adapter names) with the adapter."""
    peft = _peft()
    from dlm.hub import resolve_model_dir
    from dlm.models import DLMForDiffusion

    base_dir = resolve_model_dir(base or adapter_base(adapter_dir))
    try:
        model = DLMForDiffusion.from_pretrained(str(base_dir), dtype=torch.float32)
        return peft.PeftModel.from_pretrained(model, str(adapter_dir))
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"cannot load adapter {adapter_dir} on {base_dir}: {' '.join(str(err).split())[:200]}",
                              hint="the adapter must come from a run whose model.init_from was this base") from None


def merge_adapter(adapter_dir: str | Path, out: str | Path, base: str | Path | None = None) -> Path:
    """Merge a saved adapter into its base model and ``save_pretrained`` the plain model (+ tokenizer) to ``out``."""
    from dlm.hub import resolve_model_dir
    from dlm.tokenization import load_tokenizer
    from dlm.training.checkpoint import save_model_dir

    adapter_dir = Path(adapter_dir)
    model = load_adapter(adapter_dir, base).merge_and_unload()
    has_tok = (adapter_dir / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(adapter_dir if has_tok else resolve_model_dir(base or adapter_base(adapter_dir)))
    out = Path(out)
    save_model_dir(out, model, tokenizer)
    return out
