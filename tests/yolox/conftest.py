"""Shared settings and official-checkpoint fixtures for the YOLOX tests."""

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from official_helpers import official_state_dict


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


# ---------------------------------------------------------------------------------- official YOLOX checkpoints
@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory):
    """``official_checkpoint(size)``: a seeded official .pth, written as YOLOX's trainer writes it (once per size)."""
    folder = tmp_path_factory.mktemp("official-yolox")

    @functools.cache
    def make(size: str) -> Path:
        path = folder / f"yolox_{size}.pth"
        # Trainer.save_ckpt's entries: "model" holds the (EMA) state dict, "optimizer" an SGD state dict, and the APs
        # are numpy float64 after an evaluation (YOLOX's COCOEvaluator returns cocoEval.stats[0])
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01, momentum=0.9, nesterov=True)
        ckpt = {"start_epoch": 300, "model": official_state_dict(size), "optimizer": optimizer.state_dict()}
        torch.save({**ckpt, "best_ap": np.float64(40.5), "curr_ap": np.float64(40.5)}, path)
        return path

    return make


@pytest.fixture(scope="session")
def converted_checkpoint(official_checkpoint, tmp_path_factory):
    """``converted_checkpoint(size)``: the seeded official .pth of that size converted by import_weights (once)."""
    from attnyolo.engine.importing import import_weights

    folder = tmp_path_factory.mktemp("converted-yolox")

    @functools.cache
    def make(size: str) -> Path:
        out = folder / f"yolox-{size}.pt"
        import_weights(official_checkpoint(size), out)
        return out

    return make
