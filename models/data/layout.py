"""The YOLO layout both dataset converters write: linked images, label files, data.yaml, and the box-to-row rule.

Used by :mod:`attnyolo.data.convert_voc` and :mod:`attnyolo.data.convert_coco` (entry point:
:func:`attnyolo.data.convert.convert_dataset`).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path

import yaml

from ..utils.atomic import atomic_path, write_text_atomic

_SHOWN_DROPPED = 3  # examples in the dropped-box warning


def warn_dropped_boxes(dropped: list[str]) -> None:
    """One warning: how many boxes could not become labels, and the first few."""
    if dropped:
        shown = "; ".join(dropped[:_SHOWN_DROPPED]) + ("; ..." if len(dropped) > _SHOWN_DROPPED else "")
        warnings.warn(
            f"{len(dropped)} box(es) dropped: inverted, zero-size or entirely outside their image, so no label can "
            f"hold them: {shown}",
            UserWarning,
            stacklevel=3,
        )


def write_data_yaml(out: Path, data: dict) -> Path:
    """Write ``out/data.yaml`` (path first, as Ultralytics' own dataset files do) and return its path."""
    return write_text_atomic(out / "data.yaml", yaml.safe_dump({"path": str(out), **data}, sort_keys=False))


def link(src: Path, dst: Path) -> None:
    """Make ``dst`` point at ``src``: a symlink where allowed (no copy of large datasets), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if dst.resolve() == src.resolve():
            return  # already the file itself (in-place conversion) or a link to it; never delete the original
        dst.unlink()
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # e.g. Windows without developer mode, or file systems without symlinks
        with atomic_path(dst, durable=False) as tmp:
            shutil.copy2(src, tmp)


def write_labels(path: Path, rows: Iterable[str]) -> None:
    """Write one YOLO label file (an empty file for an image without objects: a known background image).

    Atomically, without a disk flush per file (a dataset has many): a kill or a full disk leaves no truncated label.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(f"{row}\n" for row in rows), durable=False)


def yolo_row(cls: int, x0: float, y0: float, x1: float, y1: float, width: float, height: float) -> str | None:
    """YOLO row for a continuous pixel box clipped to the image, or None when nothing of it is left."""
    x0, x1 = max(0.0, min(x0, width)), max(0.0, min(x1, width))
    y0, y1 = max(0.0, min(y0, height)), max(0.0, min(y1, height))
    if x1 <= x0 or y1 <= y0:
        return None
    cx, cy, w, h = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"
