"""Configuration of the DDiT denoiser shared by SEDD (Lou et al. 2024) and MDLM (Sahoo et al. 2024)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from dlm.errors import ConfigError
from dlm.schedules import get_schedule

HEADS = ("x0", "score")
PROCESSES = ("masked", "uniform")


class DLMConfig(PretrainedConfig):
    """Hyper-parameters of :class:`~dlm.models.DLMForDiffusion`.

    Args:
        vocab_size: embedding rows and output columns: real tokens + 1 for masked models (the mask is
            the last row, ``mask_id = vocab_size - 1``), real tokens for uniform models.
        hidden_size: width of the residual stream.
        cond_dim: width of the σ̄ conditioning vector fed to every adaLN.
        num_hidden_layers: number of DDiT blocks.
        num_attention_heads: attention heads; ``hidden_size / num_attention_heads`` must be even (rotary).
        mlp_ratio: MLP width as a multiple of ``hidden_size``.
        max_seq_len: training/sampling length; no weight depends on it (rotary positions only).
        dropout: dropout on each residual branch (training only).
        layer_norm_eps: epsilon of the bias-free float32 LayerNorms.
        rope_theta: rotary base.
        time_conditioning: condition on σ̄(t); if false the conditioning input is 0 (MDLM's default).
        head: ``"x0"`` (clean-token logits, MDLM SUBS) or ``"score"`` (SEDD log concrete score).
        scale_by_sigma: SEDD's shift of the score by −log(e^σ̄ − 1) − log(vocab_size − 1); score head on
            the masked process only.
        process: ``"masked"`` (absorbing) or ``"uniform"``.
        mask_id: the mask token (``vocab_size - 1``) for masked models, ``None`` for uniform ones.
        noise_schedule: name for :func:`dlm.schedules.get_schedule`, used to turn ``t`` into σ̄(t).
        schedule_kwargs: parameters of that schedule, e.g. ``{"eps": 1e-3}``.
    """

    model_type = "dlm"

    def __init__(
        self,
        vocab_size: int = 50258,
        hidden_size: int = 768,
        cond_dim: int = 128,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        mlp_ratio: int = 4,
        max_seq_len: int = 1024,
        dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        time_conditioning: bool = False,
        head: str = "x0",
        scale_by_sigma: bool = False,
        process: str = "masked",
        mask_id: int | None = None,
        noise_schedule: str = "loglinear",
        schedule_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.cond_dim = cond_dim
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.mlp_ratio = mlp_ratio
        self.max_seq_len = max_seq_len
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.rope_theta = rope_theta
        self.time_conditioning = time_conditioning
        self.head = head
        self.scale_by_sigma = scale_by_sigma
        self.process = process
        self.mask_id = vocab_size - 1 if mask_id is None and process == "masked" else mask_id
        self.noise_schedule = noise_schedule
        self.schedule_kwargs = dict(schedule_kwargs or {})
        self._validate()
        super().__init__(**kwargs)

    @property
    def num_real_tokens(self) -> int:
        """V, the clean-token outcomes: ``vocab_size - 1`` for masked models, ``vocab_size`` for uniform ones."""
        return self.vocab_size - 1 if self.process == "masked" else self.vocab_size

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def _validate(self) -> None:
        for name in ("vocab_size", "hidden_size", "cond_dim", "num_hidden_layers", "num_attention_heads",
                     "mlp_ratio", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}"
            )
        if self.head_dim % 2:
            raise ConfigError(f"head_dim = hidden_size / num_attention_heads = {self.head_dim} must be even (rotary)")
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}", hint=f"choose one of {', '.join(HEADS)}")
        if self.process not in PROCESSES:
            raise ConfigError(f"unknown process {self.process!r}", hint=f"choose one of {', '.join(PROCESSES)}")
        if self.scale_by_sigma and (self.head != "score" or self.process != "masked"):
            raise ConfigError(
                "scale_by_sigma needs head='score' and process='masked'",
                hint="SEDD only defines the σ̄ shift of the score for the absorbing graph",
            )
        if self.process == "masked" and self.vocab_size < 2:
            raise ConfigError("a masked model needs vocab_size >= 2 (real tokens + the mask)")
        if self.process == "masked" and self.mask_id != self.vocab_size - 1:
            raise ConfigError(
                f"mask_id must be vocab_size - 1 = {self.vocab_size - 1} for a masked model, got {self.mask_id}",
                hint="the mask is the last embedding row",
            )
        if self.process == "uniform" and self.mask_id is not None:
            raise ConfigError(f"a uniform model has no mask token, got mask_id={self.mask_id}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.layer_norm_eps <= 0 or self.rope_theta <= 0:
            raise ConfigError("layer_norm_eps and rope_theta must be positive")
        get_schedule(self.noise_schedule, **self.schedule_kwargs)
