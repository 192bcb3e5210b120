"""Training: the data pipeline (documents, tokenisation, packing) and, later, the trainer."""

from dlm.training.corpora import load_corpus
from dlm.training.data import DataConfig, build_datasets

__all__ = ["DataConfig", "build_datasets", "load_corpus"]
