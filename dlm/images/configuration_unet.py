"""Configuration of the text-conditional image U-Net (:class:`~dlm.images.modeling_unet.UNetForDiffusion`)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from dlm.continuous.sde import SDE, get_sde
from dlm.errors import ConfigError
from dlm.images.data import check_dataset_name
from dlm.images.text_encoders import check_encoder_name

PREDICTIONS = ("eps", "score")


class UNetConfig(PretrainedConfig):
    """Hyper-parameters of the U-Net, its SDE and the prompt encoder it was trained with.

    Args:
        image_size: height = width of the images (28 for Fashion-MNIST, 8 for digits).
        in_channels: image channels (1: grey).
        base_channels: channels of the first level; level i has ``base_channels · channel_mult[i]``.
        channel_mult: one multiplier per resolution level; each level but the last halves the resolution.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_levels: levels with a self- plus cross-attention block after each residual block (the middle
            block always has one); default: the lowest resolution only.
        num_heads: attention heads (must divide every level's channels).
        groups: GroupNorm groups (must divide every level's channels).
        dropout: dropout inside the residual blocks.
        cond_dim: width D of the prompt encoder's tokens and pooled vector.
        text_encoder: name of the prompt encoder (:func:`dlm.images.text_encoders.load_text_encoder`).
        dataset: the image data set it was trained on (its class names and captions).
        prediction: the network output, ``"eps"`` (noise, score = −ε/σ(t)) or ``"score"``.
        sde: name of the forward SDE (:func:`dlm.continuous.get_sde`), ``sde_kwargs`` its parameters.
    """

    model_type = "dlm_unet"

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mult: tuple[int, ...] | list[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: tuple[int, ...] | list[int] | None = None,
        num_heads: int = 4,
        groups: int = 8,
        dropout: float = 0.0,
        cond_dim: int = 384,
        text_encoder: str = "minilm",
        dataset: str = "fashion_mnist",
        prediction: str = "eps",
        sde: str = "vp",
        sde_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ):
        self.image_size = image_size
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.channel_mult = list(channel_mult)
        self.num_res_blocks = num_res_blocks
        self.attention_levels = list(attention_levels) if attention_levels is not None else [len(self.channel_mult) - 1]
        self.num_heads = num_heads
        self.groups = groups
        self.dropout = dropout
        self.cond_dim = cond_dim
        self.text_encoder = text_encoder
        self.dataset = dataset
        self.prediction = prediction
        self.sde = sde
        self.sde_kwargs = dict(sde_kwargs or {})
        self._validate()
        super().__init__(**kwargs)

    def build_sde(self) -> SDE:
        """The forward SDE the model was trained for."""
        return get_sde(self.sde, **self.sde_kwargs)

    def _validate(self) -> None:
        for name in ("image_size", "in_channels", "base_channels", "num_res_blocks", "num_heads", "groups", "cond_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not self.channel_mult or any(not isinstance(m, int) or m < 1 for m in self.channel_mult):
            raise ConfigError(f"channel_mult must be positive integers, got {self.channel_mult}")
        for mult in self.channel_mult:
            channels = self.base_channels * mult
            if channels % self.groups or channels % self.num_heads:
                raise ConfigError(f"level width {channels} is not divisible by groups={self.groups} and "
                                  f"num_heads={self.num_heads}")
        if any(level not in range(len(self.channel_mult)) for level in self.attention_levels):
            raise ConfigError(f"attention_levels {self.attention_levels} must index channel_mult "
                              f"(0..{len(self.channel_mult) - 1})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f"unknown prediction {self.prediction!r}", hint=f"choose one of {', '.join(PREDICTIONS)}")
        check_encoder_name(self.text_encoder)
        check_dataset_name(self.dataset)
        self.build_sde()
