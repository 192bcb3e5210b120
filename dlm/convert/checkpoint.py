"""Reading upstream checkpoint directories (``config.json`` + weights) into a :class:`DLMForDiffusion`.

Weights come from ``model.safetensors``, ``weights.safetensors`` or a weights-only torch checkpoint
(``checkpoint.pth``, or a single ``*.pth``/``*.pt``/``*.ckpt``/``*.bin`` file) read with
``torch.load(weights_only=True)``, whose state dict is the file itself or sits under ``model`` (SEDD) or
``state_dict`` (Lightning, MDLM). Nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from dlm.errors import CheckpointError
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.models.layers import rotary_inv_freq

SAFETENSORS_FILES = ("model.safetensors", "weights.safetensors")
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
INV_FREQ = "rotary_emb.inv_freq"


def list_names(names: list[str], limit: int = 3) -> str:
    """'a, b, c and 4 more' for error messages."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def checked_dir(src: str | Path) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise CheckpointError(f"{src} is not a directory", hint="pass the folder holding config.json and the weights")
    return src


def read_config(src: Path) -> dict[str, Any]:
    """The upstream config.json as a dict."""
    path = src / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no config.json in {src}", hint="upstream checkpoints ship their config as config.json")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return config


def config_value(config: dict[str, Any], dotted: str, default: Any = ...) -> Any:
    """config['a']['b'] for 'a.b'; a CheckpointError naming the key when it is missing and has no default."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is not ...:
                return default
            raise CheckpointError(f"config.json lacks {dotted!r}", hint="is this checkpoint from the right upstream?")
        value = value[part]
    return value


def find_weights(src: Path) -> Path:
    """The weights file of a checkpoint directory, safetensors first."""
    for name in (*SAFETENSORS_FILES, "checkpoint.pth"):
        if (src / name).is_file():
            return src / name
    candidates = sorted(p for p in src.iterdir() if p.suffix in TORCH_SUFFIXES and p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise CheckpointError(f"several checkpoints in {src}: {list_names([p.name for p in candidates])}",
                              hint="keep one weights file in the directory")
    raise CheckpointError(f"no weights in {src}", hint=f"expected {', '.join(SAFETENSORS_FILES)}, checkpoint.pth "
                                                        "or one *.pth/*.pt/*.ckpt/*.bin file")


def _torch_state(path: Path, use_ema: bool) -> dict[str, torch.Tensor]:
    """State dict of a weights-only torch checkpoint; with ``use_ema`` the EMA ``shadow_params`` (a list in
    ``parameters()`` order, i.e. the state dict's order without buffers) replace the parameters."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(f"cannot read {path.name} as a weights-only torch checkpoint: {str(exc).splitlines()[0]}",
                              hint="convert it to safetensors, or check that the file is complete") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path.name} does not hold a dict")
    state = next((payload[k] for k in ("model", "state_dict") if isinstance(payload.get(k), dict)), payload)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name} holds no state dict under 'model' or 'state_dict'")
    state = dict(state)
    if use_ema:
        shadow = payload.get("ema", {}).get("shadow_params") if isinstance(payload.get("ema"), dict) else None
        if shadow is None:
            raise CheckpointError(f"{path.name} has no EMA weights (ema.shadow_params)", hint="drop use_ema")
        names = [k for k in state if not k.endswith(INV_FREQ)]
        if len(shadow) != len(names):
            raise CheckpointError(f"{path.name}: {len(shadow)} EMA tensors for {len(names)} parameters")
        state.update(zip(names, shadow))
    return state


def load_weights(path: Path, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Name → tensor from a safetensors file or a weights-only torch checkpoint."""
    if path.suffix != ".safetensors":
        return _torch_state(path, use_ema)
    if use_ema:
        raise CheckpointError(f"{path.name} holds no separate EMA weights",
                              hint="use_ema needs a training checkpoint (checkpoint.pth)")
    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises SafetensorError / OSError on truncated or foreign files
        raise CheckpointError(f"cannot read {path.name}: {exc}", hint="the file may be truncated") from None


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key when all keys carry it (``backbone.`` of MDLM, ``module.`` of DDP)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def check_inv_freq(inv_freq: torch.Tensor, config: DLMConfig) -> None:
    """The upstream buffer must equal 1/θ^(2j/D) for this head_dim; it is recomputed, not loaded."""
    expected = rotary_inv_freq(config.head_dim, config.rope_theta)
    if inv_freq.shape != expected.shape or not torch.allclose(inv_freq.float(), expected, rtol=1e-5):
        raise CheckpointError(
            f"{INV_FREQ} does not match head_dim={config.head_dim}, rope_theta={config.rope_theta}",
            hint="the config's hidden size or number of heads disagrees with the weights",
        )


def build_model(config: DLMConfig, state: dict[str, torch.Tensor]) -> DLMForDiffusion:
    """A model from ``config`` with exactly the tensors of ``state``; CheckpointError on missing, unexpected or
    mis-shaped keys (first few named, with the count)."""
    state = dict(state)
    inv_freq = state.pop(INV_FREQ, None)
    if inv_freq is not None:
        check_inv_freq(inv_freq, config)
    model = DLMForDiffusion(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [f"{len(keys)} {what}: {list_names(keys)}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("mis-shaped tensors", mis_shaped)) if keys]
    if problems:
        raise CheckpointError("checkpoint does not fit the config: " + "; ".join(problems),
                              hint="is the file complete and from the matching upstream model?")
    model.load_state_dict(state)
    return model.eval()


def hydra_backbone_fields(config: dict) -> dict:
    """DLMConfig fields of the DiT backbone shared by SEDD's and MDLM's hydra configs (``model.*`` keys)."""
    return dict(hidden_size=int(config_value(config, "model.hidden_size")),
                cond_dim=int(config_value(config, "model.cond_dim")),
                num_hidden_layers=int(config_value(config, "model.n_blocks")),
                num_attention_heads=int(config_value(config, "model.n_heads")),
                max_seq_len=int(config_value(config, "model.length")),
                dropout=float(config_value(config, "model.dropout")))
