"""Image training recipes: YAML with sections ``model`` (:class:`~dlm.images.UNetConfig` fields), ``data``,
``optim`` (the language side's :class:`~dlm.training.recipe.OptimSection`) and ``train``; dotted overrides as in
``dlm train``. ``cond_dim``, ``image_size`` and ``dataset`` of the model follow from the data and the encoder.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlm.continuous.losses import WEIGHTINGS
from dlm.errors import ConfigError
from dlm.images.configuration_unet import UNetConfig
from dlm.images.data import check_dataset_name
from dlm.images.text_encoders import check_encoder_name
from dlm.training.recipe import MIXED_PRECISION, OptimSection, _build, read_recipe_file

DERIVED_MODEL_KEYS = ("cond_dim", "image_size", "dataset")


@dataclass
class ImageDataSection:
    """``dataset``: ``fashion_mnist`` or ``digits`` (:func:`dlm.images.image_dataset`)."""

    dataset: str = "fashion_mnist"


@dataclass
class ImageTrainSection:
    """The loop: steps, batch, condition dropout, EMA, precision, logging and checkpoints."""

    output_dir: str = "runs/images"
    max_steps: int = 1000
    batch_size: int = 64
    seed: int = 0
    cond_drop: float = 0.1
    weighting: str = "variance"
    dequantize: bool = True
    ema: float = 0.999
    mixed_precision: str = "no"
    cpu: bool = False
    log_every: int = 50
    save_every: int = 500
    keep_last: int = 2


@dataclass
class ImageRecipe:
    model: dict[str, Any] = field(default_factory=dict)
    data: ImageDataSection = field(default_factory=ImageDataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: ImageTrainSection = field(default_factory=ImageTrainSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_model_keys(model: dict[str, Any]) -> None:
    """ConfigError for a model key that is not a UNetConfig field, or one the trainer derives itself."""
    fields = set(inspect.signature(UNetConfig.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(model) - fields)
    if unknown:
        raise ConfigError(f"unknown recipe key(s) {', '.join('model.' + k for k in unknown)}",
                          hint=f"valid keys of 'model': {', '.join(sorted(fields - set(DERIVED_MODEL_KEYS)))}")
    derived = sorted(set(model) & set(DERIVED_MODEL_KEYS))
    if derived:
        raise ConfigError(f"model.{derived[0]} is set by the trainer", hint="it follows from data.dataset and the encoder")


def validate(recipe: ImageRecipe) -> None:
    """Names and ranges that need no data."""
    check_model_keys(recipe.model)
    check_encoder_name(recipe.model.get("text_encoder", "minilm"))
    check_dataset_name(recipe.data.dataset)
    t = recipe.train
    for name in ("max_steps", "batch_size", "log_every", "save_every", "keep_last"):
        value = getattr(t, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
    if not 0.0 <= t.cond_drop < 1.0:
        raise ConfigError(f"train.cond_drop must be in [0, 1), got {t.cond_drop}")
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"train.ema must be in [0, 1), got {t.ema}")
    if t.weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown train.weighting {t.weighting!r}", hint=f"choose one of {', '.join(WEIGHTINGS)}")
    if t.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"unknown mixed_precision {t.mixed_precision!r}",
                          hint=f"choose one of {', '.join(MIXED_PRECISION)}")


def image_recipe_from_dict(raw: dict) -> ImageRecipe:
    """Build and validate an :class:`ImageRecipe` from a nested mapping."""
    sections = {"data": ImageDataSection, "optim": OptimSection, "train": ImageTrainSection}
    unknown = sorted(set(raw) - set(sections) - {"model"})
    if unknown:
        raise ConfigError(f"unknown recipe section(s) {', '.join(unknown)}", hint="sections: model, data, optim, train")
    model = raw.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError("recipe section 'model' must be a mapping of UNetConfig fields")
    recipe = ImageRecipe(model=dict(model), **{name: _build(cls, raw.get(name), name) for name, cls in sections.items()})
    validate(recipe)
    return recipe


def load_image_recipe(path: str | Path, overrides: list[str] | None = None) -> ImageRecipe:
    """Read a YAML image recipe, apply dotted overrides, validate."""
    return image_recipe_from_dict(read_recipe_file(path, overrides, examples="recipes/images/"))
