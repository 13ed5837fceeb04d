"""Settings of the classic YOLOv5 tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """One torch thread: the small convs here run slower with two threads on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
