"""Training data: documents from a source, tokenised and packed into fixed-length blocks.

Sources (``DataConfig.source`` and ``DataConfig.val_source``):

- a ``.txt`` file or a directory of ``.txt`` files (searched recursively, sorted): one document
  per file (``txt_documents="file"``, the default) or one per blank-line-separated paragraph
  (``txt_documents="paragraph"``);
- a ``.jsonl`` / ``.json`` file of records whose ``text_field`` holds the text;
- a directory written by ``Dataset.save_to_disk`` (a ``DatasetDict`` directory gives ``split``);
- ``"hub:NAME"``: ``datasets.load_dataset(NAME, hub_config, split=split)``, for users with the hub;
- a named offline corpus: ``"austen"``, ``"kjv"``, ``"shakespeare"`` (see :mod:`dlm.training.corpora`).

Packing (``DataConfig.packing``):

- ``"wrap"`` (SEDD/MDLM on OpenWebText): every document becomes ``[bos] + ids + [eos]`` (just
  ``ids + [eos]`` when bos == eos, as for GPT-2), the documents of each batch of ``batch_size`` are
  concatenated and cut into ``block_size`` blocks; the last partial block of each batch is dropped.
- ``"pad"``: one document per row, ``[bos] + ids[:room] + [eos]`` then padded to ``block_size``
  with the pad token (eos when the tokenizer has none); ``attention_mask`` is 1 on real tokens.

Supervised fine-tuning (``DataConfig.format = "sft"``): records with ``prompt``/``response`` or
``messages`` fields become one row each with ``prompt_mask`` and ``loss_mask`` (see :mod:`dlm.training.sft`).

Both go through ``Dataset.map(batched=True)``, so results are cached by ``datasets`` and a second
run with the same data, tokenizer and config loads them from the cache. The validation split is a
seeded, document-level hold-out of ``val_fraction`` unless ``val_source`` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from dlm.errors import ConfigError, DataError
from dlm.training.corpora import CORPORA, Document, load_corpus

PACKINGS = ("wrap", "pad")
FORMATS = ("text", "sft")
TXT_DOCUMENTS = ("file", "paragraph")
SOURCE_HINT = ("give a .txt/.jsonl file, a directory of .txt files, a save_to_disk directory, "
               f"hub:NAME, or a corpus name ({', '.join(CORPORA)})")


@dataclass
class DataConfig:
    """Where the text comes from and how it becomes blocks of token ids (see the module docstring)."""

    source: str
    val_source: str | None = None
    text_field: str = "text"
    block_size: int = 1024
    packing: str = "wrap"
    val_fraction: float = 0.05
    seed: int = 0
    num_proc: int | None = None
    batch_size: int = 1000
    txt_documents: str = "file"
    split: str = "train"
    val_split: str = "validation"
    hub_config: str | None = None
    cache_dir: str | None = None
    format: str = "text"
    prompt_field: str = "prompt"
    response_field: str = "response"
    messages_field: str = "messages"
    chat_template: str = "auto"
    sft_eos_padding: bool = True

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ConfigError(f"unknown data format '{self.format}'", hint=f"choose one of: {', '.join(FORMATS)}")
        if self.packing not in PACKINGS:
            raise ConfigError(f"unknown packing '{self.packing}'", hint=f"choose one of: {', '.join(PACKINGS)}")
        if self.txt_documents not in TXT_DOCUMENTS:
            raise ConfigError(f"unknown txt_documents '{self.txt_documents}'",
                              hint=f"choose one of: {', '.join(TXT_DOCUMENTS)}")
        if self.block_size < 2:
            raise ConfigError(f"block_size must be at least 2, got {self.block_size}",
                              hint="a block holds bos and eos around at least one token; 128-1024 is usual")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}",
                              hint="0.05 holds out 5% of the documents; 0 with no val_source gives no validation set")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")


def _documents_dataset(docs: list[Document], cache_dir: str | None) -> datasets.Dataset:
    """An on-disk (so cache-backed) dataset with columns ``text`` and ``source``, keyed by content."""
    return datasets.Dataset.from_generator(
        _yield_documents, gen_kwargs={"texts": [d.text for d in docs], "sources": [d.source for d in docs]},
        cache_dir=cache_dir,
    )


def _yield_documents(texts: list[str], sources: list[str]):
    """Rows of :func:`_documents_dataset`."""
    for text, source in zip(texts, sources, strict=True):
        yield {"text": text, "source": source}


def _txt_documents(path: Path, mode: str) -> list[Document]:
    """Documents of a ``.txt`` file or of every ``.txt`` file under a directory."""
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"no .txt files under {path}", hint=SOURCE_HINT)
    docs = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        parts = re.split(r"\n\s*\n", text) if mode == "paragraph" else [text]
        docs.extend(Document(part.strip(), str(file)) for part in parts if part.strip())
    return docs


def _with_text_column(ds: datasets.Dataset, text_field: str, source: str) -> datasets.Dataset:
    """Keep only ``text_field``, renamed to ``text``."""
    if text_field not in ds.column_names:
        raise DataError(f"{source} has no field '{text_field}' (fields: {', '.join(ds.column_names)})",
                        hint="set text_field to the field that holds the text")
    ds = ds.select_columns([text_field])
    return ds if text_field == "text" else ds.rename_column(text_field, "text")


def _from_disk(path: Path, split: str) -> datasets.Dataset:
    """A ``save_to_disk`` directory; a ``DatasetDict`` gives its ``split``."""
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{path} has no split '{split}' (splits: {', '.join(loaded)})",
                            hint="set split / val_split to one of them")
        return loaded[split]
    return loaded


def _from_hub(name: str, config: DataConfig, split: str) -> datasets.Dataset:
    """``datasets.load_dataset`` for a hub dataset; needs the hub (or its local cache)."""
    try:
        return datasets.load_dataset(name, config.hub_config, split=split, cache_dir=config.cache_dir)
    except Exception as err:  # datasets raises many types (network, missing config, missing split)
        raise DataError(f"cannot load hub dataset '{name}': {' '.join(str(err).split())[:300]}",
                        hint="check the name, hub_config and split, and that the hub is reachable") from err


def _is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a directory written by ``save_to_disk``."""
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def load_documents(source: str, config: DataConfig, split: str | None = None) -> datasets.Dataset:
    """The documents of ``source`` as a dataset whose ``text`` column holds one document per row."""
    split = split or config.split
    if not source.strip():
        raise DataError("no data source given", hint=SOURCE_HINT)
    if source.startswith("hub:"):
        return _with_text_column(_from_hub(source[len("hub:"):], config, split), config.text_field, source)
    path = Path(source).expanduser()
    if path.is_dir() and _is_saved_dataset(path):
        return _with_text_column(_from_disk(path, split), config.text_field, source)
    if path.suffix in (".jsonl", ".json") and path.is_file():
        ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=config.cache_dir)
        return _with_text_column(ds, config.text_field, source)
    if path.is_dir() or (path.suffix == ".txt" and path.is_file()):
        return _documents_dataset(_txt_documents(path, config.txt_documents), config.cache_dir)
    if path.exists():
        raise DataError(f"unsupported data file {path}", hint=SOURCE_HINT)
    if source in CORPORA:
        return _documents_dataset(load_corpus(source), config.cache_dir)
    raise DataError(f"data source '{source}' not found", hint=SOURCE_HINT)


def separators(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """``(prefix, suffix)`` ids around each document: ``[bos]``/``[eos]``, no prefix when bos == eos."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the tokenizer has no eos token to separate documents",
                          hint="use 'gpt2' or a tokenizer from 'dlm tokenizer train'")
    return ([bos] if bos is not None and bos != eos else []), [eos]


def _encode(texts: list[str | None], tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids of the non-empty texts, without special tokens."""
    texts = [t for t in texts if t and t.strip()]
    return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []


def _wrap_batch(batch: dict, tokenizer: PreTrainedTokenizerBase, block_size: int) -> dict:
    """Concatenate ``prefix + ids + suffix`` of every document and cut into full blocks."""
    prefix, suffix = separators(tokenizer)
    stream = [t for ids in _encode(batch["text"], tokenizer) for t in prefix + ids + suffix]
    usable = len(stream) - len(stream) % block_size
    return {"input_ids": [stream[i : i + block_size] for i in range(0, usable, block_size)]}


def _pad_batch(batch: dict, tokenizer: PreTrainedTokenizerBase, block_size: int) -> dict:
    """One row per document: ``prefix + ids[:room] + suffix``, padded, with its attention mask."""
    prefix, suffix = separators(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else suffix[0]
    room = block_size - len(prefix) - len(suffix)
    rows = [prefix + ids[:room] + suffix for ids in _encode(batch["text"], tokenizer)]
    return {
        "input_ids": [row + [pad] * (block_size - len(row)) for row in rows],
        "attention_mask": [[1] * len(row) + [0] * (block_size - len(row)) for row in rows],
    }


def pack_documents(docs: datasets.Dataset, tokenizer: PreTrainedTokenizerBase,
                   config: DataConfig) -> datasets.Dataset:
    """Tokenise and pack a documents dataset (``text`` column) into ``block_size`` rows, torch format."""
    pack = _wrap_batch if config.packing == "wrap" else _pad_batch
    if config.packing == "pad" and config.block_size < 1 + sum(map(len, separators(tokenizer))):
        raise ConfigError(f"block_size {config.block_size} leaves no room for a token between bos and eos",
                          hint="use a larger block_size")
    blocks = docs.map(
        pack, batched=True, batch_size=config.batch_size, remove_columns=docs.column_names,
        fn_kwargs={"tokenizer": tokenizer, "block_size": config.block_size},
        num_proc=config.num_proc, desc=f"tokenize+{config.packing}",
    )
    if len(blocks) == 0:
        raise DataError(f"no block of {config.block_size} tokens could be made from {len(docs)} documents",
                        hint="lower block_size or give more text")
    return blocks.with_format("torch")


def _hold_out(docs: datasets.Dataset, config: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Seeded document-level split into (train, validation) documents."""
    try:
        parts = docs.train_test_split(test_size=config.val_fraction, seed=config.seed)
    except ValueError as err:
        raise DataError(f"cannot hold out {config.val_fraction} of {len(docs)} documents for validation",
                        hint="set val_fraction=0 or give val_source") from err
    return parts["train"], parts["test"]


def train_and_validation(config: DataConfig, load) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """(train, validation) rows from ``load(source, config[, split])``: validation is ``val_source`` when given,
    else a seeded ``val_fraction`` hold-out, else ``None``."""
    rows = load(config.source, config)
    if config.val_source is not None:
        return rows, load(config.val_source, config, config.val_split)
    if config.val_fraction > 0:
        return _hold_out(rows, config)
    return rows, None


def build_datasets(config: DataConfig, tokenizer: PreTrainedTokenizerBase
                   ) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """(train, validation) block datasets with ``input_ids`` (+ ``attention_mask`` for ``"pad"``).

    Validation is ``val_source`` when given, else a ``val_fraction`` hold-out, else ``None``.
    ``format: sft`` gives rows with ``prompt_mask`` and ``loss_mask`` (:func:`dlm.training.sft.build_sft_datasets`).
    """
    if config.format == "sft":
        from dlm.training.sft import build_sft_datasets

        return build_sft_datasets(config, tokenizer)
    docs, val_docs = train_and_validation(config, load_documents)
    train = pack_documents(docs, tokenizer, config)
    return train, (pack_documents(val_docs, tokenizer, config) if val_docs is not None else None)
