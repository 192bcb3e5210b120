"""What a text encoder hands the U-Net: token embeddings, their attention mask and a pooled embedding.

A :class:`TextCondition` is a batch of encoded prompts. The U-Net cross-attends to ``tokens`` where ``mask`` is true
and adds a projection of ``pooled`` to its time embedding. :class:`CaptionBank` encodes every caption of a data set
once (the encoder is frozen), so training looks conditions up instead of running the encoder each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.images.captions import CaptionSet


@dataclass(frozen=True)
class TextCondition:
    """Encoded prompts: ``tokens`` [B, T, D], ``mask`` [B, T] (true = a real token), ``pooled`` [B, D]."""

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def dim(self) -> int:
        return self.tokens.shape[-1]

    def index(self, rows: Tensor) -> "TextCondition":
        """The conditions of batch rows ``rows``."""
        return TextCondition(self.tokens[rows], self.mask[rows], self.pooled[rows])

    def repeat_interleave(self, repeats: int) -> "TextCondition":
        """Each condition ``repeats`` times in a row (prompt-major, as samples per prompt are laid out)."""
        return TextCondition(*(v.repeat_interleave(repeats, dim=0) for v in (self.tokens, self.mask, self.pooled)))

    def repeat(self, times: int) -> "TextCondition":
        """The whole batch ``times`` times over (as [x; x] is for classifier-free guidance)."""
        return TextCondition(self.tokens.repeat(times, 1, 1), self.mask.repeat(times, 1), self.pooled.repeat(times, 1))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "TextCondition":
        """On ``device``; float tensors cast to ``dtype`` when given."""
        return TextCondition(self.tokens.to(device, dtype), self.mask.to(device), self.pooled.to(device, dtype))


class CaptionBank:
    """Every caption of a :class:`CaptionSet`, encoded once; :meth:`sample` draws one caption per label."""

    def __init__(self, captions: CaptionSet, encoder):
        self.captions = captions
        self.encoded: TextCondition = encoder(captions.all_captions())

    def sample(self, labels: Tensor, generator: torch.Generator | None = None) -> TextCondition:
        """The encoded caption of a uniformly drawn template for each label, on the labels' device."""
        rows = self.captions.caption_index(labels, generator)
        return self.encoded.index(rows).to(labels.device)
