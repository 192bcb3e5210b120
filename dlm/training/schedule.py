"""Learning-rate schedule: linear warmup, then constant or cosine decay to ``min_lr_ratio``·lr."""

from __future__ import annotations

import math


def lr_lambda(optim, max_steps: int):
    """LambdaLR factor f(step): step/warmup during warmup, then 1 (constant) or
    r + (1−r)·(1 + cos(π·progress))/2 (cosine), progress from 0 at the end of warmup to 1 at max_steps."""

    def factor(step: int) -> float:
        if optim.warmup_steps and step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        if optim.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - optim.warmup_steps) / max(1, max_steps - optim.warmup_steps))
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
