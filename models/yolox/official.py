"""Official YOLOX checkpoints (github Megvii-BaseDetection/YOLOX) as AttnYOLO models.

YOLOX's trainer saves ``{"model": state_dict, "optimizer": ..., "start_epoch": ..., ...}`` with ``torch.save``
(``yolox/core/trainer.py`` ``save_ckpt``; ``"model"`` holds the EMA weights), and its readers accept that dict or a
bare state dict (``tools/export_onnx.py``, ``yolox/models/build.py``). Both are tensors and numbers in dicts (the
trainer's ``best_ap``/``curr_ap`` are numpy scalars after an evaluation), so they are read with
``torch.load(weights_only=True)`` and numpy's scalar globals allowed: no code in the file runs.

Module names differ from this project's, which builds YOLOX from ``cfg/yolox/yolox.yaml`` through Ultralytics' parser;
:mod:`attnyolo.yolox.official_keys` maps one onto the other, and :mod:`attnyolo.yolox.official_weights` copies the
tensors (every one must land on a tensor of the same shape) and folds YOLOX's input convention (BGR, 0..255) into the
stem. The legacy weights expect other input and nothing in a file tells them apart (:func:`legacy_refusal`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ultralytics.nn.tasks import DetectionModel

from ..errors import CheckpointError, first_line
from ..integration.checkpoints import (
    allow_globals,
    checkpoints_trusted,
    load_trusted,
    load_weights_only,
    numpy_scalar_globals,
    referenced_globals,
    refusal,
)
from ..integration.checkpoints.formats import describe_unreadable, native_checkpoint
from ..integration.checkpoints.pickles import LEGACY_MAGIC, torch_save_format, zip_pickle_record
from ..integration.datasets import COCO_NUM_CLASSES, coco_class_names
from ..integration.names import check_model_source
from ..integration.plugins import ForeignFormat
from .head import YOLOXDetect
from .official_weights import CLASS_KEY, STEM_KEY, infer_size, load_official_weights

OFFICIAL_COMMIT = "6ddff4824372906469a7fae2dc3206c7aa4bbaee"  # the YOLOX commit the key map and tests follow
_REQUIRED_KEYS = (STEM_KEY, CLASS_KEY)


# ---------------------------------------------------------------------------------------------------- reading files
_cache: dict[str, Any] = {}  # the last file read: detection and conversion read the same file once
# How far into a file in torch's pre-1.6 format to look for YOLOX's key names: its pickle comes first and names every
# tensor (YOLOX-X's state dict and optimizer state take about 200 KB).
_LEGACY_HEAD_BYTES = 4 << 20


def names_official_keys(path: str | Path) -> bool:
    """Whether ``path`` is a torch.save file whose pickle names YOLOX's stem and class-branch tensors.

    Read as bytes (the zip archive's ``data.pkl``, or the head of a file in torch's older format); nothing is
    unpickled. A file that passes is an official YOLOX checkpoint or a damaged one, never another project's format.
    """
    fmt = torch_save_format(path)
    if fmt == "zip":
        data = zip_pickle_record(path) or b""
    elif fmt == "pickle":
        with open(path, "rb") as f:
            data = f.read(_LEGACY_HEAD_BYTES)
        if LEGACY_MAGIC not in data[:32]:  # a pickle, but not one torch.save wrote
            return False
    else:
        return False
    return all(key.encode() in data for key in _REQUIRED_KEYS)


def _state_of(obj: Any) -> tuple[dict[str, torch.Tensor], list[str]] | None:
    """The state dict inside a loaded object, and the other top-level entries; None if it holds no YOLOX weights."""
    if not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get("model"), Mapping):
        state, others = obj["model"], sorted(str(k) for k in obj if k != "model")
    else:
        state, others = obj, []
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return None
    state = dict(state)
    if all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k[len("module.") :]: v for k, v in state.items()}
    if not all(k in state for k in _REQUIRED_KEYS):
        return None
    return state, others


def _read(path: Path) -> tuple[Any, str]:
    """``(loaded object or None, why it could not be read)``; only tensors and numpy scalars are unpickled by default.

    YOLOX's trainer saves ``best_ap``/``curr_ap`` as numpy float64 after an evaluation (its COCO evaluator returns
    ``cocoEval.stats[0]``), so numpy's scalar globals are allowed (:func:`numpy_scalar_globals`, the project's own
    list); any other global is refused by name before torch reads the file, in the words every reader uses
    (:func:`refusal`, naming the opt-in). With the opt-in the file is unpickled in full, as every reader does then.

    Raises:
        CheckpointError: The file references a global YOLOX's trainer never saves (and the user did not opt in).
    """
    if checkpoints_trusted():  # the user vouches for the file (trust_checkpoint=True): read as every reader does
        try:
            return load_trusted(path), ""
        except CheckpointError as error:
            return None, describe_unreadable(path) or first_line(error).rstrip(".")
    try:
        names, _ = referenced_globals(path, f"source={path}")
    except CheckpointError as error:
        return None, describe_unreadable(path) or first_line(error)
    refused = [name for name in names if name not in numpy_scalar_globals()]
    if refused:
        raise refusal(f"source={path}", refused, writers="YOLOX's trainer (tensors, numbers and numpy scalars)")
    allow_globals(names, f"source={path}")
    try:
        return load_weights_only(path), ""
    except Exception as error:  # torch raises many types for files it cannot read
        return None, describe_unreadable(path) or f"torch.load failed: {first_line(error).rstrip('.')}"


def _stat_key(path: Path) -> str:
    """The file's identity for :data:`_cache`: its resolved path, size and modification time."""
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _names_official_keys_cached(path: Path) -> bool:
    """:func:`names_official_keys`, kept in :data:`_cache`: detection and conversion ask about the same file."""
    key = _stat_key(path)
    if _cache.get("key") != key:
        _cache.clear()
        _cache["key"] = key
    if "names" not in _cache:
        _cache["names"] = names_official_keys(path)
    return _cache["names"]


def read_official(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Read an official YOLOX checkpoint: its state dict and the names of its other top-level entries.

    Args:
        path: A ``.pth`` as YOLOX's trainer saves it (``{"model": state_dict, ...}``) or a bare state dict.

    Returns:
        ``(state_dict, other entry names)``.

    Raises:
        CheckpointError: The file holds no YOLOX state dict, references a global YOLOX's trainer never saves (named,
            with the opt-in), or cannot be read (the message gives torch's reason).
    """
    path = Path(path)
    if not _names_official_keys_cached(path):
        raise CheckpointError(
            f"source={path} is not an official YOLOX checkpoint (its pickle does not name {STEM_KEY} and {CLASS_KEY}). "
            "Fix: pass a .pth that YOLOX's trainer saved or a released yolox_<size>.pth."
        )
    trusted = checkpoints_trusted()
    if "error" not in _cache or _cache.get("trusted") != trusted:  # the opt-in changes what a read gives
        try:
            obj, reason = _read(path)
        except CheckpointError as error:  # a refusal: its own words, which name the opt-in
            obj, reason, error_text = None, "", first_line(error)
        else:
            error_text = ""
        state = _state_of(obj) if obj is not None else None
        if obj is not None and state is None:
            reason = "no YOLOX state dict in its 'model' entry or at its top level, where YOLOX's readers look"
            fix = "save the weights as YOLOX's trainer does: torch.save({'model': model.state_dict()}, path)"
        else:
            fix = "download or copy the file again"
        if reason:
            error_text = f"source={path} names official YOLOX tensors but could not be read: {reason}. Fix: {fix}."
        _cache.update(trusted=trusted, result=state, error=error_text)
    if _cache["result"] is None:
        raise CheckpointError(_cache["error"])
    return _cache["result"]


def detect(path: Path) -> bool:
    """Whether ``path`` is an official YOLOX checkpoint, readable or not (:func:`names_official_keys`; nothing runs).

    A damaged or refused file is still this format: :func:`load` then says why it cannot be read, instead of the
    tool reporting a file in no known format. The answer is kept for :func:`read_official`, which asks again.
    """
    try:
        return _names_official_keys_cached(Path(path))
    except OSError:
        return False


def legacy_refusal(value: Any) -> CheckpointError:
    """The error for ``legacy=True``: YOLOX's legacy weights cannot be converted exactly, so they are refused.

    The legacy models of YOLOX's README (github Megvii-BaseDetection/storage, release 0.0.1; same file names and
    tensor shapes as the current ones) were trained on RGB input divided by 255 and then normalised with ImageNet's
    per-channel mean and std (``ValTransform(legacy=True)``). Scale and colour order fold into the stem's weight, the
    mean does not: it would become a bias, which the stem's zero padding does not see at the image borders, so the
    converted model would differ from the official one along every border. Nothing in a file tells the two apart.
    """
    return CheckpointError(
        f"legacy={value}: YOLOX's legacy weights expect RGB/255 input normalised per channel with ImageNet's mean and "
        "std, which cannot be folded exactly into the stem convolution (its zero padding at the image borders would "
        "stand for another colour), so they are not imported. Fix: use the current weights, YOLOX release 0.1.1rc0 "
        "(yolox_nano.pth ... yolox_x.pth), which take BGR 0..255."
    )


# --------------------------------------------------------------------------------------------------------- loading
def _row_list(rows: list[int]) -> str:
    """'5, 8 and 12'."""
    text = [str(r) for r in rows]
    return text[0] if len(text) == 1 else f"{', '.join(text[:-1])} and {text[-1]}"


def load(path: Path, model: str | None = None, nc: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the AttnYOLO YOLOX model of an official checkpoint and load its weights (``ForeignFormat.load``).

    Args:
        path: The official ``.pth``.
        model: A YOLOX model YAML to load into (default: the official size inferred from the shapes). Attention
            variants (``yolox-nano-ELA-S.yaml``) take every official tensor; their attention rows stay initialised.
        nc: Number of classes (default: the file's). A different count re-initialises the class branch.

    Returns:
        ``(checkpoint, report)``: an Ultralytics checkpoint dict (float32 weights, COCO class names for 80 classes,
        the official test size as ``imgsz``) and what was mapped, for the tool to print.

    Raises:
        CheckpointError: The file or the model does not fit (see :func:`load_official_weights`).
    """
    state, others = read_official(path)
    _cache.clear()  # the weights are about to be copied; do not keep a second copy (400 MB for YOLOX-X) alive
    source = f"source={path}"
    file_nc = int(state[CLASS_KEY].shape[0])
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise CheckpointError(f"nc={nc!r} must be a positive whole number of classes, e.g. nc=20.")
    nc = file_nc if nc is None else nc
    try:
        size = infer_size({k: tuple(v.shape) for k, v in state.items()})
    except CheckpointError as error:
        if model is None:
            raise CheckpointError(f"{source}: {error}") from None
        size = None
    yaml = model or size.model_yaml
    label = f"model={yaml}"
    check_model_source(yaml)
    det = DetectionModel(yaml, nc=nc, verbose=False)
    if not isinstance(det.model[-1], YOLOXDetect):
        raise CheckpointError(
            f"{label} is not a YOLOX model (its head is {type(det.model[-1]).__name__}). Fix: pass a YOLOX YAML such "
            "as yolox-s.yaml or yolox-s-ELA-S.yaml, or leave model= out."
        )
    try:
        loaded = load_official_weights(det, state, label, source)
    except CheckpointError as error:
        found = f" The file is {size.describe()}, inferred from its shapes." if size else ""
        raise CheckpointError(f"{error}{found}") from None
    det.nc = nc  # the attributes Ultralytics' trainer gives the models it saves
    det.names = coco_class_names() if nc == COCO_NUM_CLASSES else {i: f"class{i}" for i in range(nc)}
    det.eval()
    imgsz = size.test_size if size else 640
    # Official weights are float32 and the parity they are checked for (boxes within 0.02 px) needs float32:
    # Ultralytics' own checkpoints store half precision, these keep full precision.
    ckpt = {**native_checkpoint(det), "model": det, "train_args": {"imgsz": imgsz}}
    inferred = " (inferred from the tensor shapes)" if model is None else ""
    report = {
        "size": size.describe() + inferred if size else "not an official size",
        "model": yaml,
        "tensors": f"{loaded['mapped']}/{loaded['official']} official tensors mapped by module structure",
        "input": "YOLOX's BGR 0..255 input folded into the stem conv: the model takes Ultralytics' RGB 0..1",
        "classes": f"{nc} ({'COCO names' if nc == COCO_NUM_CLASSES else 'names class0..'})",
        "imgsz": imgsz,
    }
    if loaded["reinitialised"]:
        report["classes"] += (
            f"; class branch (head.cls_preds.0-2, {len(loaded['reinitialised'])} tensors) re-initialised: the file has "
            f"{file_nc} classes"
        )
    if loaded["attention_rows"]:
        report["initialised"] = f"attention rows {_row_list(loaded['attention_rows'])} keep their initialisation"
    if others:
        report["ignored"] = f"checkpoint entries besides 'model': {', '.join(others)}"
    return ckpt, report


FORMAT = ForeignFormat(
    name="yolox-official",
    description="official YOLOX .pth (github Megvii-BaseDetection/YOLOX: released yolox_<size>.pth or a *_ckpt.pth "
    "its trainer saved)",
    detect=detect,
    load=load,
)
