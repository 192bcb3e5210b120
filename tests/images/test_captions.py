"""Captions cover every class with every template, and each maps back to its class."""

import pytest
import torch

from dlm.errors import ConfigError, InputError
from dlm.images.captions import CAPTION_SETS, caption_set, class_of_prompt
from dlm.images.data import class_names


@pytest.mark.parametrize("dataset", sorted(CAPTION_SETS))
def test_every_caption_names_its_class(dataset):
    captions = caption_set(dataset)
    assert captions.num_classes == len(class_names(dataset))
    texts = captions.all_captions()
    assert len(texts) == captions.num_classes * len(captions.templates) == len(set(texts))
    for index, text in enumerate(texts):
        assert class_of_prompt(captions, text) == index // len(captions.templates)


def test_fashion_captions_read_naturally():
    texts = caption_set("fashion_mnist").all_captions()
    for expected in ("a photo of a sneaker", "an ankle boot, product shot", "a photo of a pair of trousers"):
        assert expected in texts
    assert class_of_prompt(caption_set("fashion_mnist"), "A T-shirt!") == 0  # "t-shirt" beats "shirt"
    assert class_of_prompt(caption_set("fashion_mnist"), "some shirt") == 6
    assert class_of_prompt(caption_set("digits"), "a 7") == 7


def test_caption_index_draws_templates_of_the_right_class():
    captions = caption_set("digits")
    labels = torch.arange(10).repeat(50)
    index = captions.caption_index(labels, torch.Generator().manual_seed(0))
    k = len(captions.templates)
    assert torch.equal(index // k, labels)
    assert set((index % k).tolist()) == set(range(k))


def test_prompt_without_a_class_and_unknown_dataset():
    with pytest.raises(InputError, match="names no class"):
        class_of_prompt(caption_set("digits"), "a cat")
    with pytest.raises(ConfigError, match="no captions"):
        caption_set("cifar")
