"""Convert a SEDD checkpoint (Lou et al. 2024, louaaron/Score-Entropy-Discrete-Diffusion) to a DLM model.

SEDD keys are the bare module names of our model (``vocab_embed.embedding``, ``blocks.0.attn_qkv.weight``...),
so the conversion maps the config and checks every tensor; the head is the log concrete score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlm.convert.checkpoint import (build_model, checked_dir, config_value, find_weights, hydra_backbone_fields, load_weights,
                                    read_config, strip_prefix)
from dlm.errors import CheckpointError
from dlm.models import DLMConfig, DLMForDiffusion

GRAPHS = {"absorb": "masked", "uniform": "uniform"}
LOGLINEAR_EPS = 1e-3  # SEDD's LogLinearNoise default


def sedd_schedule(config: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """SEDD ``noise`` → (schedule name, kwargs): loglinear σ̄ = −log(1 − (1−ε)t), geometric σ̄ = σ_min^{1−t}σ_max^t."""
    noise = config_value(config, "noise.type")
    if noise == "loglinear":
        return "loglinear", {"eps": LOGLINEAR_EPS}
    if noise == "geometric":
        return "geometric", {"sigma_min": float(config_value(config, "noise.sigma_min")),
                             "sigma_max": float(config_value(config, "noise.sigma_max"))}
    raise CheckpointError(f"unsupported SEDD noise type {noise!r}", hint="SEDD defines loglinear and geometric")


def sedd_config(config: dict[str, Any]) -> DLMConfig:
    """DLMConfig of a SEDD hydra config (``tokens``, ``graph.type``, ``noise.*``, ``model.*``)."""
    graph = config_value(config, "graph.type")
    if graph not in GRAPHS:
        raise CheckpointError(f"unsupported SEDD graph {graph!r}", hint="SEDD defines absorb and uniform")
    model_type = config_value(config, "model.type", "ddit")
    if model_type != "ddit":
        raise CheckpointError(f"unsupported SEDD model type {model_type!r}", hint="only the DDiT backbone exists")
    schedule, schedule_kwargs = sedd_schedule(config)
    tokens = int(config_value(config, "tokens"))
    return DLMConfig(
        vocab_size=tokens + (graph == "absorb"),
        **hydra_backbone_fields(config),
        time_conditioning=True,
        head="score",
        scale_by_sigma=bool(config_value(config, "model.scale_by_sigma")),
        process=GRAPHS[graph],
        noise_schedule=schedule,
        schedule_kwargs=schedule_kwargs,
    )


def from_sedd(src: str | Path, use_ema: bool = False) -> DLMForDiffusion:
    """A SEDD checkpoint directory (config.json + model.safetensors / weights.safetensors / checkpoint.pth) as a
    DLMForDiffusion in eval mode; ``use_ema`` takes the EMA weights of a training checkpoint."""
    src = checked_dir(src)
    config = sedd_config(read_config(src))
    state = strip_prefix(load_weights(find_weights(src), use_ema), "module.")
    return build_model(config, state)
