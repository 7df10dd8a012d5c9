import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors run ~10x slower with 2 OpenMP threads on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
