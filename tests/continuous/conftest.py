"""Tiny tensors run fastest on one thread; on a loaded 2-core machine, more threads are 10–30× slower."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
