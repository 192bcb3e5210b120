"""The accelerate trainer for diffusion language models (pretraining, continued pretraining, SFT, LoRA).

Every optimizer step s consumes one global batch of ``train.batch_size`` blocks. Its rows, diffusion times and
corruption noise are functions of (seed, s) alone: rows come from a seeded permutation per epoch, times from one
antithetic sweep over the global batch, and x_t from one uniform per token (``process.corrupt``). Each process
takes its slice and splits it into micro-batches (gradient accumulation). Hence 2-process DDP computes the same
loss as 1 process with the same global batch, and a run resumed from a checkpoint continues exactly.

SFT rows (``data.format: sft``) carry ``prompt_mask`` (positions x_t keeps clean) and ``loss_mask`` (response
tokens); their loss is LLaDA's: each row's response NELBO divided by its response length, averaged over rows.
``train.lora`` trains peft LoRA adapters on ``model.init_from``; ``final/`` is then the merged plain model.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from safetensors.torch import load_file
from tqdm.auto import tqdm

from dlm.errors import CheckpointError, ConfigError, DataError
from dlm.denoiser import clean_log_probs
from dlm.losses import masked_count_nelbo_terms, nelbo_terms_at, sample_times, score_entropy_at
from dlm.models import DLMConfig, DLMForDiffusion
from dlm.processes import DiscreteProcess, MaskedProcess, process_from_config
from dlm.tokenization import load_tokenizer, mask_token_id_for, train_bpe_tokenizer
from dlm.training.ar import ar_token_nll, build_ar_model
from dlm.training.checkpoint import (append_log, resume_checkpoint, save_checkpoint, save_model_dir, start_run,
                                     write_final)
from dlm.training.data import build_datasets, load_documents
from dlm.training.ema import EMA
from dlm.training.recipe import Recipe
from dlm.training.schedule import lr_lambda
from dlm.training.step import apply_gradients

_STEP_SEED = 1_000_003


def model_config_for(tokenizer, fields: dict) -> DLMConfig:
    """A DLMConfig whose vocabulary follows the tokenizer's mask-id rule (masked: V + 1 rows; uniform: V)."""
    num_real, mask_id = mask_token_id_for(tokenizer)
    process = fields.get("process", "masked")
    vocab = mask_id + 1 if process == "masked" else num_real
    return DLMConfig(**{**fields, "vocab_size": vocab, "mask_id": mask_id if process == "masked" else None})


def loss_terms(model, process: DiscreteProcess, objective: str, x0: torch.LongTensor, t: torch.Tensor,
               u: torch.Tensor, parameterization: str = "posterior", keep: torch.Tensor | None = None,
               time_sampling: str = "uniform") -> torch.Tensor:
    """Per-token loss [B, L] at x_t = corrupt(x0, t, u): the NELBO integrand or σ̄'·score entropy.
    Positions where ``keep`` is true (an SFT prompt) stay clean in x_t. ``"ar"``: the AR baseline's next-token
    NLL (t, u and the process unused). ``time_sampling="count"``: the count-weighted masked NELBO
    (:func:`count_loss_terms`)."""
    if objective == "ar":
        return ar_token_nll(model, x0)
    if time_sampling == "count":
        return count_loss_terms(model, process, x0, t, u, keep)
    x_t = process.corrupt(x0, t, u)
    if keep is not None:
        x_t = torch.where(keep.bool(), x0, x_t)
    if objective == "nelbo":
        return nelbo_terms_at(model, process, x0, x_t, t)
    return score_entropy_at(model, process, x0, x_t, t, parameterization)


def count_loss_terms(model, process: MaskedProcess, x0: torch.LongTensor, t: torch.Tensor, u: torch.Tensor,
                     keep: torch.Tensor | None = None) -> torch.Tensor:
    """Count-weighted masked NELBO terms [B, L]: the batch's stratified times t ∈ [0, 1] are read as masking
    probabilities (position i of row b masked iff u_bi < t_b, prompt positions never), the model sees the time
    whose α is 1 − t_b, and each masked token is weighted (n+1)/k (:func:`dlm.losses.masked_count_nelbo_terms`)."""
    maskable = torch.ones_like(x0, dtype=torch.bool) if keep is None else ~keep.bool()
    masked = (u < t.to(u.dtype).unsqueeze(-1)) & maskable
    x_t = torch.where(masked, torch.full_like(x0, process.mask_id), x0)
    alpha_min = float(process.schedule.alpha(1.0))
    t_model = process.schedule.time_at_alpha((1 - t.double()).clamp_min(alpha_min)).clamp(0.0, 1.0)
    log_probs = clean_log_probs(model, x_t, t_model.float(), process.vocab_size)
    return masked_count_nelbo_terms(log_probs, process, x_t, x0, maskable)


def loss_weights(batch: dict) -> torch.Tensor | None:
    """Per-token loss weights [B, L] of a batch: SFT rows ``loss_mask / loss_mask.sum()`` (response-length
    normalised, LLaDA), ``pad`` rows their attention mask, wrapped blocks None (all ones)."""
    if "loss_mask" in batch:
        mask = batch["loss_mask"].float()
        return mask / mask.sum(-1, keepdim=True).clamp_min(1.0)
    mask = batch.get("attention_mask")
    return None if mask is None else mask.float()


class Trainer:
    """Builds tokenizer, data, model and optimizer from a :class:`Recipe` and runs the loop."""

    def __init__(self, recipe: Recipe, accelerator: Accelerator | None = None):
        self.recipe = recipe
        train = recipe.train
        self.output_dir = Path(train.output_dir)
        self.accelerator = accelerator or self._accelerator()
        procs = self.accelerator.num_processes
        micro = train.micro_batch_size or max(1, train.batch_size // procs)  # default: no accumulation
        if train.batch_size % (micro * procs):
            raise ConfigError(
                f"train.batch_size={train.batch_size} does not split into micro-batches of {micro} over {procs} processes",
                hint="make batch_size a multiple of micro_batch_size × number of processes")
        self.micro, self.accum = micro, train.batch_size // (micro * procs)
        if self.accum > 1 and self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            raise ConfigError("DeepSpeed steps the optimizer itself, so dlm cannot accumulate micro-batches under it",
                              hint="set train.micro_batch_size = train.batch_size / number of processes")
        set_seed(train.seed)
        with self.accelerator.main_process_first():
            self.tokenizer = self._tokenizer()
            self.train_data, self.val_data = build_datasets(recipe.data, self.tokenizer)
        if len(self.train_data) < train.batch_size:
            raise DataError(f"the training set has {len(self.train_data)} blocks, fewer than batch_size={train.batch_size}",
                            hint="lower train.batch_size or data.block_size, or give more text")
        model = self._model()
        self.process = None if train.objective == "ar" else process_from_config(model.config)
        self.parameterization = "score" if getattr(model.config, "head", None) == "score" else "posterior"
        if train.time_sampling == "count" and not (isinstance(self.process, MaskedProcess)
                                                   and train.objective == "nelbo" and self.parameterization == "posterior"):
            raise ConfigError("train.time_sampling: count needs the masked process, objective nelbo and an x0 head",
                              hint="use time_sampling: uniform for uniform-process, score-entropy or score-head models")
        self.ema = EMA(model, train.ema) if train.ema > 0 else None
        optimizer = torch.optim.AdamW(self._param_groups(model), lr=recipe.optim.lr, betas=tuple(recipe.optim.betas),
                                      eps=recipe.optim.eps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(recipe.optim, train.max_steps))
        # The scheduler stays unprepared: accelerate would step it once per process, but one global batch is one step.
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scheduler = scheduler
        if train.compile:
            self.model = torch.compile(self.model)
        self.step = 0

    # --- construction -----------------------------------------------------------------------------
    def _accelerator(self) -> Accelerator:
        train = self.recipe.train
        kwargs = {}
        if train.trackers:
            kwargs = {"log_with": train.trackers, "project_dir": str(self.output_dir)}
        return Accelerator(cpu=train.cpu or not torch.cuda.is_available(), mixed_precision=train.mixed_precision, **kwargs)

    def _tokenizer(self):
        spec = self.recipe.tokenizer
        if spec.name != "train":
            return load_tokenizer(spec.name)
        saved = self.output_dir / "tokenizer"
        if saved.is_dir():
            return load_tokenizer(saved)
        docs = load_documents(self.recipe.data.source, self.recipe.data)
        return train_bpe_tokenizer((text for text in docs["text"] if text), spec.vocab_size, saved)

    def _model(self) -> DLMForDiffusion:
        section = self.recipe.model
        if section.arch == "ar":
            return build_ar_model(self.tokenizer, section.config)
        if section.init_from:
            try:
                # float32 master weights: a checkpoint stored in float16 (the shipped model) would otherwise load,
                # and train, in float16 (transformers loads the stored dtype)
                model = DLMForDiffusion.from_pretrained(section.init_from, dtype=torch.float32)
            except (OSError, ValueError) as err:
                raise CheckpointError(f"cannot load model.init_from={section.init_from}: {' '.join(str(err).split())[:200]}",
                                      hint="give a directory written by save_pretrained or dlm train") from None
            num_real, _ = mask_token_id_for(self.tokenizer)
            if model.config.num_real_tokens != num_real:
                raise ConfigError(f"model.init_from has {model.config.num_real_tokens} real tokens, the tokenizer {num_real}",
                                  hint="use the checkpoint's own tokenizer (tokenizer.name=<init_from>)")
            if self.recipe.train.lora is not None:
                from dlm.training.lora import LoraSettings, apply_lora

                model = apply_lora(model, LoraSettings.from_dict(self.recipe.train.lora))
            return model
        return DLMForDiffusion(model_config_for(self.tokenizer, section.config))

    def _param_groups(self, model: torch.nn.Module) -> list[dict]:
        """Weight decay on matrices only (not on embeddings, norms and biases)."""
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:  # frozen base weights under LoRA
                continue
            (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.recipe.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    # --- the global batch of a step -----------------------------------------------------------------
    def batch_indices(self, step: int) -> torch.Tensor:
        """Dataset rows of step ``step``'s global batch: a seeded permutation per epoch, cut in order."""
        size, n = self.recipe.train.batch_size, len(self.train_data)
        per_epoch = n // size
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.recipe.train.seed * 7919 + epoch))
        return perm[pos * size:(pos + 1) * size]

    def batch_noise(self, step: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(t [B], u [B, L]) of the global batch: one antithetic sweep of times and one uniform per token."""
        train = self.recipe.train
        gen = torch.Generator().manual_seed(train.seed * _STEP_SEED + step)
        t_min = 0.0 if train.time_sampling == "count" else train.t_min  # count: t is a masking probability ~ U[0, 1]
        t = sample_times(train.batch_size, 1, train.antithetic, t_min, gen)[0]
        u = torch.rand(train.batch_size, length, generator=gen, dtype=torch.float64)
        return t, u

    def _local_micro_batches(self, step: int):
        """This process's micro-batches of the global batch: (x0, loss weights or None, prompt mask or None, t, u)
        on device."""
        rows = self.batch_indices(step)
        length = self.recipe.data.block_size
        t, u = self.batch_noise(step, length)
        share = self.recipe.train.batch_size // self.accelerator.num_processes
        start = self.accelerator.process_index * share
        device = self.accelerator.device
        for k in range(self.accum):
            sl = slice(start + k * self.micro, start + (k + 1) * self.micro)
            batch = self.train_data[rows[sl]]
            weight, keep = loss_weights(batch), batch.get("prompt_mask")
            yield (batch["input_ids"].to(device), None if weight is None else weight.to(device),
                   None if keep is None else keep.to(device), t[sl].to(device), u[sl].to(device))

    def _global_token_count(self, step: int) -> float:
        """The total loss weight step ``step`` averages over: its tokens (attention-masked ones excluded), or
        its rows for SFT (each row's weights sum to 1)."""
        columns = self.train_data.column_names
        if "attention_mask" not in columns and "loss_mask" not in columns:
            return float(self.recipe.train.batch_size * self.recipe.data.block_size)
        return float(loss_weights(self.train_data[self.batch_indices(step)]).sum())

    # --- the loop -----------------------------------------------------------------------------------
    def train_step(self, step: int) -> float:
        """One optimizer step on global batch ``step``; returns its mean loss per token (nats)."""
        self.model.train()
        norm = self._global_token_count(step)
        total = torch.zeros((), device=self.accelerator.device)
        for k, (x0, mask, keep, t, u) in enumerate(self._local_micro_batches(step)):
            sync = contextlib.nullcontext() if k == self.accum - 1 else self.accelerator.no_sync(self.model)
            with sync, self.accelerator.autocast():
                terms = loss_terms(self.model, self.process, self.recipe.train.objective, x0, t, u,
                                   self.parameterization, keep, self.recipe.train.time_sampling).float()
                if mask is not None:
                    terms = terms * mask
                loss = terms.sum() / norm * self.accelerator.num_processes
            self.accelerator.backward(loss)
            total += terms.detach().sum()
        apply_gradients(self.accelerator, self.model, self.optimizer, self.scheduler, self.ema,
                        self.recipe.optim.grad_clip)
        return float(self.accelerator.reduce(total, "sum")) / norm

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation NELBO over the first ``eval_batches`` micro-batches per process, fixed noise:
        nats/token, bits/token and the perplexity bound exp(nats/token)."""
        if self.val_data is None:
            return {}
        train = self.recipe.train
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        procs, rank = self.accelerator.num_processes, self.accelerator.process_index
        rows = min(len(self.val_data), train.eval_batches * self.micro * procs)
        nats = torch.zeros((), device=self.accelerator.device)
        tokens = torch.zeros((), device=self.accelerator.device)
        gen = torch.Generator().manual_seed(train.seed + 12345 + rank)
        ctx = self.ema.applied_to(model) if self.ema is not None else contextlib.nullcontext()
        with ctx:
            for start in range(rank * self.micro, rows, self.micro * procs):
                batch = self.val_data[start:min(start + self.micro, rows)]
                x0 = batch["input_ids"].to(self.accelerator.device)
                mask = batch.get("loss_mask", batch.get("attention_mask"))  # SFT: nats per response token
                weight = torch.ones_like(x0, dtype=torch.float32) if mask is None else mask.float().to(x0.device)
                keep = batch.get("prompt_mask")
                keep = None if keep is None else keep.to(x0.device)
                for t in sample_times(x0.shape[0], train.eval_num_t, True, 0.0, gen):
                    u = torch.rand(x0.shape, generator=gen, dtype=torch.float64)
                    objective = "ar" if train.objective == "ar" else "nelbo"  # AR: exact, the same every t
                    terms = loss_terms(model, self.process, objective, x0, t.to(x0.device), u.to(x0.device),
                                       keep=keep).float()
                    nats += (terms * weight).sum() / train.eval_num_t
                tokens += weight.sum()
        nats, tokens = self.accelerator.reduce(nats, "sum"), self.accelerator.reduce(tokens, "sum")
        per_token = float(nats / tokens)
        return {"val_nats_per_token": per_token, "val_bits_per_token": per_token / math.log(2),
                "val_ppl_bound": math.exp(min(per_token, 700.0))}

    def save(self) -> Path | None:
        """Checkpoint the current step (main process writes; all processes wait)."""
        self.accelerator.wait_for_everyone()
        path = None
        if self.accelerator.is_main_process:
            path = save_checkpoint(
                self.output_dir, self.step, self.accelerator.unwrap_model(self.model), self.tokenizer,
                self.optimizer, self.scheduler, self.ema.state_dict() if self.ema else None,
                {"recipe": self.recipe.to_dict()}, self.recipe.train.keep_last)
        self.accelerator.wait_for_everyone()
        return path

    def resume(self, path: str | Path | bool = True) -> None:
        """Load model, optimizer, scheduler, EMA and RNG from ``path`` (True: the newest checkpoint)."""
        self.step = resume_checkpoint(self.output_dir, path, self._load_checkpoint_model, self.optimizer,
                                      self.scheduler, self.ema)

    def _load_checkpoint_model(self, path: Path) -> None:
        """The model weights of a checkpoint; those of LoRA runs hold the adapters only."""
        model = self.accelerator.unwrap_model(self.model)
        if self.recipe.train.lora is not None:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, load_file(path / "adapter_model.safetensors"))
        else:
            model.load_state_dict(load_file(path / "model.safetensors"))

    def _log(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            append_log(self.output_dir, record)
        if self.recipe.train.trackers:
            self.accelerator.log(record, step=record["step"])

    def fit(self, resume: str | Path | bool = False) -> dict[str, float]:
        """Train to ``max_steps``, validating, logging and checkpointing on the way; returns the last metrics."""
        train = self.recipe.train
        start_run(self.output_dir, resume, self.resume)
        if train.trackers:
            self.accelerator.init_trackers("dlm", config={"objective": train.objective, "batch_size": train.batch_size})
        metrics: dict[str, float] = {}
        bar = tqdm(total=train.max_steps, initial=self.step, disable=not self.accelerator.is_main_process,
                   desc="train", dynamic_ncols=True)
        tokens_per_step = train.batch_size * self.recipe.data.block_size
        clock = time.perf_counter()
        while self.step < train.max_steps:
            loss = self.train_step(self.step)
            self.step += 1
            bar.update(1)
            metrics = {"step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0]}
            if self.step % train.log_every == 0 or self.step == train.max_steps:
                elapsed, clock = time.perf_counter() - clock, time.perf_counter()
                metrics["tokens_per_s"] = tokens_per_step * min(train.log_every, self.step) / max(elapsed, 1e-9)
            if self.step % train.eval_every == 0 or self.step == train.max_steps:
                metrics.update(self.evaluate())
            if self.step % train.log_every == 0 or "val_nats_per_token" in metrics:
                bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if k in ("loss", "val_bits_per_token")})
                self._log(metrics)
            if self.step % train.save_every == 0 or self.step == train.max_steps:
                self.save()
        bar.close()
        self.export_final()
        if train.trackers:
            self.accelerator.end_training()
        return metrics

    def export_final(self) -> None:
        """Write ``<output_dir>/final``: the model to use (EMA weights when enabled) and its tokenizer; with LoRA,
        the adapters merged into a plain dlm model, and the adapter itself in ``<output_dir>/adapter``."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        model = self.accelerator.unwrap_model(self.model)
        with self.ema.applied_to(model) if self.ema is not None else contextlib.nullcontext():
            if self.recipe.train.lora is not None:
                from dlm.training.lora import merged_copy

                shutil.rmtree(self.output_dir / "adapter", ignore_errors=True)
                save_model_dir(self.output_dir / "adapter", model, self.tokenizer)
                model = merged_copy(model)
            write_final(self.output_dir, lambda tmp: save_model_dir(tmp, model, self.tokenizer))
