"""Training recipes: YAML files mapped onto dataclasses, with dotted ``key=value`` overrides.

A recipe has five sections, each a dataclass below (unknown keys are errors, listed with the valid ones):
``model`` (the :class:`~dlm.models.DLMConfig` fields, or ``init_from`` a dlm checkpoint), ``tokenizer``,
``data`` (:class:`~dlm.training.data.DataConfig`), ``optim`` and ``train``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlm.errors import ConfigError
from dlm.training.data import DataConfig

OBJECTIVES = ("nelbo", "score_entropy", "ar")
TIME_SAMPLINGS = ("uniform", "count")
ARCHS = ("dlm", "ar")
LR_SCHEDULES = ("constant", "cosine")
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class ModelSection:
    """Either ``init_from`` (a ``save_pretrained`` dlm directory: continued pretraining, fine-tuning) or
    ``config``: :class:`~dlm.models.DLMConfig` fields; ``vocab_size``/``mask_id`` come from the tokenizer.
    ``arch: ar`` builds the autoregressive baseline instead (:mod:`dlm.training.ar`, with ``train.objective: ar``)."""

    arch: str = "dlm"
    init_from: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class TokenizerSection:
    """``name``: a tokenizer directory, ``"gpt2"``, or ``"train"`` to train a byte-level BPE of
    ``vocab_size`` on the training documents (saved to ``<output_dir>/tokenizer``)."""

    name: str = "gpt2"
    vocab_size: int = 8192


@dataclass
class OptimSection:
    """AdamW with linear warmup and a constant or cosine learning rate; global-norm gradient clipping."""

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 100
    lr_schedule: str = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class TrainSection:
    """The loop: objective, batch geometry, precision, logging, validation and checkpoints."""

    output_dir: str = "runs/dlm"
    objective: str = "nelbo"
    max_steps: int = 1000
    batch_size: int = 32
    micro_batch_size: int | None = None  # per process and forward; default batch_size / processes
    seed: int = 0
    antithetic: bool = True
    t_min: float = 1e-3
    time_sampling: str = "uniform"  # "count": the count-weighted masked NELBO (dlm.losses.masked_count_nelbo_terms)
    ema: float = 0.0
    mixed_precision: str = "no"
    compile: bool = False
    cpu: bool = False
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int = 8
    eval_num_t: int = 4
    save_every: int = 500
    keep_last: int = 2
    trackers: list[str] = field(default_factory=list)
    lora: dict[str, Any] | None = None  # {r, alpha, dropout, target_modules}: see dlm.training.lora


@dataclass
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    data: DataConfig = field(default_factory=lambda: DataConfig(source=""))
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: Any, where: str):
    """Instantiate dataclass ``cls`` from a mapping, rejecting unknown keys with the list of valid ones."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"recipe section '{where}' must be a mapping, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown recipe key(s) {', '.join(where + '.' + k for k in unknown)}",
                          hint=f"valid keys of '{where}': {', '.join(names)}")
    kwargs = {}
    for key, value in values.items():
        sub = names[key].type
        if dataclasses.is_dataclass(sub if isinstance(sub, type) else None):
            value = _build(sub, value, f"{where}.{key}")
        kwargs[key] = tuple(value) if key == "betas" else value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad recipe section '{where}': {err}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.max_steps=10"`` → (["train", "max_steps"], 10); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value", hint="e.g. train.max_steps=100")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set each dotted ``key=value`` in the nested mapping ``raw`` (creating sub-mappings as needed)."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: '{part}' is not a section")
        node[path[-1]] = value
    return raw


def recipe_from_dict(raw: dict) -> Recipe:
    """Build and validate a :class:`Recipe` from a nested mapping."""
    sections = {"model": ModelSection, "tokenizer": TokenizerSection, "data": DataConfig,
                "optim": OptimSection, "train": TrainSection}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown recipe section(s) {', '.join(unknown)}", hint=f"sections: {', '.join(sections)}")
    if not isinstance(raw.get("data"), dict) or "source" not in raw["data"]:
        raise ConfigError("the recipe has no data.source", hint="set data.source to a file, directory or corpus name")
    recipe = Recipe(**{name: _build(cls, raw.get(name), name) for name, cls in sections.items()})
    validate(recipe)
    return recipe


def read_recipe_file(path: str | Path, overrides: list[str] | None = None, examples: str = "recipes/") -> dict:
    """The mapping of a YAML recipe file with dotted ``key=value`` overrides applied (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} not found", hint=f"see {examples} for examples")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {' '.join(str(err).split())}") from None
    return apply_overrides(raw, overrides or [])


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe, apply dotted overrides, validate."""
    return recipe_from_dict(read_recipe_file(path, overrides))


def _check(condition: bool, message: str, hint: str | None = None) -> None:
    if not condition:
        raise ConfigError(message, hint=hint)


def validate(recipe: Recipe) -> None:
    """Value checks that need no data or model: names, ranges, batch geometry."""
    t, o = recipe.train, recipe.optim
    _check(t.objective in OBJECTIVES, f"unknown objective {t.objective!r}", f"choose one of {', '.join(OBJECTIVES)}")
    _check(t.time_sampling in TIME_SAMPLINGS, f"unknown train.time_sampling {t.time_sampling!r}",
           f"choose one of {', '.join(TIME_SAMPLINGS)}")
    _check(recipe.model.arch in ARCHS, f"unknown model.arch {recipe.model.arch!r}", f"choose one of {', '.join(ARCHS)}")
    _check((recipe.model.arch == "ar") == (t.objective == "ar"), "model.arch: ar and train.objective: ar go together",
           "the AR baseline trains on next-token cross entropy, diffusion models on nelbo or score_entropy")
    _check(recipe.model.arch != "ar" or (recipe.model.init_from is None and t.lora is None
                                         and recipe.data.format == "text"),
           "the AR baseline trains from scratch on text blocks", "drop model.init_from, train.lora and data.format: sft")
    _check(o.lr_schedule in LR_SCHEDULES, f"unknown lr_schedule {o.lr_schedule!r}", f"choose one of {', '.join(LR_SCHEDULES)}")
    _check(t.mixed_precision in MIXED_PRECISION, f"unknown mixed_precision {t.mixed_precision!r}",
           f"choose one of {', '.join(MIXED_PRECISION)}")
    for name in ("max_steps", "batch_size", "log_every", "eval_every", "eval_batches", "eval_num_t", "save_every", "keep_last"):
        value = getattr(t, name)
        _check(isinstance(value, int) and value >= 1, f"train.{name} must be a positive integer, got {value!r}")
    micro = t.micro_batch_size or t.batch_size
    _check(isinstance(micro, int) and micro >= 1, f"train.micro_batch_size must be a positive integer, got {micro!r}")
    _check(t.batch_size % micro == 0, f"train.batch_size={t.batch_size} is not a multiple of micro_batch_size={micro}",
           "the global batch is split into equal micro-batches over processes and accumulation steps")
    _check(0.0 <= t.ema < 1.0, f"train.ema must be in [0, 1), got {t.ema}")
    _check(0.0 <= t.t_min < 1.0, f"train.t_min must be in [0, 1), got {t.t_min}")
    _check(o.lr > 0 and o.warmup_steps >= 0 and o.grad_clip >= 0, "optim.lr must be > 0, warmup_steps and grad_clip >= 0")
    _check(recipe.model.init_from is None or not recipe.model.config,
           "give either model.init_from or model.config, not both", "init_from keeps the checkpoint's architecture")
    if t.lora is not None:
        from dlm.training.lora import LoraSettings

        LoraSettings.from_dict(t.lora)
        _check(recipe.model.init_from is not None, "train.lora fine-tunes a pretrained model, but model.init_from is not set",
               "set model.init_from to a dlm model directory")
