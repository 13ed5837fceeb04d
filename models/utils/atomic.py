"""Writing files so that a crash, a kill or a full disk never leaves a truncated file where a complete one was.

Every file this package writes for a user (checkpoints, metrics, predictions, labels, plots, generated YAMLs) goes
through :func:`atomic_path`: the content is written to a temporary file in the same folder, flushed to disk, and
renamed over the target in one step (``os.replace`` is atomic on POSIX and on Windows for paths on one volume). If
anything fails before the rename, the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temporary_sibling(path: str | Path, tag: str = "tmp") -> Path:
    """A hidden temporary name next to ``path``, unique per process: ``.<name>.<pid>.<tag>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{tag}")


def replace_atomically(tmp: str | Path, final: str | Path) -> None:
    """Flush ``tmp`` to disk, then rename it over ``final``."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | Path, tag: str = "tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    Args:
        path: The file to (over)write.
        tag: Suffix of the temporary name, so a leftover from a killed process says what wrote it.

    Yields:
        The temporary path, in the same folder as ``path``.

    Examples:
        >>> with atomic_path("metrics.json") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    tmp = temporary_sibling(path, tag)
    try:
        yield tmp
        if tmp.exists():  # a writer may decide to write nothing; then the target stays as it was
            replace_atomically(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(payload, indent=indent))


def write_image_atomic(path: str | Path, image: Any) -> Path:
    """Encode a BGR image (numpy array) by ``path``'s extension with OpenCV and write it atomically.

    Raises:
        ValueError: OpenCV cannot encode the image in that format (``cv2.imwrite`` would only return False).
    """
    import cv2

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode an image as {path.suffix or '.png'}.")
    return write_bytes_atomic(path, encoded.tobytes())
