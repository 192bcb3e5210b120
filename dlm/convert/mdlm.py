"""Convert an MDLM checkpoint (Sahoo et al. 2024, kuleshov-group/mdlm) to a DLM model.

Two config layouts: the Hub's ``MDLMConfig`` (``vocab_size``, ``hidden_dim``, ``n_blocks``...) and the GitHub
hydra config (``model.hidden_size``, ``model.length``...; the vocabulary then comes from the embedding's shape).
Weights sit under ``backbone.``; the head is SUBS over raw logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dlm.convert.checkpoint import (build_model, checked_dir, config_value, find_weights, hydra_backbone_fields, load_weights,
                                    read_config, strip_prefix)
from dlm.errors import CheckpointError
from dlm.models import DLMConfig, DLMForDiffusion

LOGLINEAR_EPS = 1e-3  # MDLM's LogLinearNoise default
EMBEDDING = "vocab_embed.embedding"
HYDRA_REQUIREMENTS = {"backbone": "dit", "parameterization": "subs", "diffusion": "absorbing_state",
                      "noise.type": "loglinear"}


def _hydra_fields(config: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """DLMConfig fields of the GitHub hydra layout; rejects settings other than DiT + SUBS + loglinear."""
    for key, required in HYDRA_REQUIREMENTS.items():
        value = config_value(config, key, required)
        if value != required:
            raise CheckpointError(f"unsupported MDLM setting {key}={value!r}", hint=f"only {key}={required!r} converts")
    return dict(vocab_size=vocab_size,
                **hydra_backbone_fields(config),
                time_conditioning=bool(config_value(config, "time_conditioning")))


def _hub_fields(config: dict[str, Any]) -> dict[str, Any]:
    """DLMConfig fields of the Hub ``MDLMConfig`` layout."""
    return dict(vocab_size=int(config_value(config, "vocab_size")),
                hidden_size=int(config_value(config, "hidden_dim")),
                cond_dim=int(config_value(config, "cond_dim")),
                num_hidden_layers=int(config_value(config, "n_blocks")),
                num_attention_heads=int(config_value(config, "n_heads")),
                max_seq_len=int(config_value(config, "model_length")),
                dropout=float(config_value(config, "dropout")),
                time_conditioning=bool(config_value(config, "time_conditioning")))


def mdlm_config(config: dict[str, Any], state: dict[str, torch.Tensor],
                time_conditioning: bool | None = None) -> DLMConfig:
    """DLMConfig of an MDLM config (either layout); the mask is the last of ``vocab_size`` rows."""
    if isinstance(config.get("model"), dict):
        if EMBEDDING not in state:
            raise CheckpointError(f"checkpoint lacks {EMBEDDING}", hint="the vocabulary size is read from it")
        fields = _hydra_fields(config, state[EMBEDDING].shape[0])
    else:
        fields = _hub_fields(config)
    if time_conditioning is not None:
        fields["time_conditioning"] = time_conditioning
    return DLMConfig(**fields, head="x0", process="masked", noise_schedule="loglinear",
                     schedule_kwargs={"eps": LOGLINEAR_EPS})


def from_mdlm(src: str | Path, time_conditioning: bool | None = None, use_ema: bool = False) -> DLMForDiffusion:
    """An MDLM checkpoint directory (config.json + model.safetensors / weights.safetensors / *.ckpt) as a
    DLMForDiffusion in eval mode; ``time_conditioning`` overrides the config's setting."""
    src = checked_dir(src)
    config = read_config(src)
    state = strip_prefix(load_weights(find_weights(src), use_ema), "backbone.")
    return build_model(mdlm_config(config, state, time_conditioning), state)
