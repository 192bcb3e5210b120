"""Prompt encoders: MiniLM from the installed package reproduces its sentence embedding; the class encoder is one-hot."""

import pytest
import torch

from dlm.errors import ConfigError, InputError
from dlm.images.text_encoders import ClassEncoder, MiniLMEncoder, load_text_encoder, mean_pool, minilm_dir

PROMPTS = ["a photo of a sneaker", "an ankle boot, product shot", ""]


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder()


def test_minilm_tokens_mask_and_pooled(minilm):
    cond = minilm(PROMPTS)
    assert cond.tokens.shape[0] == 3 and cond.tokens.shape[2] == 384 == minilm.dim
    assert cond.mask.dtype == torch.bool and cond.mask.sum(1).tolist()[2] == 2  # "" is [CLS] [SEP]
    assert torch.allclose(cond.pooled.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(cond.pooled, torch.nn.functional.normalize(mean_pool(cond.tokens, cond.mask), dim=-1))


def test_minilm_pooled_is_the_packaged_sentence_embedding(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(PROMPTS, convert_to_tensor=True)
    torch.testing.assert_close(minilm(PROMPTS).pooled, reference, atol=1e-6, rtol=1e-5)


def test_padding_does_not_change_a_prompt(minilm):
    alone, padded = minilm(PROMPTS[:1]), minilm(PROMPTS)
    length = int(alone.mask.sum())
    torch.testing.assert_close(padded.tokens[0, :length], alone.tokens[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded.pooled[0], alone.pooled[0], atol=1e-6, rtol=1e-5)


def test_class_encoder_is_one_hot():
    cond = ClassEncoder("fashion_mnist")(["a sneaker", "ankle boots on a table"])
    assert cond.tokens.shape == (2, 1, 10) and cond.mask.all()
    assert cond.pooled.argmax(-1).tolist() == [7, 9] and cond.pooled.sum().item() == 2
    with pytest.raises(InputError, match="names no class"):
        ClassEncoder("digits")(["a sneaker"])


def test_unknown_encoder_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown prompt encoder 'clip'"):
        load_text_encoder("clip", "digits")


def test_caption_bank_rows_are_the_encoded_captions(minilm):
    from dlm.images.captions import caption_set
    from dlm.images.conditioning import CaptionBank

    captions = caption_set("fashion_mnist")
    bank = CaptionBank(captions, minilm)
    labels = torch.tensor([7, 9, 0])
    drawn = bank.sample(labels, torch.Generator().manual_seed(0))
    index = captions.caption_index(labels, torch.Generator().manual_seed(0))
    texts = [captions.all_captions()[i] for i in index]
    assert all(class_of == label for class_of, label in zip(index // len(captions.templates), labels.tolist()))
    torch.testing.assert_close(drawn.pooled, minilm(texts).pooled, atol=1e-6, rtol=1e-5)
    assert drawn.tokens.shape == (3, bank.encoded.tokens.shape[1], 384)
