"""Reading and writing checkpoints: the one place a ``.pt`` file is checked, opened and saved.

Ultralytics pickles whole models, so the import paths of AttnYOLO's classes are part of the checkpoint format
(``attnyolo/__init__.py`` keeps the paths of earlier releases importable). This module:

* checks a checkpoint argument once for every tool (:func:`check_checkpoint_file`) and opens it with one-line errors
  (:func:`load_model`);
* makes the trainer's checkpoint writes atomic (:func:`save_model_atomically`), and the optimizer strip that
  Ultralytics' ``final_eval`` runs over ``last.pt``/``best.pt`` too (:func:`wrap_strip_optimizer`): a crash mid-write
  never leaves a truncated checkpoint where a complete one was;
* lets Ultralytics open checkpoints other projects wrote (classic YOLOv5 ``best.pt`` files) through their
  :class:`~attnyolo.engine.importing.ForeignFormat` (:func:`load_foreign`, :func:`wrap_torch_safe_load`), so
  ``YOLO(path)``, every tool, ``pretrained=`` and fine-tuning accept them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..utils.atomic import atomic_path, replace_atomically, temporary_sibling


def _first_line(error: BaseException) -> str:
    """An exception message reduced to its first line, without Ultralytics' emoji."""
    text = str(error).strip().strip("'\"") or type(error).__name__
    return text.splitlines()[0].replace("❌️", "").replace("❌", "").replace("⚠️", "").strip()


def check_checkpoint_file(path: str | Path, key: str = "model") -> Path:
    """The checkpoint path, or a one-line error when it is missing or clearly not a checkpoint.

    Args:
        path: The value the user gave.
        key: The argument's name, for the message (``model``, ``pretrained``, ``resume``).

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: A model YAML or another file type where trained weights are needed.
    """
    path = Path(str(path))
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
    from ultralytics import YOLO

    path = check_checkpoint_file(path, key)
    try:
        yolo = YOLO(str(path))
    except CheckpointError:
        raise
    except Exception as error:  # torch, pickle and Ultralytics raise many types for a file that is not a checkpoint
        reason = _first_line(error)
        reason = reason.split("—", 1)[1].strip() if "—" in reason else reason  # drop Ultralytics' "<file> is ..."
        raise CheckpointError(
            f"{key}={path} is not a loadable checkpoint: {reason.rstrip('.')}. Fix: pass a .pt file written by "
            "training, e.g. runs/train/exp/weights/best.pt."
        ) from None
    if yolo.task != "detect":
        raise CheckpointError(f"{key}={path} is a '{yolo.task}' model; AttnYOLO's tools handle detection models only.")
    return yolo


def save_model_atomically(trainer: Any, save: Callable[[], Any]) -> Any:
    """Run the trainer's ``save_model`` with ``last.pt``/``best.pt`` written to temporary files renamed into place.

    Ultralytics' ``BaseTrainer.save_model`` writes to the paths in its documented ``last`` and ``best`` attributes;
    they point at temporary siblings while ``save`` runs, and each file that was written replaces its target after.

    Args:
        trainer: An Ultralytics trainer.
        save: The trainer's original ``save_model`` (bound).

    Returns:
        Whatever ``save`` returns.
    """
    final = {"last": Path(trainer.last), "best": Path(trainer.best)}
    tmp = {key: temporary_sibling(path) for key, path in final.items()}
    for path in tmp.values():  # a leftover from a crash must not be renamed over a good checkpoint below
        path.unlink(missing_ok=True)
    trainer.last, trainer.best = tmp["last"], tmp["best"]
    try:
        saved = save()
        for key, path in tmp.items():
            if path.exists():
                replace_atomically(path, final[key])
    finally:
        trainer.last, trainer.best = final["last"], final["best"]
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return saved


def wrap_strip_optimizer(original):
    """Return a strip_optimizer that writes through a temporary file renamed into place.

    Ultralytics' ``final_eval`` strips the optimizer from ``last.pt`` and ``best.pt`` by loading each and saving it
    over itself; a crash during that save would leave a truncated checkpoint where a complete one was.
    """

    @functools.wraps(original)
    def strip_optimizer(f="best.pt", s="", updates=None):
        """Strip as Ultralytics does, into a temporary file that replaces ``s or f`` only once fully written."""
        with atomic_path(Path(s or f), "strip.tmp") as tmp:
            return original(f, s=str(tmp), updates=updates)

    strip_optimizer._attnyolo_original = original
    return strip_optimizer


# ------------------------------------------------------------------------------------------ foreign checkpoint formats
def load_foreign(path: str | Path) -> dict[str, Any] | None:
    """The Ultralytics checkpoint dict of a file in a foreign format (:mod:`attnyolo.engine.importing`), else None.

    Recognising a format runs nothing from the file (each format's ``detect`` reads it as data); files in no foreign
    format (Ultralytics' and AttnYOLO's own, or names Ultralytics downloads) return None and are left to Ultralytics.

    Raises:
        CheckpointError: A file in a foreign format that cannot be mapped; the message names the file and the fix.
    """
    from ..engine.importing import detect_format

    path = Path(str(path))
    if path.suffix.lower() != ".pt" or not path.is_file():
        return None
    fmt = detect_format(path)
    if fmt is None:
        return None
    ckpt, _ = fmt.load(path)
    return ckpt


def wrap_torch_safe_load(original):
    """Return a ``torch_safe_load`` that opens foreign-format checkpoints with :func:`load_foreign` first.

    Ultralytics' ``load_checkpoint`` (behind ``YOLO(path)``, the predictor's and validator's backends and the
    trainer's ``pretrained=``/``model=``) reads every ``.pt`` file through ``ultralytics.nn.tasks.torch_safe_load``,
    which refuses a classic YOLOv5 file ("NOT forwards compatible") or would import its ``models`` package.
    """

    @functools.wraps(original)
    def torch_safe_load(weight, *args, **kwargs):
        """``(checkpoint, file)`` of a foreign file as AttnYOLO maps it; Ultralytics' own loading otherwise."""
        ckpt = load_foreign(weight)
        if ckpt is not None:
            return ckpt, str(weight)
        return original(weight, *args, **kwargs)

    torch_safe_load._attnyolo_original = original
    return torch_safe_load
