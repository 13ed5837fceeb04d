"""Training plots are written atomically, and a plot thread that fails prints no traceback (integration/plots.py).

A full disk is simulated at the write: ``Path.write_bytes`` writes half the bytes, then fails with ENOSPC and no file
name, as a failed ``write()`` does.
"""

import errno
import threading
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from ultralytics.utils.metrics import plot_pr_curve

from attnyolo.integration.plots import atomic_plots


@pytest.fixture
def full_disk(monkeypatch):
    """Make writes of the named files fail half way with ENOSPC; returns the set of names to fail."""
    names, real = set(), Path.write_bytes

    def write_bytes(self, data):
        if any(self.name.startswith(f".{name}.") or self.name == name for name in names):
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    return names


def pr_curve(path):
    """Ultralytics' precision-recall plot (matplotlib's savefig), as validation draws it."""
    plot_pr_curve(np.linspace(0, 1, 1000), [np.ones(1000)], np.ones((1, 10)), path)


def test_a_plot_that_cannot_be_written_leaves_no_file_and_names_it(full_disk, tmp_path):
    full_disk.add("BoxPR_curve.png")
    with pytest.raises(OSError) as failed, atomic_plots(tmp_path):
        pr_curve(tmp_path / "BoxPR_curve.png")
    assert (failed.value.errno, failed.value.filename) == (errno.ENOSPC, str(tmp_path / "BoxPR_curve.png"))
    assert list(tmp_path.iterdir()) == []  # no empty or truncated PNG, no temporary file
    assert not hasattr(Figure.savefig, "_attnyolo_original")  # matplotlib is itself again after the block


def test_plots_are_complete_and_files_elsewhere_are_left_alone(tmp_path):
    (tmp_path / "run").mkdir()
    with atomic_plots(tmp_path / "run"):
        pr_curve(tmp_path / "run" / "BoxPR_curve.png")
        Image.new("RGB", (8, 8)).save(tmp_path / "run" / "train_batch0.jpg")
        pr_curve(tmp_path / "elsewhere.png")  # outside the run's folder: matplotlib's own write
    assert Image.open(tmp_path / "run" / "BoxPR_curve.png").format == "PNG"
    assert Image.open(tmp_path / "run" / "train_batch0.jpg").format == "JPEG"
    assert (tmp_path / "elsewhere.png").stat().st_size > 0


def plot_images(path):
    """Stands in for Ultralytics' plot_images: a PIL save in a thread named after the function (@threaded)."""
    Image.new("RGB", (64, 64)).save(path)


def test_a_plot_thread_that_fails_is_one_warning_not_a_traceback(full_disk, tmp_path, capsys):
    full_disk.add("train_batch0.jpg")
    hook = threading.excepthook  # Python's, or pytest's, which would report the thread's error itself
    with pytest.warns(UserWarning) as caught, atomic_plots(tmp_path):
        thread = threading.Thread(target=plot_images, args=(tmp_path / "train_batch0.jpg",))
        thread.start()
        assert thread.name.endswith("(plot_images)")
        thread.join()
    assert [str(w.message) for w in caught] == [
        f"cannot write {tmp_path / 'train_batch0.jpg'}: the disk is full (ENOSPC). Fix: free some space, or write "
        "elsewhere with project= (out= for data tools)."
    ]
    assert capsys.readouterr().err == "" and list(tmp_path.iterdir()) == []
    assert threading.excepthook is hook


def test_a_plot_thread_failure_is_not_repeated_when_the_run_fails_anyway(full_disk, tmp_path, capsys, recwarn):
    full_disk.add("train_batch0.jpg")
    with pytest.raises(OSError, match="No space left"), atomic_plots(tmp_path):
        threading.Thread(target=plot_images, args=(tmp_path / "train_batch0.jpg",)).start()
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "last.pt"))  # the run's own error
    assert capsys.readouterr().err == "" and not [w for w in recwarn if "cannot write" in str(w.message)]


def test_the_trainer_trains_inside_atomic_plots(tmp_path, monkeypatch):
    from ultralytics.models.yolo.detect import DetectionTrainer

    from attnyolo.engine.trainer import AttnDetectionTrainer

    seen = []
    monkeypatch.setattr(
        DetectionTrainer, "train", lambda self: seen.append(hasattr(Figure.savefig, "_attnyolo_original"))
    )
    trainer = object.__new__(AttnDetectionTrainer)  # no set-up needed: only train() is run, around a stub
    trainer.save_dir = tmp_path
    trainer.train()
    assert seen == [True]
