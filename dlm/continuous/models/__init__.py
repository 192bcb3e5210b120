"""Networks for the continuous side: the 2-D MLP (the image U-Net lives elsewhere)."""

from dlm.continuous.models.mlp import MLP

__all__ = ["MLP"]
