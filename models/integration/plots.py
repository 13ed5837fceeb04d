"""Ultralytics' training plots, written atomically and failing without tracebacks (:func:`atomic_plots`).

Ultralytics writes its plots with matplotlib's ``Figure.savefig`` (curves, confusion matrix, results.png, labels.jpg)
and PIL's ``Image.save`` (the batch mosaics of ``plot_images``, which runs in a thread of its own). On a full disk
both leave truncated or empty images (PIL, which matplotlib's PNGs go through, ignores a short write), and a failure
in a plot thread prints a traceback (Python's default ``threading.excepthook``) in the middle of the run. Inside
:func:`atomic_plots` both render the files of the run's folder into memory, which
:func:`attnyolo.utils.atomic.write_bytes_atomic` then writes, and a plot thread's ``OSError`` is kept and reported
once, as one warning line (or not at all when the run fails anyway: its error says why).

The ``plot_files`` self-check (:mod:`attnyolo.integration.self_checks`) proves that Ultralytics' plots still write
through these two functions.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image

from ..utils.atomic import write_bytes_atomic
from ..utils.cli import os_failure_message

PLOT_THREAD = "(plot_images)"  # Python names a thread "Thread-N (<target>)"; Ultralytics' @threaded plot_images


def _target(fp, folder: Path) -> Path | None:
    """The file ``fp`` names when it is a path with a suffix inside ``folder``, else None (written as before)."""
    if not isinstance(fp, (str, os.PathLike)) or not Path(fp).suffix:
        return None  # a file object, or a name the writer completes with its default format
    path = Path(fp)
    resolved = path.resolve()
    return path if resolved.parent == folder or folder in resolved.parents else None


def _through_memory(path: Path, render: Callable[[io.BytesIO], object]) -> None:
    """Render into memory, then write the bytes atomically.

    PIL's encoders (also behind matplotlib's PNGs) write to a file's descriptor and ignore a short write, so on a
    full disk they leave a truncated image and report success; Python's file writes raise instead.
    """
    buffer = io.BytesIO()
    render(buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _atomic_savefig(original: Callable, folder: Path) -> Callable:
    """Wrap matplotlib's ``Figure.savefig``, writing a file of ``folder`` through memory and a temporary file."""

    @functools.wraps(original)  # pyplot, imported later, checks the method's qualified name
    def savefig(self, fname, *args, **kwargs):
        """Save as matplotlib does; a file of the run's folder appears only once complete."""
        path = _target(fname, folder)
        if path is None:
            return original(self, fname, *args, **kwargs)
        kwargs.setdefault("format", path.suffix[1:])  # matplotlib takes it from the name, which memory lacks
        _through_memory(path, lambda buffer: original(self, buffer, *args, **kwargs))

    savefig._attnyolo_original = original
    return savefig


def _atomic_image_save(original: Callable, folder: Path) -> Callable:
    """Wrap PIL's ``Image.save``, writing a file of ``folder`` through memory and a temporary file."""

    @functools.wraps(original)
    def save(self, fp, format=None, **params):
        """Save as PIL does; a file of the run's folder appears only once complete."""
        path = _target(fp, folder)
        image_format = format or (Image.registered_extensions().get(path.suffix.lower()) if path else None)
        if path is None or image_format is None:
            return original(self, fp, format, **params)
        _through_memory(path, lambda buffer: original(self, buffer, image_format, **params))

    save._attnyolo_original = original
    return save


def _plot_threads() -> list[threading.Thread]:
    """The running threads of Ultralytics' ``plot_images``."""
    return [t for t in threading.enumerate() if t.name.endswith(PLOT_THREAD) and t is not threading.current_thread()]


@contextlib.contextmanager
def atomic_plots(folder: str | Path) -> Iterator[list[OSError]]:
    """Inside the block, Ultralytics' plots in ``folder`` are written atomically and plot threads fail quietly.

    Args:
        folder: The run's folder (``trainer.save_dir``); files elsewhere are written as before.

    Yields:
        The OS errors of plot threads so far. After a block that ended normally, any are reported in one warning
        line; after one that raised, they are dropped (the run's own error is the one line).
    """
    from matplotlib.figure import Figure  # heavy: imported only when a run's plots are written

    folder = Path(folder).resolve()
    failures: list[OSError] = []
    previous_hook = threading.excepthook

    def hook(args) -> None:
        """Keep a plot thread's OS error; hand everything else to the previous hook."""
        name = getattr(args.thread, "name", "") or ""
        if isinstance(args.exc_value, OSError) and name.endswith(PLOT_THREAD):
            failures.append(args.exc_value)
        else:
            previous_hook(args)

    originals = {Figure: Figure.savefig, Image.Image: Image.Image.save}
    try:
        # Process-wide, like the trainer's own state: one training per process at a time, as Ultralytics assumes.
        Figure.savefig = _atomic_savefig(originals[Figure], folder)
        Image.Image.save = _atomic_image_save(originals[Image.Image], folder)
        threading.excepthook = hook
        yield failures
    finally:
        for thread in _plot_threads():  # a thread still plotting must not outlive the hook and print a traceback
            thread.join(timeout=60)
        Figure.savefig, Image.Image.save = originals[Figure], originals[Image.Image]
        threading.excepthook = previous_hook
    if failures:  # reached only when the block ended normally
        more = f" {len(failures) - 1} more plots were not written either." if len(failures) > 1 else ""
        warnings.warn(os_failure_message(failures[0]) + more, UserWarning, stacklevel=3)
