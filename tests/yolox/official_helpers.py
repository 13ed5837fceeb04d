"""Helpers for the tests against the official YOLOX code: its key shapes, the seeded weights, its stored outputs.

The fixtures in tests/fixtures/yolox/ were written by the official YOLOX code (see tests/fixtures/README.md) for
weights that ``seeded_weights.seeded_state_dict`` rebuilds from the key names and shapes alone.
"""

import functools
import json
from pathlib import Path

import numpy as np
import torch
from seeded_weights import seeded_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yolox"


@functools.cache
def official_keys() -> dict:
    """tests/fixtures/yolox/official_keys.json: per size, every official key, shape and dtype, and the exp settings."""
    return json.loads((FIXTURES / "official_keys.json").read_text())["sizes"]


def official_shapes(size: str) -> dict[str, tuple[int, ...]]:
    """Every official state-dict key of a YOLOX size and its shape, in the official order."""
    return {key: tuple(shape) for key, shape, _ in official_keys()[size]["keys"]}


def official_state_dict(size: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The seeded weights the fixtures were made with, under the official key names."""
    return {k: torch.from_numpy(v) for k, v in seeded_state_dict(official_shapes(size), seed).items()}


def stored(name: str) -> dict[str, np.ndarray]:
    """An .npz fixture as a dict of arrays (``outputs_nano``, ``outputs_s``, ``loss_cases``)."""
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


@functools.cache
def loss_cases() -> dict:
    """tests/fixtures/yolox/loss_cases.json: the official loss cases' labels, assignments and losses."""
    return json.loads((FIXTURES / "loss_cases.json").read_text())
