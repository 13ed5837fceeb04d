"""Shared settings for the YOLOX tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """Run each YOLOX test on one torch thread, then restore the setting.

    On a 2-core machine shared with other jobs, two OpenMP threads spin against each other and the small convs these
    tests run became 10-50x slower than on one thread (measured); one thread keeps the file's run time predictable.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
