"""The MLP score/noise network for low-dimensional data: input concat(x, t), swish hidden layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    """x, t ↦ net(concat(x, t)) with `layers` hidden layers of width `hidden` and SiLU (swish) activations.

    The 2-D model of Hirono, Tanaka & Fukushima (ICML'24): 3 hidden layers of 128 units.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3):
        super().__init__()
        widths = [dim + 1] + [hidden] * layers
        blocks: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(fan_in, fan_out), nn.SiLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return self.net(torch.cat([x, t[:, None]], dim=-1))
