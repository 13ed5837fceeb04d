"""Writing files so that a crash, a kill or a full disk never leaves a truncated file where a complete one was.

Every file this package writes for a user (checkpoints, metrics, predictions, labels, plots, generated YAMLs) goes
through :func:`atomic_path`: the content is written to a temporary file in the same folder, flushed to disk, and
renamed over the target in one step (``os.replace`` is atomic on POSIX and on Windows for paths on one volume). If
anything fails before the rename, the temporary file is removed and the target is left as it was; a temporary file
that a killed process could not remove is removed by the next write of the same file
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2

# What temporary_sibling names: .<name>.<pid>.<tag>, the tags this package uses being tmp, strip.tmp, tmp.<ext>.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:[A-Za-z0-9_]+\.)?tmp(?:\.[A-Za-z0-9]+)?$")


def temporary_sibling(path: str | Path, tag: str = "tmp") -> Path:
    """A hidden temporary name next to ``path``, unique per process: ``.<name>.<pid>.<tag>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{tag}")


def temporary_target(tmp: str | Path) -> Path | None:
    """The file a temporary name of :func:`temporary_sibling` stands for (``.last.pt.123.tmp`` -> ``last.pt``)."""
    tmp = Path(tmp)
    match = _TEMPORARY.match(tmp.name)
    return tmp.with_name(match["name"]) if match else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (POSIX); True where that cannot be told, so nothing in use is removed."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files that killed processes left behind: for ``path`` (a file) or in it (a folder).

    A process killed mid-write cannot remove its temporary file; the next write of the same file does, so leftovers
    never accumulate. Files of processes that still run are kept.

    Returns:
        The files removed.
    """
    path = Path(path)
    folder, prefix = (path, ".") if path.is_dir() else (path.parent, f".{path.name}.")
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed  # no folder yet: nothing left over
    for tmp in candidates:
        match = _TEMPORARY.match(tmp.name)
        if match and int(match["pid"]) != os.getpid() and not process_alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def name_failure(error: OSError, path: str | Path) -> OSError:
    """Give ``error`` the file name ``path`` when it names none, and return it.

    A failed ``write()``, ``flush()`` or ``fsync()`` raises an OSError without a file name (only ``open`` names one),
    and the one-line message (:func:`attnyolo.utils.cli.os_failure_message`) should say which file could not be
    written.
    """
    if error.filename is None:
        error.filename = str(path)
    return error


@contextlib.contextmanager
def failures_name(path: str | Path) -> Iterator[None]:
    """Inside the block, an OSError that names no file is given the name ``path`` (:func:`name_failure`)."""
    try:
        yield
    except OSError as error:
        name_failure(error, path)
        raise


def replace_atomically(tmp: str | Path, final: str | Path, durable: bool = True) -> None:
    """Flush ``tmp`` to disk (unless not ``durable``), then rename it over ``final``."""
    if durable:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | Path, tag: str = "tmp", durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    Args:
        path: The file to (over)write.
        tag: Suffix of the temporary name, so a leftover from a killed process says what wrote it (end it in the
            file's own extension where the writer picks the format by name, e.g. ``tmp.mp4``).
        durable: Also flush to disk before the rename, and remove leftovers of killed processes first. False for
            the thousands of small files of a dataset, which then cost one rename each: a kill or a failed write
            still never leaves a truncated file, a power cut may.

    Yields:
        The temporary path, in the same folder as ``path``.

    Examples:
        >>> with atomic_path("metrics.json") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    if durable:
        remove_stale_temporaries(path)
    tmp = temporary_sibling(path, tag)
    try:
        with failures_name(path):
            yield tmp
            if tmp.exists():  # a writer may decide to write nothing; then the target stays as it was
                replace_atomically(tmp, path, durable)
    finally:
        tmp.unlink(missing_ok=True)


def write_failure(path: str | Path) -> OSError:
    """The OS error behind a write that a library reported only as failed, naming ``path``.

    OpenCV's ``imwrite`` returns False and its ``VideoWriter`` only logs; the cause is found by writing and flushing a
    small probe file next to ``path`` (a full disk, a read-only or vanished folder). Where the probe succeeds, the
    failure is reported as an input/output error.
    """
    path = Path(path)
    probe = temporary_sibling(path, "probe.tmp")
    try:
        with open(probe, "wb") as f:
            f.write(bytes(64 * 1024))
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        return OSError(error.errno, error.strerror, str(path))
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return OSError(errno.EIO, "the writer reported a failure", str(path))


def write_text_atomic(path: str | Path, text: str, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path (``durable`` as for :func:`atomic_path`)."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and return the path (``durable`` as for :func:`atomic_path`)."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(payload, indent=indent))


def write_image_atomic(path: str | Path, image: Any, params: list[int] | None = None, durable: bool = True) -> Path:
    """Encode a BGR image (numpy array) by ``path``'s extension with OpenCV and write it atomically.

    Args:
        path: The image file; its extension picks the format.
        image: The BGR image.
        params: OpenCV encoder parameters, as for ``cv2.imwrite`` (e.g. ``[cv2.IMWRITE_JPEG_QUALITY, 95]``).
        durable: As for :func:`atomic_path`.

    Raises:
        ValueError: OpenCV cannot encode the image in that format (``cv2.imwrite`` would only return False).
    """
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", image, params or [])
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode an image as {path.suffix or '.png'}.")
    return write_bytes_atomic(path, encoded.tobytes(), durable)
