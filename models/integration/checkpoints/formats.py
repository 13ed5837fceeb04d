"""The checkpoint formats other projects write (registered by the families), and what a reader of them shares.

A *foreign format* (:class:`~attnyolo.integration.plugins.ForeignFormat`) is a kind of file this project did not write
but can map exactly: it knows how to recognise such a file without running any code from it, and how to build the
equivalent AttnYOLO model with the file's weights. The families register theirs
(:func:`~attnyolo.integration.plugins.register_format`): official YOLOX .pth files (:mod:`attnyolo.yolox.official`)
and classic YOLOv5 checkpoints (:mod:`attnyolo.yolov5.checkpoint`). Every reader of checkpoints asks
:func:`detect_format` first, so such a file is always read by its format's loader.
"""

from __future__ import annotations

import zipfile
from copy import deepcopy
from datetime import datetime
from pathlib import Path
from typing import Any

from ultralytics import __version__

from .. import plugins
from ..plugins import ForeignFormat
from .pickles import LEGACY_MAGIC, MAX_PICKLE_BYTES, legacy_pickles, legacy_storage_excess, torch_save_format


def formats() -> list[ForeignFormat]:
    """Every registered foreign format, in the order the families registered them (the order they are tried)."""
    return list(plugins.FORMATS.values())


def detect_format(path: str | Path) -> ForeignFormat | None:
    """The foreign format ``path`` is in, or None (an Ultralytics/AttnYOLO checkpoint, or something unknown)."""
    path = Path(path)
    return next((fmt for fmt in formats() if fmt.detect(path)), None)


def native_checkpoint(model: Any, **extra: Any) -> dict[str, Any]:
    """The dict Ultralytics' ``Model.save`` writes for a model with no training state (half-precision weights)."""
    return {
        "date": datetime.now().isoformat(),
        "version": __version__,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "epoch": -1,
        "best_fitness": None,
        "model": deepcopy(model).half(),
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": {},
        "train_metrics": None,
        "train_results": None,
        **extra,
    }


def describe_unreadable(path: str | Path) -> str | None:
    """Why ``path`` cannot be a PyTorch checkpoint at all, or None when it may be one.

    PyTorch writes a zip archive (``torch.save`` since 1.6) or, in the legacy format, pickles followed by the tensor
    bytes (:func:`~attnyolo.integration.checkpoints.torch_save_format`). A zip without its central directory, or
    pickles that break off, are a truncated file; anything else is named by what it looks like.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "the file is empty"
    fmt = torch_save_format(path)
    if fmt == "zip":
        if not zipfile.is_zipfile(path):
            return "it is a truncated or damaged zip archive (an interrupted download or copy?)"
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        return f"its zip archive is damaged (member {bad} fails its checksum)" if bad else None
    if fmt == "pickle":
        if LEGACY_MAGIC not in head[:32]:
            return "it is a pickle, but not one torch.save wrote (it lacks torch's magic number)"
        # Its pickles (header, object, storage keys) come before the tensor bytes; a file that breaks off inside them
        # cannot be read, whatever it holds. Disassembled only (pickletools), never loaded; the scan is the one the
        # check of what the file references uses, so the file is scanned once.
        scan = legacy_pickles(path)
        if scan.oversized:  # before damage: pickles cut off at the limit are too large, not a truncated file
            return (
                f"its pickles run past {MAX_PICKLE_BYTES:,} bytes, larger than any checkpoint's pickle (it holds the "
                "model's structure; the tensors are stored apart)"
            )
        if scan.damaged:
            return f"it is a truncated or damaged file in torch's pre-1.6 format: {scan.damaged}"
        if scan.storage_bytes > path.stat().st_size:
            excess = legacy_storage_excess(scan.storage_bytes, path.stat().st_size)
            return f"it is a truncated or damaged file in torch's pre-1.6 format: {excess}"
        return None
    if b"\x00" in head:  # binary, but neither of torch's formats
        return "it is neither a zip archive nor a pickle, the two formats torch.save writes"
    return f"it is a text file (it starts {head.decode('utf-8', errors='replace').strip()[:40]!r})"
