"""The image trainer: denoising score matching of a prompted U-Net with condition dropout, EMA and checkpoints.

Step s draws its global batch from a seeded per-epoch permutation, one caption template per image, the
condition-dropout mask (rate ``train.cond_drop``: those rows see the null prompt) and the dequantization noise, all
from (seed, s); each process takes its slice. The loss is :func:`dlm.continuous.dsm_loss` with the ε
parameterisation (variance weighting: ½‖ε̂ − ε‖², DDPM's simple loss) for the model's SDE, reported per pixel.
Checkpoints, EMA and the learning-rate schedule are the language trainer's (:mod:`dlm.training.checkpoint`,
:mod:`dlm.training.ema`, :mod:`dlm.training.schedule`); ``<output_dir>/final`` holds the EMA weights.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file
from tqdm.auto import tqdm

from dlm.continuous.losses import dsm_loss
from dlm.errors import DataError
from dlm.images.captions import caption_set
from dlm.images.conditioning import CaptionBank, TextCondition
from dlm.images.configuration_unet import UNetConfig
from dlm.images.data import image_dataset, image_tensor
from dlm.images.modeling_unet import UNetForDiffusion
from dlm.images.pixels import to_model_space
from dlm.images.recipe import ImageRecipe
from dlm.images.text_encoders import load_text_encoder
from dlm.training.checkpoint import (append_log, resume_checkpoint, save_checkpoint, save_model_dir, start_run,
                                     write_final)
from dlm.training.ema import EMA
from dlm.training.schedule import lr_lambda
from dlm.training.step import apply_gradients

STEP_SEED = 1_000_003


def epoch_rows(num_rows: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Rows of global batch ``step``: a seeded permutation per epoch, cut in order (the last partial batch dropped)."""
    epoch, position = divmod(step, num_rows // batch_size)
    perm = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return perm[position * batch_size:(position + 1) * batch_size]


class ImageTrainer:
    """Builds data, caption bank, U-Net and optimizer from an :class:`ImageRecipe` and runs the loop."""

    def __init__(self, recipe: ImageRecipe, accelerator: Accelerator | None = None):
        self.recipe = recipe
        train = recipe.train
        self.output_dir = Path(train.output_dir)
        self.accelerator = accelerator or Accelerator(cpu=train.cpu or not torch.cuda.is_available(),
                                                      mixed_precision=train.mixed_precision)
        if train.batch_size % self.accelerator.num_processes:
            raise DataError(f"train.batch_size={train.batch_size} does not split over "
                            f"{self.accelerator.num_processes} processes")
        set_seed(train.seed)
        dataset = recipe.data.dataset
        with self.accelerator.main_process_first():
            data = image_dataset(dataset, "train")
        self.images, self.labels = image_tensor(data), torch.tensor(data["label"])
        if len(self.images) < train.batch_size:
            raise DataError(f"{dataset} has {len(self.images)} training images, fewer than batch_size={train.batch_size}")
        encoder = load_text_encoder(recipe.model.get("text_encoder", "minilm"), dataset)
        self.bank = CaptionBank(caption_set(dataset), encoder)
        config = UNetConfig(**recipe.model, image_size=self.images.shape[-1], cond_dim=encoder.dim, dataset=dataset)
        model = UNetForDiffusion(config)
        self.sde = config.build_sde()
        self.ema = EMA(model, train.ema) if train.ema > 0 else None
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.optim.lr, betas=tuple(recipe.optim.betas),
                                      eps=recipe.optim.eps, weight_decay=recipe.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(recipe.optim, train.max_steps))
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.step = 0

    def local_batch(self, step: int) -> tuple[torch.Tensor, TextCondition, torch.Tensor, torch.Generator]:
        """This process's (x0 [b, 1, H, W], captions, drop mask [b], noise generator) of global batch ``step``."""
        train = self.recipe.train
        gen = torch.Generator().manual_seed(train.seed * STEP_SEED + step)
        rows = epoch_rows(len(self.images), train.batch_size, step, train.seed)
        captions = self.bank.sample(self.labels[rows], gen)
        drop = torch.rand(train.batch_size, generator=gen) < train.cond_drop
        dequantization = torch.rand(self.images[rows].shape, generator=gen) if train.dequantize else None
        x0 = to_model_space(self.images[rows], dequantization)
        share = train.batch_size // self.accelerator.num_processes
        mine = slice(self.accelerator.process_index * share, (self.accelerator.process_index + 1) * share)
        device = self.accelerator.device
        noise_seed = train.seed * STEP_SEED + step + 7 * self.accelerator.process_index
        noise_gen = torch.Generator(device=device).manual_seed(noise_seed)
        mine_captions = captions.index(torch.arange(mine.start, mine.stop)).to(device)
        return x0[mine].to(device), mine_captions, drop[mine].to(device), noise_gen

    def train_step(self, step: int) -> float:
        """One optimizer step on global batch ``step``; returns the DSM loss per pixel."""
        self.model.train()
        x0, captions, drop, gen = self.local_batch(step)
        with self.accelerator.autocast():
            per_sample = dsm_loss(lambda x, t: self.model(x, t, captions, drop), self.sde, x0,
                                  self.recipe.train.weighting, "eps", generator=gen)
            loss = per_sample.mean() / x0[0].numel()
        self.accelerator.backward(loss)
        apply_gradients(self.accelerator, self.model, self.optimizer, self.scheduler, self.ema,
                        self.recipe.optim.grad_clip)
        return float(self.accelerator.reduce(loss.detach(), reduction="mean"))

    def save(self) -> None:
        """An atomic ``checkpoint-<step>`` (model, EMA, optimizer, scheduler, RNG, recipe)."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            save_checkpoint(self.output_dir, self.step, self.accelerator.unwrap_model(self.model), None, self.optimizer,
                            self.scheduler, None if self.ema is None else self.ema.state_dict(),
                            {"recipe": self.recipe.to_dict()}, self.recipe.train.keep_last)

    def resume(self, path: str | Path | bool = True) -> None:
        """Continue from ``path`` or the newest complete checkpoint in ``output_dir``."""
        model = self.accelerator.unwrap_model(self.model)
        self.step = resume_checkpoint(self.output_dir, path,
                                      lambda found: model.load_state_dict(load_file(found / "model.safetensors")),
                                      self.optimizer, self.scheduler, self.ema)

    def log(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            append_log(self.output_dir, record)

    def fit(self, resume: str | Path | bool = False) -> dict[str, float]:
        """Train to ``max_steps``, logging and checkpointing on the way; writes ``final/``; returns the last metrics."""
        train = self.recipe.train
        start_run(self.output_dir, resume, self.resume)
        metrics: dict[str, float] = {}
        bar = tqdm(total=train.max_steps, initial=self.step, disable=not self.accelerator.is_main_process,
                   desc="train", dynamic_ncols=True)
        while self.step < train.max_steps:
            loss = self.train_step(self.step)
            self.step += 1
            bar.update(1)
            metrics = {"step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0]}
            if self.step % train.log_every == 0 or self.step == train.max_steps:
                bar.set_postfix(loss=f"{loss:.4f}")
                self.log(metrics)
            if self.step % train.save_every == 0 or self.step == train.max_steps:
                self.save()
        bar.close()
        self.export_final()
        return metrics

    def export_final(self) -> None:
        """``<output_dir>/final``: the model to sample from (EMA weights when enabled), written atomically."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        model = self.accelerator.unwrap_model(self.model)
        with self.ema.applied_to(model) if self.ema is not None else contextlib.nullcontext():
            write_final(self.output_dir, lambda tmp: save_model_dir(tmp, model, None))
