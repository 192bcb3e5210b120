"""Exponential moving average of the weights: θ̄ ← d·θ̄ + (1 − d)·θ after every optimizer step (SEDD/MDLM use d = 0.9999)."""

from __future__ import annotations

import contextlib

import torch


class EMA:
    """Shadow copies (float32) of a model's floating parameters."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach().float(), 1 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        self.shadow = {k: state[k].float().clone() for k in self.shadow}

    @contextlib.contextmanager
    def applied_to(self, model: torch.nn.Module):
        """Temporarily load the averaged weights into ``model`` (for validation and saving)."""
        backup = {name: p.detach().clone() for name, p in model.named_parameters()}
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(self.shadow[name].to(p.dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(backup[name])
