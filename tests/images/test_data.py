"""Image data sets: shapes, dtypes, label counts, the idx reader and the pixel ↔ model-space maps."""

import gzip

import numpy as np
import pytest
import torch

from dlm.errors import ConfigError, DataError
from dlm.images import class_names, image_dataset, image_tensor
from dlm.images.data import FASHION_MNIST_DIR, read_idx
from dlm.images.pixels import to_model_space, to_pixels


def test_digits_splits_partition_sklearn_digits():
    from sklearn.datasets import load_digits

    train, test = image_dataset("digits", "train"), image_dataset("digits", "test")
    assert (len(train), len(test)) == (1497, 300)
    images = image_tensor(train)
    assert images.shape == (1497, 8, 8) and images.dtype == torch.uint8 and int(images.max()) == 255
    labels = np.concatenate([train["label"], test["label"]])
    assert np.array_equal(np.bincount(labels), np.bincount(load_digits().target))
    assert train.features["label"].names == list(class_names("digits"))


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="needs Debian dataset-fashion-mnist (scripts/setup_assets.sh)")
def test_fashion_mnist_has_6000_and_1000_images_per_class():
    train, test = image_dataset("fashion_mnist", "train"), image_dataset("fashion_mnist", "test")
    assert train.features["label"].names[7] == "Sneaker" and len(class_names("fashion_mnist")) == 10
    assert image_tensor(test).shape == (10000, 28, 28) and image_tensor(test).dtype == torch.uint8
    assert np.bincount(train["label"]).tolist() == [6000] * 10
    assert np.bincount(test["label"]).tolist() == [1000] * 10


def test_read_idx_round_trip_and_bad_files(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + np.array([2, 3, 4], dtype=">i4").tobytes()
    (tmp_path / "ok.gz").write_bytes(gzip.compress(header + data.tobytes()))
    assert np.array_equal(read_idx(tmp_path / "ok.gz"), data)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01abcd")
    with pytest.raises(DataError, match="not an idx-ubyte"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(header + data.tobytes()[:-1])
    with pytest.raises(DataError, match="header says"):
        read_idx(tmp_path / "short")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "missing.gz")


def test_unknown_dataset_and_split():
    with pytest.raises(ConfigError, match="unknown image dataset 'cifar'"):
        image_dataset("cifar")
    with pytest.raises(ConfigError, match="unknown split"):
        image_dataset("digits", "val")


def test_pixels_round_trip_every_level_exactly():
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    centred = to_model_space(levels)
    assert centred.shape == (1, 1, 16, 16)
    assert float(centred.min()) == -1 + 1 / 256 and float(centred.max()) == 1 - 1 / 256
    assert torch.equal(to_pixels(centred), levels)
    noise = torch.rand(levels.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(to_pixels(to_model_space(levels, noise)), levels)
    assert torch.equal(to_pixels(torch.tensor([[[[-5.0, 5.0]]]])), torch.tensor([[[0, 255]]], dtype=torch.uint8))
