"""Image data sets as `datasets.Dataset`s with columns ``image`` (uint8 [H, W]) and ``label`` (a ``ClassLabel``).

- ``fashion_mnist``: Zalando's Fashion-MNIST (Xiao et al., 2017), 28×28, 60 000 train / 10 000 test, read from the
  idx files of the Debian package ``dataset-fashion-mnist`` (``bash scripts/setup_assets.sh`` installs it).
- ``digits``: scikit-learn's ``load_digits`` (UCI optical digits), 8×8 with 17 grey levels 0..16 scaled to 0..255;
  1 797 images, split by a fixed seeded permutation into 1 497 train / 300 test.

Each split is built once from the installed package and cached with ``save_to_disk`` under
``<assets>/images/<name>-<split>`` (see :func:`dlm.training.corpora.assets_dir`); later calls memory-map it.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Callable

import datasets
import numpy as np
import torch

from dlm.errors import ConfigError, DataError
from dlm.training.corpora import assets_dir

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
DIGITS_CLASSES = tuple(str(d) for d in range(10))
DIGITS_TEST_SIZE = 300
SPLITS = ("train", "test")
IDX_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """An idx-ubyte array (LeCun's MNIST format: magic 0x0000 08 <ndim>, big-endian int32 dims, then uint8 data)."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}",
                        hint="bash scripts/setup_assets.sh installs the Debian package dataset-fashion-mnist") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE:
        raise DataError(f"{path} is not an idx-ubyte file")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} holds {data.size} bytes of data, its header says {dims}")
    return data.reshape(dims)


def fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of a Fashion-MNIST split from the Debian package's idx files."""
    root = Path(os.environ.get("DLM_FASHION_MNIST", FASHION_MNIST_DIR))
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"Fashion-MNIST {split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 8, 8], labels int64 [N]) of scikit-learn's digits: levels 0..16 → round(255·v/16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    rows = order[DIGITS_TEST_SIZE:] if split == "train" else order[:DIGITS_TEST_SIZE]
    return images[rows], bunch.target[rows].astype(np.int64)


DATASETS: dict[str, tuple[Callable[[str], tuple[np.ndarray, np.ndarray]], tuple[str, ...]]] = {
    "fashion_mnist": (fashion_mnist_arrays, FASHION_MNIST_CLASSES),
    "digits": (digits_arrays, DIGITS_CLASSES),
}


def check_dataset_name(name: str) -> None:
    """ConfigError unless ``name`` is a known image data set."""
    if name not in DATASETS:
        raise ConfigError(f"unknown image dataset {name!r}", hint=f"choose one of {', '.join(DATASETS)}")


def class_names(name: str) -> tuple[str, ...]:
    """The class names of data set ``name``, in label order."""
    check_dataset_name(name)
    return DATASETS[name][1]


def build_image_dataset(name: str, split: str) -> datasets.Dataset:
    """The ``datasets.Dataset`` of one split, built from the installed package (no cache)."""
    read, names = DATASETS[name]
    images, labels = read(split)
    features = datasets.Features({
        "image": datasets.Array2D(shape=images.shape[1:], dtype="uint8"),
        "label": datasets.ClassLabel(names=list(names)),
    })
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


def image_dataset(name: str, split: str = "train", cache: bool = True) -> datasets.Dataset:
    """Split ``split`` of image data set ``name`` (``fashion_mnist`` or ``digits``), cached under the assets directory."""
    check_dataset_name(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
    if not cache:
        return build_image_dataset(name, split)
    path = assets_dir() / "images" / f"{name}-{split}"
    if not path.is_dir():
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        datasets.disable_progress_bars()
        try:
            build_image_dataset(name, split).save_to_disk(str(tmp))
        finally:
            datasets.enable_progress_bars()
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    return datasets.load_from_disk(str(path))


def image_tensor(ds: datasets.Dataset) -> torch.Tensor:
    """All images of ``ds`` as one uint8 tensor [N, H, W]."""
    return torch.from_numpy(np.ascontiguousarray(ds.with_format("numpy")["image"], dtype=np.uint8))
