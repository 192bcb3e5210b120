"""The end of every training step, shared by the language and image trainers."""

from __future__ import annotations


def apply_gradients(accelerator, model, optimizer, scheduler, ema=None, grad_clip: float = 0.0) -> None:
    """Clip the global gradient norm (when ``grad_clip`` > 0), step the optimizer and the LR schedule, clear the
    gradients, and update the EMA of the unwrapped model."""
    if grad_clip > 0:
        accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update(accelerator.unwrap_model(model))
