"""Checkpoints that other tools wrote, turned into Ultralytics-native AttnYOLO checkpoints.

A *foreign format* (:class:`ForeignFormat`) is a kind of file this project did not write but can map exactly: it
knows how to recognise such a file without running any code from it, and how to build the equivalent AttnYOLO model
with the file's weights. :func:`import_weights` (``attnyolo import_weights source=... out=...``) writes the result as
an ordinary Ultralytics checkpoint, which every tool and ``YOLO(path)`` then load like one of ours.

The formats are registered by the families (:func:`attnyolo.integration.plugins.register_format`);
:mod:`attnyolo.integration.checkpoints.formats` recognises them.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..integration.checkpoints import checkpoint_label, screen_checkpoint
from ..integration.checkpoints.formats import describe_unreadable, detect_format, formats, native_checkpoint  # noqa: F401
from ..integration.plugins import ForeignFormat  # noqa: F401  (its documented home before the registry)
from ..utils.atomic import atomic_path
from ..yolox.official import legacy_refusal


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
    if legacy is not False:
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
        screen_checkpoint(
            source, f"source={source}", foreign=False
        )  # a file that could run code is refused as every reader does
        known = "; ".join(f"{f.name} ({f.description})" for f in formats()) or "none"
        raise CheckpointError(
            f"source={source} is in no format this tool imports. Known formats: {known}. An Ultralytics or AttnYOLO "
            "checkpoint needs no import: pass it to the tools directly."
        )
    with checkpoint_label(f"source={source}"):  # a refusal names the argument the file came from
        ckpt, report = fmt.load(source, model=model, nc=nc)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    return {**report, "format": fmt.name, "source": str(source), "out": str(out)}
