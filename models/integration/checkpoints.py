"""Reading and writing checkpoints: the one place a ``.pt`` file is checked, opened and saved.

Ultralytics pickles whole models, so the import paths of AttnYOLO's classes are part of the checkpoint format
(``attnyolo/__init__.py`` keeps the paths of earlier releases importable). This module:

* reads checkpoints without running code from them (:func:`read_checkpoint`): ``torch.load(weights_only=True)`` with
  an allowlist of exactly what Ultralytics and AttnYOLO put into checkpoints (model layers, their head and model
  classes, Ultralytics' argument namespace, numpy scalars, paths). A file that references anything else is refused
  with one line naming the first such global, unless the user vouches for it (:func:`checkpoints_trusted`).
  ``YOLO(path)`` reads through it too, once ``attnyolo`` is imported (:func:`wrap_torch_safe_load`);
* checks a checkpoint argument once for every tool (:func:`check_checkpoint_file`) and opens it with one-line errors
  (:func:`load_model`);
* makes the trainer's checkpoint writes atomic (:func:`save_model_atomically`), and the optimizer strip that
  Ultralytics' ``final_eval`` runs over ``last.pt``/``best.pt`` too (:func:`wrap_strip_optimizer`): a crash mid-write
  never leaves a truncated checkpoint where a complete one was.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import importlib
import os
import pickle
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, first_line
from ..utils.atomic import atomic_path, remove_stale_temporaries, replace_atomically, temporary_sibling

TRUST_ENV = "ATTNYOLO_TRUST_CHECKPOINTS"  # "1": read every checkpoint with full unpickling (the user vouches for it)
TRUST_HINT = f"If you trust this file, pass trust_checkpoint=True (or set {TRUST_ENV}=1)."


# ------------------------------------------------------------------------------------------------ safe loading
# Where checkpoints' model classes live. A pickled class is allowed when it is an nn.Module subclass found under one of
# these module paths: the layers, heads and model classes Ultralytics and AttnYOLO build networks from.
_MODEL_MODULES = ("torch.nn.modules.", "ultralytics.nn.modules.", "ultralytics.nn.tasks", "attnyolo.")
# Training-state classes older checkpoints pickled with the model (the loss criterion and its assigner); allowed when
# the class is defined in exactly that module.
_CRITERION_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal", "attnyolo.yolox.loss", "attnyolo.yolox.simota")
# Module paths renamed by Ultralytics releases: the renames Ultralytics' own torch_safe_load applies while unpickling
# (ultralytics/nn/tasks.py, temporary_modules(...) in torch_safe_load, Ultralytics 8.4.180 and 8.4.190).
_RENAMED_MODULES = {
    "ultralytics.yolo.utils": "ultralytics.utils",
    "ultralytics.yolo.v8": "ultralytics.models.yolo",
    "ultralytics.yolo.data": "ultralytics.data",
}
# Classes renamed or removed by Ultralytics releases -> what their checkpoints load as (as Ultralytics maps them).
_RENAMED_CLASSES = {
    "ultralytics.nn.modules.block.Silence": "torch.nn.modules.linear.Identity",  # YOLOv9e
    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
}
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_registered: dict[str, Any] = {}  # name -> object already given to torch.serialization.add_safe_globals
_lock = threading.Lock()
_label: contextvars.ContextVar[str | None] = contextvars.ContextVar("attnyolo_checkpoint_label", default=None)


def checkpoints_trusted() -> bool:
    """Whether the user vouched for every checkpoint this process opens (``ATTNYOLO_TRUST_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def trust_checkpoints(enabled: bool = True) -> None:
    """Read every checkpoint of this process, and of the processes it starts, with full unpickling (or stop).

    Tools call this for ``trust_checkpoint=True``. Full unpickling runs whatever code a file names, so it is only for
    files the user vouches for; by default :func:`read_checkpoint` refuses them instead.

    Args:
        enabled: True to trust, False to return to safe loading.
    """
    if enabled:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)


# The methods checkpoints hold references to: Ultralytics pickles a layer's `forward`/`forward_fuse` (stock YOLOv8 and
# YOLO11 checkpoints of some tasks), and YOLOX models of attnyolo <= 0.2 a Conv's `type` method. Calling any other
# method during unpickling could have effects (Ultralytics' `predict(visualize=...)` writes files), so none is served.
_CHECKPOINT_METHODS = frozenset({"forward", "forward_fuse", "type"})


def _checkpoint_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to what checkpoints use it for: a few layer methods and enum members.

    Pickle stores a bound method as ``getattr(instance, name)`` and an enum member or a function defined on a class as
    ``getattr(class, name)``. Anything else is refused: an unrestricted getattr reaches any object's globals.
    """
    if isinstance(obj, nn.Module) and name in _CHECKPOINT_METHODS and callable(getattr(type(obj), name, None)):
        return getattr(obj, name)
    if isinstance(obj, type) and issubclass(obj, nn.Module) and name in _CHECKPOINT_METHODS - {"type"}:
        return getattr(obj, name)
    if isinstance(obj, type) and issubclass(obj, enum.Enum) and name in obj.__members__:
        return obj[name]
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not a model layer's method or member")


@functools.lru_cache(maxsize=1)
def _fixed_globals() -> dict[str, Any]:
    """Non-layer globals found in Ultralytics and AttnYOLO checkpoints, by the name pickle records them under."""
    import types

    import numpy as np
    from ultralytics.utils import IterableSimpleNamespace

    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar reconstructor: numpy._core (2.x) or numpy.core (1.x)
    local_path = type(Path())
    fixed: dict[str, Any] = {
        "numpy.core.multiarray.scalar": scalar,  # e.g. best_fitness as np.float64 (older Ultralytics)
        "numpy._core.multiarray.scalar": scalar,
        "numpy.dtype": np.dtype,
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,  # model.args of resumable checkpoints
        "ultralytics.yolo.utils.IterableSimpleNamespace": IterableSimpleNamespace,  # Ultralytics < 8.0.44
        "types.SimpleNamespace": types.SimpleNamespace,
        "builtins.getattr": _checkpoint_getattr,
    }
    for dtype in {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_)}:
        fixed[f"{dtype.__module__}.{dtype.__qualname__}"] = dtype  # numpy >= 1.25 pickles dtypes by their class
    for module in ("pathlib", "pathlib._local"):  # Python 3.13 pickles paths under pathlib._local
        for cls in ("Path", "PosixPath", "WindowsPath"):
            fixed[f"{module}.{cls}"] = local_path  # a path saved on the other OS loads as this OS's path
    return fixed


def _transforms_global(name: str) -> Any | None:
    """The torchvision preprocessing classes Ultralytics' classification checkpoints pickle, or None."""
    if not name.startswith("torchvision.transforms."):
        return None
    import torchvision.transforms.transforms as tvt
    from torchvision.transforms.functional import InterpolationMode

    known = (tvt.Compose, tvt.Normalize, tvt.Resize, tvt.CenterCrop, tvt.ToTensor, InterpolationMode)
    return next((cls for cls in known if f"{cls.__module__}.{cls.__qualname__}" == name), None)


def _import_attribute(module: str, attr: str) -> Any | None:
    """``module.attr`` from an installed, trusted package, or None when it does not exist."""
    if not _DOTTED.match(f"{module}.{attr}"):
        return None
    try:
        return getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None


def allowed_global(name: str) -> Any | None:
    """The object a checkpoint may reference as ``name`` (``module.Name``), or None when checkpoints never hold it.

    Allowed: nn.Module subclasses under the module paths of torch.nn, Ultralytics' layers and models, and AttnYOLO
    (including attnyolo 0.1's flat paths, :data:`attnyolo.LEGACY_MODULES`); loss and assigner classes of older
    checkpoints; Ultralytics' renamed classes and modules; numpy scalars and dtypes; paths; Ultralytics' argument
    namespace; torchvision's preprocessing classes; a restricted ``getattr``.

    Args:
        name: The global as ``torch.serialization.get_unsafe_globals_in_checkpoint`` reports it.

    Returns:
        The object to unpickle it as, or None.
    """
    fixed = _fixed_globals()
    if name in fixed:
        return fixed[name]
    if name in _RENAMED_CLASSES:
        return allowed_global(_RENAMED_CLASSES[name])
    for old, new in _RENAMED_MODULES.items():
        if name.startswith(old + "."):
            return allowed_global(new + name[len(old) :])
    transform = _transforms_global(name)
    if transform is not None:
        return transform
    module, _, attr = name.rpartition(".")
    import attnyolo

    if module in attnyolo.LEGACY_MODULES:  # attnyolo 0.1's flat layout: the same classes under their old paths
        obj = getattr(attnyolo.LEGACY_MODULES[module], attr, None)
        return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None
    if any(module == root or module.startswith(root + ".") for root in (p.rstrip(".") for p in _MODEL_MODULES)):
        obj = _import_attribute(module, attr)
        return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None
    if module in _CRITERION_MODULES:
        obj = _import_attribute(module, attr)
        return obj if isinstance(obj, type) and obj.__module__ == module else None
    return None


def _refused(label: str, names: list[str]) -> CheckpointError:
    """The one-line refusal naming the first disallowed global (and how many more there are) and the opt-in."""
    more = f" (and {len(names) - 1} more disallowed)" if len(names) > 1 else ""
    return CheckpointError(
        f"{label}: refused to load: it references {names[0]}{more}, which checkpoints written by Ultralytics or "
        f"AttnYOLO never contain. {TRUST_HINT}"
    )


def _allow(names: list[str], label: str) -> None:
    """Register each global of ``names`` with torch's weights-only unpickler, or raise naming the refused ones.

    Registration is process-wide and permanent (``torch.serialization.add_safe_globals``): the scoped context manager
    would remove entries from under a concurrent load in another thread. Only what a checkpoint references is added,
    since torch rebuilds its lookup table from the whole registered set at every pickle opcode that needs it.
    """
    if "numpy.dtype" in names:  # dtype(...) builds an instance of its class (numpy.dtypes.Float64DType), unnamed
        names = [*names, *(name for name in _fixed_globals() if name.startswith("numpy.dtypes."))]
    with _lock:
        wanted = {name: allowed_global(name) for name in names if name not in _registered}
        refused = [name for name, obj in wanted.items() if obj is None]
        if refused:
            raise _refused(label, refused)
        if wanted:
            _registered.update(wanted)
            torch.serialization.add_safe_globals([(obj, name) for name, obj in wanted.items()])


def _damaged(label: str, error: BaseException) -> CheckpointError:
    """The one-line error for a file torch cannot read at all."""
    reason = first_line(error).split(". ")[0].rstrip(".")
    if "TorchScript" in reason:
        return CheckpointError(
            f"{label} is a TorchScript archive, not an Ultralytics checkpoint. Fix: pass the .pt file written by "
            "training (export it again for TorchScript)."
        )
    return CheckpointError(
        f"{label} is not a loadable checkpoint: the file is empty, truncated or corrupted "
        f"({type(error).__name__}: {reason[:160]}). Fix: pass a .pt file written by training, e.g. "
        "runs/train/exp/weights/best.pt."
    )


def _foreign(path: Path) -> dict[str, Any] | None:
    """The checkpoint dict of a file in a foreign format AttnYOLO maps without unpickling code, else None."""
    from ..engine.importing import detect_format

    fmt = detect_format(path)
    return fmt.load(path)[0] if fmt is not None else None


def _weights_only_reason(error: BaseException) -> str:
    """The reason in torch's weights-only error, without its advice to load with full unpickling."""
    text = str(error)
    reason = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0]
    reason = " ".join(reason.split()) or first_line(error)
    return reason.split(". Please use", 1)[0].rstrip(".")


def _legacy_globals(path: Path) -> list[str] | None:
    """The globals of a file in torch's pre-zip format, in order, by disassembling its pickles (nothing is run).

    Returns None when the file does not start like a pickle: it is not a checkpoint at all.
    """
    import pickletools

    names: list[str] = []
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":
            return None
        f.seek(0)
        try:
            for _ in range(4):  # magic number, protocol, system info, then the object itself
                for opcode, arg, _pos in pickletools.genops(f):
                    if opcode.name == "GLOBAL" and isinstance(arg, str):
                        module, _, name = arg.partition(" ")
                        names.append(f"{module.replace('__builtin__', 'builtins')}.{name}")
                    elif opcode.name in {"STACK_GLOBAL", "INST", "OBJ"}:
                        names.append(f"<pickle opcode {opcode.name}>")
        except (ValueError, EOFError):
            pass  # the tensor bytes that follow the pickles, or a truncated file: the load below reports it
    # What torch's weights-only unpickler allows by itself (tensors, storages, dtypes, OrderedDict, ...); private
    # in torch, so a torch without it leaves every name to the allowlist, which then refuses more, never less.
    default = getattr(torch._weights_only_unpickler, "_get_allowed_globals", dict)()
    return [name for name in dict.fromkeys(names) if name not in default]


def read_checkpoint(path: str | Path, trust: bool = False, label: str | None = None, mmap: bool = False) -> Any:
    """Read a checkpoint without running code from it; refuse one that references anything checkpoints never hold.

    The file is read with ``torch.load(weights_only=True)`` after registering the globals it references, each checked
    by :func:`allowed_global`. A file in a foreign format that :mod:`attnyolo.engine.importing` recognises (e.g. a
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
    label = label or _label.get() or str(path)
    if trust or checkpoints_trusted():
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
            raise _damaged(label, error) from None
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise CheckpointError(
            f"{label}: reading a checkpoint without running code from it needs torch >= 2.6 (installed: "
            f"{torch.__version__}). Fix: pip install 'torch>=2.6'. {TRUST_HINT}"
        )
    legacy = False
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))  # a set: sorted, stable
    except ValueError as error:  # not a zip archive: torch's pre-1.6 format, TorchScript, or no checkpoint at all
        if "torchscript" in str(error).lower():
            raise _damaged(label, RuntimeError("TorchScript archive")) from None
        names, legacy = _legacy_globals(path), True
        if names is None:
            raise _damaged(label, ValueError("not a zip archive or a pickle")) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise _damaged(label, error) from None
    try:
        _allow(names, label)
    except CheckpointError:
        foreign = _foreign(path)
        if foreign is not None:
            return foreign
        raise
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and not legacy)
    except pickle.UnpicklingError as error:
        if legacy:
            raise CheckpointError(
                f"{label}: refused to load: it is in torch's pre-1.6 serialization format, which stores model classes "
                f"in a form that cannot be read without running code ({_weights_only_reason(error)}). {TRUST_HINT}"
            ) from None
        raise CheckpointError(
            f"{label}: refused to load: {_weights_only_reason(error)}; checkpoints written by Ultralytics or AttnYOLO "
            f"never need that. {TRUST_HINT}"
        ) from None
    except (RuntimeError, EOFError) as error:
        raise _damaged(label, error) from None


@contextlib.contextmanager
def checkpoint_label(label: str) -> Iterator[None]:
    """Name checkpoint files ``label`` (e.g. ``model=best.pt``) in the messages of loads inside the block."""
    token = _label.set(label)
    try:
        yield
    finally:
        _label.reset(token)


def wrap_torch_safe_load(original):
    """Return a torch_safe_load that reads through :func:`read_checkpoint` unless the user trusts checkpoints.

    Ultralytics' ``load_checkpoint`` (behind ``YOLO(path)``, resume, ``pretrained=``, AutoBackend) opens every ``.pt``
    file with ``torch_safe_load``, which unpickles in full. Kept from the original: the ``.pt`` suffix check, bare
    asset names downloaded through ``attempt_download_asset``, one re-download of a damaged cached asset, and a
    pickled whole model turned into ``{"model": ...}``. With the user's opt-in the original runs unchanged, except
    that files in a foreign format (:mod:`attnyolo.engine.importing`) are always read by that format's loader.
    """

    @functools.wraps(original)
    def torch_safe_load(weight, *args, **kwargs):
        """Load a checkpoint as Ultralytics does, but with :func:`read_checkpoint`'s allowlist."""
        if checkpoints_trusted():
            # A foreign format is still read by its own loader: Ultralytics cannot build such a file's classes.
            foreign = _foreign(Path(str(weight))) if Path(str(weight)).is_file() else None
            return (foreign, str(weight)) if foreign is not None else original(weight, *args, **kwargs)
        from ultralytics.utils.checks import check_suffix
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

        check_suffix(file=weight, suffix=".pt")
        file = attempt_download_asset(weight)
        try:
            ckpt = read_checkpoint(file)
        except CheckpointError as error:
            name = Path(str(weight)).name
            if str(weight) != name or name not in GITHUB_ASSETS_NAMES or "not a loadable" not in str(error):
                raise
            Path(file).unlink(missing_ok=True)  # a damaged cached stock asset, asked for by name: fetch it again
            file = attempt_download_asset(weight)
            ckpt = read_checkpoint(file)
        if not isinstance(ckpt, dict):
            ckpt = {"model": getattr(ckpt, "model", ckpt)}  # a whole YOLO object saved with torch.save
        return ckpt, file

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
    for key, path in tmp.items():  # a leftover from a crash must not be renamed over a good checkpoint below
        path.unlink(missing_ok=True)
        remove_stale_temporaries(final[key])  # nor fill the disk: a killed run's temporaries go here
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
