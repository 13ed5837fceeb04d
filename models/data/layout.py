"""The YOLO layout both dataset converters write: linked images, label files, data.yaml, and the box-to-row rule.

Used by :mod:`attnyolo.data.convert_voc` and :mod:`attnyolo.data.convert_coco` (entry point:
:func:`attnyolo.data.convert.convert_dataset`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from ..utils.atomic import atomic_path, write_text_atomic

_SHOWN_DROPPED = 3  # examples in the dropped-box warning
_replaced: list[list[Path]] = []  # the files link/write_labels replace, while a conversion tracks them (track_replaced)


def contained(root: Path, relative: str | Path, entry: str, resolve: bool = False) -> Path:
    """``root / relative`` when it stays inside ``root``; a path from a dataset's contents must never leave its folder.

    Args:
        root: The folder the path must stay in (``out=``, an image or annotation folder).
        relative: The path the dataset names (a COCO ``file_name``, a VOC image id).
        entry: Where the dataset names it, for the message (file and entry).
        resolve: Also follow the symlinks that exist along the path (for paths written to: a link inside ``out=``
            that points elsewhere is refused too); otherwise ``..`` and absolute paths only (a dataset read through a
            symlinked folder stays readable).

    Raises:
        ValueError: One line naming the entry and where it leads; nothing is written.
    """
    path = root / relative
    target = Path(os.path.normpath(path))
    base = Path(os.path.normpath(root))
    if resolve and (target == base or base in target.parents):
        # the folders along the path, symlinks followed; the file itself is replaced, never written through
        base, target = root.resolve(), target.parent.resolve() / target.name
    if target != base and base not in target.parents:
        raise ValueError(
            f"{entry} leads to {target}, outside {root}; nothing was written. Fix: dataset paths must be relative and "
            "stay inside their folder (no '..', no absolute path, no symlink in out= that leads elsewhere)."
        )
    return path


@contextlib.contextmanager
def track_replaced() -> Iterator[list[Path]]:
    """Collect, inside the block, the existing files that :func:`link` and :func:`write_labels` replace."""
    _replaced.append([])
    try:
        yield _replaced[-1]
    finally:
        _replaced.pop()


def _note_replaced(path: Path) -> None:
    """Record ``path`` as replaced when it exists and a conversion tracks replacements."""
    if _replaced and (path.is_symlink() or path.exists()):
        _replaced[-1].append(path)


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


def warn_replaced(out: Path, replaced: list[Path]) -> None:
    """One warning: how many existing files under ``out`` a conversion replaced, and the first few."""
    if replaced:
        shown = ", ".join(str(path.relative_to(out)) for path in replaced[:_SHOWN_DROPPED])
        more = ", ..." if len(replaced) > _SHOWN_DROPPED else ""
        warnings.warn(
            f"out={out} already held {len(replaced)} file(s) this conversion replaced: {shown}{more}",
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
        _note_replaced(dst)
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
    _note_replaced(path)
    write_text_atomic(path, "".join(f"{row}\n" for row in rows), durable=False)


def yolo_row(cls: int, x0: float, y0: float, x1: float, y1: float, width: float, height: float) -> str | None:
    """YOLO row for a continuous pixel box clipped to the image, or None when nothing of it is left."""
    x0, x1 = max(0.0, min(x0, width)), max(0.0, min(x1, width))
    y0, y1 = max(0.0, min(y0, height)), max(0.0, min(y1, height))
    if x1 <= x0 or y1 <= y0:
        return None
    cx, cy, w, h = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"
