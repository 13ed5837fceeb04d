"""Checkpoints that other tools wrote, turned into Ultralytics-native AttnYOLO checkpoints.

A *foreign format* (:class:`ForeignFormat`) is a kind of file this project did not write but can map exactly: it
knows how to recognise such a file without running any code from it, and how to build the equivalent AttnYOLO model
with the file's weights. :func:`import_weights` (``attnyolo import_weights source=... out=...``) writes the result as
an ordinary Ultralytics checkpoint, which every tool and ``YOLO(path)`` then load like one of ours.

The formats are provided by the modules named in :data:`FORMAT_PROVIDERS`; each defines ``FORMAT``.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

# Modules that each define FORMAT = ForeignFormat(...), tried in this order.
FORMAT_PROVIDERS: tuple[str, ...] = ("attnyolo.yolox.official", "attnyolo.yolov5.checkpoint")


@dataclass(frozen=True)
class ForeignFormat:
    """A checkpoint format written by another project, and how to map it.

    Attributes:
        name: Short name, used in messages and reports (``classic-yolov5``, ``yolox-official``).
        description: What wrote such files (project, repository, version).
        detect: ``detect(path) -> bool``; must not unpickle anything that could run code.
        load: ``load(path, model=None, nc=None) -> (checkpoint dict, report dict)``. The checkpoint dict is in
            Ultralytics' format (``{"model": DetectionModel, ...}``); the report says what was mapped.
    """

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[..., tuple[dict[str, Any], dict[str, Any]]]


def formats() -> list[ForeignFormat]:
    """Every known foreign format, in :data:`FORMAT_PROVIDERS` order."""
    return [importlib.import_module(name).FORMAT for name in FORMAT_PROVIDERS]


def detect_format(path: str | Path) -> ForeignFormat | None:
    """The foreign format ``path`` is in, or None (an Ultralytics/AttnYOLO checkpoint, or something unknown)."""
    path = Path(path)
    return next((fmt for fmt in formats() if fmt.detect(path)), None)


def native_checkpoint(model: Any, **extra: Any) -> dict[str, Any]:
    """The dict Ultralytics' ``Model.save`` writes for a model with no training state (half-precision weights)."""
    from copy import deepcopy

    from ultralytics import __version__

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


def import_weights(
    source: str | Path,
    out: str | Path,
    model: str | None = None,
    nc: int | None = None,
    legacy: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert the foreign checkpoint ``source`` into an Ultralytics checkpoint at ``out``.

    Nothing is written at ``out`` unless the conversion succeeds completely (the file is written atomically).

    Args:
        source: A checkpoint in one of :func:`formats`.
        out: Where to write the ``.pt`` file.
        model: A model YAML to map into, where the format allows a choice (otherwise inferred from the file).
        nc: The number of classes, where the format allows a choice.
        legacy: True for YOLOX's legacy weights (README "Legacy models"), which expect ImageNet-normalised input:
            refused, since that normalisation cannot be folded exactly into the model
            (:func:`~attnyolo.yolox.official.legacy_refusal`).
        overwrite: Allow ``out`` to be ``source`` itself (replaced by the conversion); refused otherwise.

    Returns:
        The format's report, with ``format``, ``source`` and ``out`` added.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        IsADirectoryError: ``out`` is a folder.
        CheckpointError: ``source`` is in no known format, references a global no checkpoint holds (named, with the
            opt-in ``trust_checkpoint=True``), cannot be read or mapped, or ``legacy`` is True; the message says which
            and why.
    """
    import torch

    from ..utils.atomic import atomic_path

    if legacy is not False:
        from ..yolox.official import legacy_refusal

        if legacy is not True:
            raise CheckpointError(f"legacy={legacy!r} must be True or False. Fix: legacy=True or leave it out.")
        raise legacy_refusal(legacy)
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise FileNotFoundError(f"source={source} does not exist. Fix: pass the checkpoint file to import.")
    if out.suffix != ".pt":
        raise CheckpointError(f"out={out} must end in .pt, the suffix Ultralytics loads. Fix: e.g. out=imported.pt.")
    if out.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(out))
    if out.exists() and out.resolve() == source.resolve() and not overwrite:
        # the converted file drops what the original holds beyond the weights (optimizer state, training options)
        raise CheckpointError(
            f"out={out} is the source file itself; converting would replace the original, and what it holds beyond "
            "the weights (optimizer state, training options) would be lost. Fix: name another out=, or pass "
            "overwrite=True to replace it."
        )
    fmt = detect_format(source)
    if fmt is None and (why := describe_unreadable(source)):
        raise CheckpointError(
            f"source={source} could not be read as a checkpoint: {why}. Fix: pass the checkpoint file itself (download "
            "or copy it again if it was cut short)."
        )
    if fmt is None:
        from ..integration.checkpoints import screen_checkpoint

        screen_checkpoint(
            source, f"source={source}", foreign=False
        )  # a file that could run code is refused as every reader does
        known = "; ".join(f"{f.name} ({f.description})" for f in formats()) or "none"
        raise CheckpointError(
            f"source={source} is in no format this tool imports. Known formats: {known}. An Ultralytics or AttnYOLO "
            "checkpoint needs no import: pass it to the tools directly."
        )
    from ..integration.checkpoints import checkpoint_label

    with checkpoint_label(f"source={source}"):  # a refusal names the argument the file came from
        ckpt, report = fmt.load(source, model=model, nc=nc)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    return {**report, "format": fmt.name, "source": str(source), "out": str(out)}


def describe_unreadable(path: str | Path) -> str | None:
    """Why ``path`` cannot be a PyTorch checkpoint at all, or None when it may be one.

    PyTorch writes a zip archive (``torch.save`` since 1.6) or, in the legacy format, pickles followed by the tensor
    bytes (:func:`~attnyolo.integration.checkpoints.torch_save_format`). A zip without its central directory, or
    pickles that break off, are a truncated file; anything else is named by what it looks like.
    """
    import zipfile

    from ..integration.pickles import (
        LEGACY_MAGIC,
        MAX_PICKLE_BYTES,
        legacy_pickles,
        legacy_storage_excess,
        torch_save_format,
    )

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
