"""Small helpers around transformers' global state."""

from __future__ import annotations

import contextlib

from transformers.utils import logging as hf_logging


@contextlib.contextmanager
def no_progress_bars():
    """Silence transformers' per-file progress bars (loading/saving weights) inside the block."""
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
