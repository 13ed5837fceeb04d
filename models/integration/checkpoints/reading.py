"""Reading a checkpoint: sniffed, screened, then handed to its reader.

A file in a registered foreign format (:mod:`.formats`) goes to its format's reader; any other is screened
(:mod:`.screen`) and read by torch's weights-only unpickler with the allowlist. Ultralytics' loader goes through here.
"""

from __future__ import annotations

import functools
import pickle
import types
from pathlib import Path
from typing import Any

import torch
from ultralytics.utils.checks import check_suffix
from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

from ...errors import CheckpointError, first_line
from ...utils.cli import checkpoints_trusted
from .formats import detect_format
from .refusals import (
    _damaged,
    checkpoint_label,
    checkpoint_label_of,
    old_torch_refusal,
    weights_only_refusal,
)
from .screen import _with_model, allow_globals, load_weights_only, referenced_globals


def _foreign(path: Path) -> dict[str, Any] | None:
    """The checkpoint dict of a file in a foreign format AttnYOLO maps without unpickling code, else None."""
    fmt = detect_format(path)
    return fmt.load(path)[0] if fmt is not None else None


def read_checkpoint(path: str | Path, trust: bool = False, label: str | None = None, mmap: bool = False) -> Any:
    """Read a checkpoint without running code from it; refuse one that references anything checkpoints never hold.

    The file is read with ``torch.load(weights_only=True)`` after registering the globals it references, each checked
    by :func:`allowed_global`. A file in a foreign format that :mod:`.formats` recognises (e.g. a
    classic YOLOv5 checkpoint) is read by that format's loader, which maps it without unpickling its code.

    Args:
        path: The checkpoint file.
        trust: Read with full unpickling (the user vouches for the file); also on when :func:`checkpoints_trusted`.
        label: How messages name the file (default: the path), e.g. ``model=best.pt``.
        mmap: Map the tensors instead of reading them (zip checkpoints), to look at a large file's metadata cheaply.

    Returns:
        What the file holds: for Ultralytics and AttnYOLO checkpoints the checkpoint dict.

    Raises:
        CheckpointError: A disallowed global (naming the first one and the opt-in), or a damaged file.
    """
    path = Path(path)
    label = label or checkpoint_label_of(path)
    if trust or checkpoints_trusted():
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
            raise _damaged(label, error) from None
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise old_torch_refusal(label)
    names, legacy = referenced_globals(path, label)
    try:
        allow_globals(names, label)
    except CheckpointError:
        foreign = _foreign(path)
        if foreign is not None:
            return foreign
        raise
    try:
        return load_weights_only(path, mmap=mmap and not legacy)
    except pickle.UnpicklingError as error:
        raise weights_only_refusal(label, error, legacy) from None
    except (RuntimeError, EOFError) as error:
        raise _damaged(label, error) from None


def load_trusted(path: str | Path, substitutes: dict[str, Any] | None = None) -> Any:
    """Unpickle ``path`` in full, running what it names: only for a file the user vouches for (``trust_checkpoint``).

    Args:
        path: The file.
        substitutes: Globals to resolve to the given objects instead of importing them (``module.Name`` -> object),
            e.g. the code-free stand-ins of a classic YOLOv5 checkpoint's classes.

    Raises:
        CheckpointError: The file is damaged.
    """
    substitutes = dict(substitutes or {})

    class Unpickler(pickle.Unpickler):
        """pickle's Unpickler, with ``substitutes`` resolved to their objects."""

        def find_class(self, module, name):
            """The substitute for ``module.name``, else what pickle finds."""
            return substitutes.get(f"{module}.{name}") or super().find_class(module, name)

    pickle_module = types.ModuleType("attnyolo_trusted_pickle")  # torch.load subclasses pickle_module.Unpickler
    pickle_module.Unpickler, pickle_module.load = Unpickler, pickle.load
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise _damaged(checkpoint_label_of(path), error) from None


def wrap_torch_safe_load(original):
    """Return a torch_safe_load that reads through :func:`read_checkpoint` unless the user trusts checkpoints.

    Ultralytics' ``load_checkpoint`` (behind ``YOLO(path)``, resume, ``pretrained=``, AutoBackend) opens every ``.pt``
    file with ``torch_safe_load``, which unpickles in full. Kept from the original: the ``.pt`` suffix check, bare
    asset names downloaded through ``attempt_download_asset``, one re-download of a damaged cached asset, and a
    pickled whole model turned into ``{"model": ...}``. With the user's opt-in the original runs unchanged, except
    that files in a foreign format (:mod:`.formats`) are always read by that format's loader. A file
    that exists at the path given is read as given, never swapped for the stock weight Ultralytics renames it to.
    """

    @functools.wraps(original)
    def torch_safe_load(weight, *args, **kwargs):
        """Load a checkpoint as Ultralytics does, but with :func:`read_checkpoint`'s allowlist."""
        if checkpoints_trusted():
            # A foreign format is still read by its own loader: Ultralytics cannot build such a file's classes.
            foreign = _foreign(Path(str(weight))) if Path(str(weight)).is_file() else None
            if foreign is not None:
                return foreign, str(weight)
            ckpt, file = original(weight, *args, **kwargs)
            return _with_model(ckpt, checkpoint_label_of(file)), file
        check_suffix(file=weight, suffix=".pt")
        # A file that exists is read as given: attempt_download_asset renames yolov5s.pt/yolov3.pt-style names to
        # Ultralytics' "u" models (yolov5su.pt) first, the names under which classic YOLOv5 released its weights.
        file = str(weight) if Path(str(weight)).is_file() else attempt_download_asset(weight)
        try:
            ckpt = read_checkpoint(file)
        except CheckpointError as error:
            name = Path(str(weight)).name
            if str(weight) != name or name not in GITHUB_ASSETS_NAMES or "not a loadable" not in str(error):
                raise
            Path(file).unlink(missing_ok=True)  # a damaged cached stock asset, asked for by name: fetch it again
            file = attempt_download_asset(weight)
            ckpt = read_checkpoint(file)
        if not isinstance(ckpt, dict) and isinstance(getattr(ckpt, "model", ckpt), torch.nn.Module):
            ckpt = {"model": getattr(ckpt, "model", ckpt)}  # a whole YOLO object saved with torch.save
        return _with_model(ckpt, checkpoint_label_of(file)), file

    torch_safe_load._attnyolo_original = original
    return torch_safe_load


def check_checkpoint_file(path: str | Path, key: str = "model") -> Path:
    """The checkpoint path, or a one-line error when it is missing or clearly not a checkpoint.

    Args:
        path: The value the user gave.
        key: The argument's name, for the message (``model``, ``pretrained``, ``resume``).

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: A model YAML or another file type where trained weights are needed.
    """
    given = str(path)
    if "://" in given:  # Path() would collapse the '//' of a URL in the message
        raise CheckpointError(
            f"{key}={given} is a URL; checkpoints are read from files, and a downloaded file is checked like any "
            "other. Fix: download it, then pass the file's path."
        )
    path = Path(given)
    if path.is_dir():
        raise CheckpointError(f"{key}={path} is a folder, not a checkpoint file. Fix: pass the .pt file inside it.")
    if path.exists() and not path.is_file():  # a FIFO, socket or device: reading it could block or never end
        raise CheckpointError(
            f"{key}={path} is not a regular file (a pipe, socket or device). Fix: pass the .pt file training wrote."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path} does not exist. Fix: pass a trained checkpoint, e.g. weights/best.pt.")
    if path.suffix.lower() in {".yaml", ".yml"}:
        raise CheckpointError(f"{key}={path} is a model definition, not trained weights. Fix: pass a .pt checkpoint.")
    if path.suffix.lower() != ".pt":
        raise CheckpointError(f"{key}={path} is not a .pt checkpoint. Fix: pass the .pt file written by training.")
    return path


def load_model(path: str | Path, key: str = "model"):
    """Open a checkpoint as an Ultralytics ``YOLO`` model, with one-line errors for every way it can be wrong.

    Args:
        path: A ``.pt`` checkpoint.
        key: The argument's name, for messages.

    Returns:
        The ``ultralytics.YOLO`` model.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Not a checkpoint, damaged, or not a detection model; the message names the file.
    """
    from ultralytics import YOLO  # heavy: ultralytics.models (every task's model and trainer) loads on first use

    path = check_checkpoint_file(path, key)
    try:
        with checkpoint_label(f"{key}={path}"):
            yolo = YOLO(str(path))
    except CheckpointError:
        raise
    except Exception as error:  # torch, pickle and Ultralytics raise many types for a file that is not a checkpoint
        reason = first_line(error)
        reason = reason.split("—", 1)[1].strip() if "—" in reason else reason  # drop Ultralytics' "<file> is ..."
        raise CheckpointError(
            f"{key}={path} is not a loadable checkpoint: {reason.rstrip('.')}. Fix: pass a .pt file written by "
            "training, e.g. runs/train/exp/weights/best.pt."
        ) from None
    if yolo.task != "detect":
        raise CheckpointError(f"{key}={path} is a '{yolo.task}' model; AttnYOLO's tools handle detection models only.")
    return yolo
