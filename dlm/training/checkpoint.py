"""Training checkpoints: written atomically (a temporary directory renamed into place), rotated, resumed.

``<output_dir>/checkpoint-<step>/`` holds the model (``save_pretrained``: config + safetensors, loadable with
``from_pretrained``), the tokenizer, ``ema.safetensors``, ``optimizer.pt`` and ``scheduler.pt`` (tensors and
numbers only, loaded with ``weights_only=True``), ``rng.pt`` and ``trainer_state.json`` (step, config). A
directory without ``trainer_state.json`` — written last — is incomplete and never resumed from.
"""

from __future__ import annotations

import json
import pickle
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dlm.errors import CheckpointError
from dlm.hf_utils import no_progress_bars

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def save_checkpoint(output_dir: str | Path, step: int, model, tokenizer, optimizer, scheduler,
                    ema_state: dict[str, torch.Tensor] | None, state: dict, keep_last: int) -> Path:
    """Write ``checkpoint-<step>`` atomically, then delete all but the newest ``keep_last`` checkpoints."""
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"checkpoint-{step}"
    tmp = root / f".tmp-checkpoint-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_dir(tmp, model, tokenizer)
    if ema_state is not None:
        save_file({k: v.contiguous() for k, v in ema_state.items()}, tmp / "ema.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_model_dir(path: Path, model, tokenizer) -> None:
    """``save_pretrained`` of model (safetensors) and tokenizer into ``path``, without progress bars."""
    with no_progress_bars():
        model.save_pretrained(path, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)


def load_training_state(path: Path, optimizer, scheduler) -> tuple[dict, dict[str, torch.Tensor] | None]:
    """Restore optimizer, scheduler and RNG from ``path``; return (trainer_state, ema_state or None)."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
        ema = load_file(path / "ema.safetensors") if (path / "ema.safetensors").is_file() else None
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as err:
        reason = " ".join(str(err).split())[:200]
        raise CheckpointError(f"checkpoint {path} is corrupt or incomplete: {reason}",
                              hint="delete it to resume from the previous one, or start without --resume") from None
    return state, ema


def resume_checkpoint(output_dir: Path, path: str | Path | bool, load_model, optimizer, scheduler, ema=None) -> int:
    """Resume a run from checkpoint ``path`` (True: the newest complete one in ``output_dir``): the model by
    ``load_model(path)``, then optimizer, scheduler, RNG and EMA; returns the checkpoint's step."""
    if path is True:
        found = checkpoint_dirs(output_dir)
        if not found:
            raise CheckpointError(f"no checkpoint to resume from in {output_dir}", hint="start without --resume")
        path = found[-1]
    path = Path(path)
    try:
        load_model(path)
    except (OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} has no loadable model: {' '.join(str(err).split())[:200]}",
                              hint="delete it to resume from the previous one") from None
    state, ema_state = load_training_state(path, optimizer, scheduler)
    if ema is not None and ema_state is not None:
        ema.load_state_dict(ema_state)
    return int(state["step"])


def write_final(output_dir: Path, write) -> Path:
    """``<output_dir>/final`` written atomically: ``write(tmp)`` fills a temporary directory, which then replaces
    any previous ``final/``."""
    tmp, final = Path(output_dir) / ".tmp-final", Path(output_dir) / "final"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def start_run(output_dir: Path, resume, resume_fn) -> None:
    """Before the loop: ``resume_fn(resume)`` when resuming; otherwise refuse to start over the checkpoints of
    another run. Creates ``output_dir``."""
    if resume:
        resume_fn(resume)
    elif checkpoint_dirs(output_dir):
        raise CheckpointError(f"{output_dir} already holds checkpoints",
                              hint="pass --resume to continue, or choose another train.output_dir")
    Path(output_dir).mkdir(parents=True, exist_ok=True)


def append_log(output_dir: Path, record: dict) -> None:
    """One JSON line in ``<output_dir>/log.jsonl``."""
    with open(Path(output_dir) / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
