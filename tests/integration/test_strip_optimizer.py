"""Ultralytics' strip_optimizer, as AttnYOLO wraps it: the finished checkpoint is rewritten through a temporary file."""

from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

import attnyolo  # noqa: F401  (installs the wrapper under test)


def _checkpoint(path: Path) -> bytes:
    torch.save({"model": DetectionModel("yolov8n.yaml", verbose=False), "optimizer": {"state": 1}, "epoch": 3}, path)
    return path.read_bytes()


def test_trainer_strips_optimizer_through_a_temporary_file(tmp_path):
    from ultralytics.engine import trainer as engine
    from ultralytics.utils.torch_utils import strip_optimizer as original

    assert engine.strip_optimizer._attnyolo_original is original  # the name final_eval calls is the wrapper
    last = tmp_path / "last.pt"
    _checkpoint(last)
    result = engine.strip_optimizer(last)
    saved = torch.load(last, weights_only=False)
    assert result["optimizer"] is None and saved["optimizer"] is None and saved["epoch"] == -1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # nothing left beside it


def test_crash_while_stripping_leaves_the_checkpoint_intact(tmp_path, monkeypatch):
    from ultralytics.engine import trainer as engine

    last = tmp_path / "last.pt"
    before = _checkpoint(last)

    def dies_mid_write(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")  # what a kill during torch.save leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        engine.strip_optimizer(last)
    assert last.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_stripping_a_non_checkpoint_changes_nothing(tmp_path):
    from ultralytics.engine import trainer as engine

    junk = tmp_path / "best.pt"
    junk.write_bytes(b"not a checkpoint")
    assert engine.strip_optimizer(junk) == {}
    assert junk.read_bytes() == b"not a checkpoint" and sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
