"""Writing images: one PNG per sample and a padded grid of them (nearest-neighbour upscaled to be visible)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dlm.errors import InputError


def image_grid(images: torch.Tensor, ncol: int | None = None, padding: int = 2, scale: int = 1) -> np.ndarray:
    """uint8 [N, H, W] → one uint8 [rows·(sH+p)+p, ncol·(sW+p)+p] array, tiles row-major on a white background."""
    count, height, width = images.shape
    ncol = ncol or math.ceil(math.sqrt(count))
    nrow = math.ceil(count / ncol)
    tiles = images.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2).numpy()
    th, tw = height * scale, width * scale
    grid = np.full((nrow * (th + padding) + padding, ncol * (tw + padding) + padding), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncol)
        top, left = padding + r * (th + padding), padding + c * (tw + padding)
        grid[top:top + th, left:left + tw] = tile
    return grid


def save_png(array: np.ndarray, path: Path) -> None:
    """A grey-scale PNG, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="L").save(path)


def save_samples(images: torch.Tensor, out: str | Path, ncol: int | None = None) -> list[Path]:
    """Write the grid to ``out`` (a .png) and each image to ``<stem>-<i>.png`` beside it; returns all paths."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file, got {out}")
    scale = max(1, 64 // images.shape[-1])
    save_png(image_grid(images, ncol, scale=scale), out)
    paths = [out]
    for i, image in enumerate(images):
        path = out.with_name(f"{out.stem}-{i:03d}.png")
        save_png(image.numpy(), path)
        paths.append(path)
    return paths
