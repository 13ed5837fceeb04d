"""What a checkpoint may reference: the allowlist of :func:`attnyolo.integration.checkpoints.read_checkpoint`.

Exactly what Ultralytics and AttnYOLO put into checkpoints, found by reading real files (stock ``YOLO.save``, training
runs' ``last.pt``/``best.pt``, attnyolo 0.1 files): layer, head and model classes, the loss classes older checkpoints
carry, Ultralytics' argument namespace, numpy scalars and arrays, paths, and a restricted ``getattr``
(:func:`allowed_global`, :func:`data_globals`).
"""

from __future__ import annotations

import enum
import functools
import importlib
import pathlib
import pickle
import re
import types
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from ultralytics.utils import IterableSimpleNamespace

from .legacy import LEGACY_MODULES

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


# numpy's reconstructors and dtype, as checkpoints call them; each refuses arguments numpy's own pickles never carry,
# since they would allocate from a number in the pickle instead of from data the file holds.
_MAX_ITEMSIZE = 16  # the widest numeric numpy type a checkpoint holds (complex128); a void dtype can claim gigabytes


def _checked_dtype_of(dtype: Any) -> Any:
    """``dtype`` when it is a numeric (or bool) numpy dtype of at most :data:`_MAX_ITEMSIZE` bytes, else refused."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or dtype.itemsize > _MAX_ITEMSIZE:
        raise pickle.UnpicklingError(f"numpy dtype {dtype!r} is not a number type checkpoints hold")
    return dtype


def _checked_dtype(spec: Any, align: Any = False, copy: Any = True) -> Any:
    """``numpy.dtype(spec, align, copy)`` as numpy pickles it (``('f8', False, True)``), for number types only."""
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise pickle.UnpicklingError(f"numpy.dtype{(spec, align, copy)!r} is not how numpy pickles a dtype")
    return _checked_dtype_of(np.dtype(spec, align, copy))


def _checked_scalar(dtype: Any, data: Any = None) -> Any:
    """The numpy scalar reconstructor for a number: ``data`` holds exactly the bytes of one value of ``dtype``."""
    _checked_dtype_of(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"a numpy scalar of {dtype} needs {dtype.itemsize} bytes of data")
    return np.float64(0).__reduce__()[0](dtype, data)


def _checked_reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """The numpy array reconstructor as ``ndarray.__reduce__`` calls it, ``(ndarray, (0,), b'b')``: an empty array.

    The array's shape and bytes come after, from the pickled state (numpy checks they agree), so nothing is allocated
    beyond what the pickle holds.
    """
    if subtype is not np.ndarray or shape != (0,) or dtype != b"b":
        raise pickle.UnpicklingError(f"numpy array reconstruction{(shape, dtype)!r} is not how numpy pickles an array")
    return np.zeros(1).__reduce__()[0](subtype, shape, dtype)


def _checked_path(cls: type) -> Any:
    """A path class's constructor for pickled paths: text parts only, as ``pathlib`` pickles a path."""

    def path(*parts: Any) -> Any:
        """``cls(*parts)`` when every part is text."""
        if not all(isinstance(part, str) for part in parts):
            raise pickle.UnpicklingError(f"a pickled {cls.__name__} holds text parts only")
        return cls(*parts)

    path.__qualname__ = path.__name__ = f"checked_{cls.__name__}"
    return path


@functools.lru_cache(maxsize=1)
def numpy_scalar_globals() -> dict[str, Any]:
    """The globals a pickled numpy scalar (``np.float64(40.5)``) references, by the name pickle records them under.

    numpy's scalar reconstructor (``numpy.core.multiarray.scalar`` in numpy 1.x, ``numpy._core.multiarray.scalar`` in
    2.x) and ``numpy.dtype`` with its per-type classes (numpy >= 1.25 builds a dtype as an instance of
    ``numpy.dtypes.Float64DType`` and the like). Part of :func:`data_globals`; on its own for readers whose files hold
    numbers but never arrays or paths (official YOLOX checkpoints: ``best_ap``).
    """
    found: dict[str, Any] = {"numpy.dtype": _checked_dtype}
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[f"{core}.scalar"] = _checked_scalar
    for dtype in {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_)}:
        found[f"{dtype.__module__}.{dtype.__qualname__}"] = dtype  # numpy >= 1.25 pickles dtypes by their class
    return found


@functools.lru_cache(maxsize=1)
def data_globals() -> dict[str, Any]:
    """The data types checkpoints hold besides tensors, by the name pickle records them under.

    numpy scalars (Ultralytics' ``best_fitness``, the momentum values in YOLOv5's optimizer state) and dtypes
    (:func:`numpy_scalar_globals`), arrays (YOLOv5's ``best_fitness`` may be an array), and paths (``save_dir`` of
    Ultralytics < 8.1, ``opt`` of YOLOv5 forks). numpy 1.x records ``numpy.core.multiarray``, numpy 2.x
    ``numpy._core.multiarray``; Python 3.13 records paths under ``pathlib._local``. A path saved on the other OS loads
    as this OS's path, as Ultralytics maps it.
    """
    local_path = _checked_path(type(Path()))
    found: dict[str, Any] = {**numpy_scalar_globals(), "numpy.ndarray": np.ndarray}
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[f"{core}._reconstruct"] = _checked_reconstruct
    for module in ("pathlib", "pathlib._local"):
        for cls in ("Path", "PosixPath", "WindowsPath"):
            found[f"{module}.{cls}"] = local_path
        found[f"{module}.PurePosixPath"] = _checked_path(pathlib.PurePosixPath)
        found[f"{module}.PureWindowsPath"] = _checked_path(pathlib.PureWindowsPath)
    return found


@functools.lru_cache(maxsize=1)
def _fixed_globals() -> dict[str, Any]:
    """Non-layer globals of Ultralytics and AttnYOLO checkpoints: :func:`data_globals`, argument namespaces, getattr."""
    return {
        **data_globals(),
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,  # model.args of resumable checkpoints
        "ultralytics.yolo.utils.IterableSimpleNamespace": IterableSimpleNamespace,  # Ultralytics < 8.0.44
        "types.SimpleNamespace": types.SimpleNamespace,
        "builtins.getattr": _checkpoint_getattr,
    }


def _transforms_global(name: str) -> Any | None:
    """The torchvision preprocessing classes Ultralytics' classification checkpoints pickle, or None."""
    if not name.startswith("torchvision.transforms."):
        return None
    import torchvision.transforms.transforms as tvt  # heavy (seconds): only for a checkpoint that names them
    from torchvision.transforms.functional import InterpolationMode  # the same module tree, as heavy

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
        name: The global as :func:`attnyolo.integration.checkpoints.pickles.pickle_globals` lists it (``module.Name``).

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
    if module in LEGACY_MODULES:  # attnyolo 0.1's flat layout: the same classes under their old paths
        obj = getattr(LEGACY_MODULES[module], attr, None)
        return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None
    if any(module == root or module.startswith(root + ".") for root in (p.rstrip(".") for p in _MODEL_MODULES)):
        obj = _import_attribute(module, attr)
        return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None
    if module in _CRITERION_MODULES:
        obj = _import_attribute(module, attr)
        return obj if isinstance(obj, type) and obj.__module__ == module else None
    return None


# What a checkpoint may call (pickle's REDUCE, or NEWOBJ with arguments), besides the argument-checked constructors of
# data_globals, getattr and enum lookups: torch's tensor rebuilders, whose sizes torch checks against the storage
# records the file holds, and containers filled from the pickle's own items. Everything else on the allowlist (layer
# and model classes, loss classes) is only ever rebuilt from its pickled state, never called: a call would run its
# __init__ with arguments from the file (torch.nn.Linear(20000, 20000) allocates 1.6 GB; Ultralytics' TorchVision
# downloads weights). torch's own weights-only table also allows calls that allocate from a number in the pickle
# (builtins.bytearray, torch.FloatTensor, torch.UntypedStorage), which are refused here too.
_CALLABLE = frozenset(
    {
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "collections.OrderedDict",
        "builtins.set",
        "_codecs.encode",
        "torch.device",
        "torch.Size",
        "types.SimpleNamespace",
        "ultralytics.utils.IterableSimpleNamespace",
        "ultralytics.yolo.utils.IterableSimpleNamespace",
        "builtins.getattr",
    }
)


def allowed_call(name: str) -> bool:
    """Whether a checkpoint may call the global ``name`` with arguments while it is unpickled.

    True for torch's tensor rebuilders and containers (:data:`_CALLABLE`), the argument-checked constructors of
    numpy values and paths (:func:`data_globals`), the restricted ``getattr``, and enum classes (a member lookup).
    """
    if name in _CALLABLE or not isinstance(data_globals().get(name, type), type):  # the checked constructors
        return True
    obj = allowed_global(name)
    return isinstance(obj, type) and issubclass(obj, enum.Enum)
