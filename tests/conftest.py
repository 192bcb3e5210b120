import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run many small tensor ops: one thread beats several competing for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
