"""Text to image: prompt → encoder → guided score → a `dlm.continuous` sampler → 8-bit images.

``TextToImagePipeline.from_pretrained(DIR)`` loads a U-Net written by ``save_pretrained`` (default: the model shipped
in ``dlm/assets/fashion-t2i``) and the prompt encoder named in its config. Samplers: ``h`` (the 𝔥-interpolated
Euler–Maruyama sampler; 𝔥 = 0 PF-ODE, 𝔥 = 1 reverse SDE), ``heun`` (Karras et al.'s 2nd-order ODE sampler) and
``pc`` (predictor–corrector); an empty prompt samples unconditionally. :meth:`TextToImagePipeline.inpaint` fills in
the unmasked part of an image (:mod:`dlm.images.inpainting`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dlm.continuous.samplers import h_sample, heun_sample, pc_sample
from dlm.continuous.sde import ScoreFn, check_h
from dlm.errors import CheckpointError, ConfigError, InputError
from dlm.hf_utils import no_progress_bars
from dlm.images.guidance import conditional_score, guided_score
from dlm.images.inpainting import inpaint
from dlm.images.modeling_unet import UNetForDiffusion
from dlm.images.pixels import to_model_space, to_pixels
from dlm.images.text_encoders import load_text_encoder

DEFAULT_IMAGE_MODEL = "fashion-t2i"
SAMPLERS = {"h": 1, "heun": 2, "pc": 2}  # network calls per step (pc: one Langevin corrector step)


def default_model_dir() -> Path:
    """Where the shipped text-to-image model lives: ``dlm/assets/fashion-t2i``."""
    return Path(__file__).resolve().parent.parent / "assets" / DEFAULT_IMAGE_MODEL


def load_image_model(path: str | Path | None = None) -> UNetForDiffusion:
    """A U-Net from a ``save_pretrained`` directory (float32, eval mode); one-line CheckpointError otherwise."""
    path = Path(path) if path is not None else default_model_dir()
    hint = "train one with python -m dlm.images.train recipes/images/fashion_t2i.yaml and pass --model <output_dir>/final"
    if not (path / "config.json").is_file():
        raise CheckpointError(f"no image model at {path}", hint=hint)
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        model_type = None
    if model_type != "dlm_unet":
        raise CheckpointError(f"{path} is not a dlm image model (model_type {model_type!r})", hint=hint)
    try:
        with no_progress_bars():
            return UNetForDiffusion.from_pretrained(path, dtype=torch.float32).eval()
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot load {path}: {' '.join(str(err).split())[:200]}", hint=hint) from None


def counting(score: ScoreFn, bar: tqdm) -> ScoreFn:
    """``score`` that advances ``bar`` by one per network call."""

    def counted(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        bar.update(1)
        return score(x, t)

    return counted


def check_counts(steps: int, num_samples: int) -> None:
    """InputError unless both are at least 1."""
    if steps < 1 or num_samples < 1:
        raise InputError(f"steps and num_samples must be at least 1, got {steps} and {num_samples}")


def seeded(seed: int | None) -> torch.Generator | None:
    """A CPU generator seeded with ``seed`` (None: torch's global generator)."""
    return None if seed is None else torch.Generator().manual_seed(seed)


def run_sampler(name: str, score: ScoreFn, sde, shape: tuple[int, ...], steps: int, h: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """Samples [B, C, H, W] from one of :data:`SAMPLERS` in `dlm.continuous.samplers`."""
    if name == "h":
        return h_sample(score, sde, shape, h, steps, generator)
    if name == "heun":
        return heun_sample(score, sde, shape, steps, generator)
    return pc_sample(score, sde, shape, steps, generator)


class TextToImagePipeline:
    """A prompted U-Net and its prompt encoder; call with a prompt to get uint8 images [N, H, W]."""

    def __init__(self, model: UNetForDiffusion, encoder=None):
        self.model = model
        self.encoder = encoder or load_text_encoder(model.config.text_encoder, model.config.dataset)
        if self.encoder.dim != model.config.cond_dim:
            raise ConfigError(f"the prompt encoder gives {self.encoder.dim}-dim embeddings, the model takes "
                              f"{model.config.cond_dim}", hint=f"use the model's encoder, {model.config.text_encoder!r}")
        self.sde = model.config.build_sde()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, encoder: str | None = None) -> "TextToImagePipeline":
        """The model in ``path`` (default: the shipped one) with its own encoder, or the encoder named ``encoder``."""
        model = load_image_model(path)
        return cls(model, None if encoder is None else load_text_encoder(encoder, model.config.dataset))

    @torch.no_grad()
    def __call__(self, prompt: str, num_samples: int = 16, sampler: str = "h", h: float = 0.0, steps: int = 50,
                 guidance: float = 1.0, seed: int | None = None, size: int | None = None,
                 progress: bool = False) -> torch.Tensor:
        """``num_samples`` images for ``prompt`` ("" = unconditional) with classifier-free guidance ``guidance``."""
        config = self.model.config
        check_h(h)
        if sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {sampler!r}", hint=f"choose one of {', '.join(SAMPLERS)}")
        check_counts(steps, num_samples)
        if size is not None and size != config.image_size:
            raise InputError(f"--size {size} does not match the model's image_size {config.image_size}",
                             hint=f"this model generates {config.image_size}x{config.image_size} images")
        score = self.guided(prompt, num_samples, guidance)
        generator = seeded(seed)
        shape = (num_samples, config.in_channels, config.image_size, config.image_size)
        with tqdm(total=steps * SAMPLERS[sampler], desc="sample", unit="nfe", disable=not progress,
                  dynamic_ncols=True) as bar:
            x = run_sampler(sampler, counting(score, bar), self.sde, shape, steps, h, generator)
        return to_pixels(x)

    def guided(self, prompt: str, num_samples: int, guidance: float) -> ScoreFn:
        """The classifier-free-guided score of ``prompt`` ("" = unconditional) for a batch of ``num_samples``."""
        condition = self.encoder([prompt]).repeat_interleave(num_samples) if prompt.strip() else None
        return guided_score(conditional_score(self.model), condition, guidance)

    @torch.no_grad()
    def inpaint(self, prompt: str, image: torch.Tensor, keep: torch.Tensor, num_samples: int = 16, h: float = 0.0,
                steps: int = 50, guidance: float = 1.0, seed: int | None = None, progress: bool = False) -> torch.Tensor:
        """``num_samples`` completions of uint8 ``image`` [H, W]: pixels where ``keep`` [H, W] is true stay, the rest
        is sampled for ``prompt`` (Euler–Maruyama 𝔥-sampler with replacement)."""
        size = self.model.config.image_size
        if tuple(image.shape) != (size, size) or tuple(keep.shape) != (size, size):
            raise InputError(f"image {tuple(image.shape)} and mask {tuple(keep.shape)} must both be {size}x{size}",
                             hint="the model's image_size")
        check_counts(steps, num_samples)
        known = to_model_space(image.expand(num_samples, size, size))
        generator = seeded(seed)
        with tqdm(total=steps, desc="inpaint", unit="nfe", disable=not progress, dynamic_ncols=True) as bar:
            score = counting(self.guided(prompt, num_samples, guidance), bar)
            return to_pixels(inpaint(score, self.sde, known, keep.bool(), h, steps, generator))
