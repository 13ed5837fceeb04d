"""Official YOLOX checkpoints (github Megvii-BaseDetection/YOLOX) as AttnYOLO models.

YOLOX's trainer saves ``{"model": state_dict, "optimizer": ..., "start_epoch": ..., ...}`` with ``torch.save``
(``yolox/core/trainer.py`` ``save_ckpt``; ``"model"`` holds the EMA weights), and its readers accept that dict or a
bare state dict (``tools/export_onnx.py``, ``yolox/models/build.py``). Both are tensors and numbers in dicts (the
trainer's ``best_ap``/``curr_ap`` are numpy scalars after an evaluation), so they are read with
``torch.load(weights_only=True)`` and numpy's scalar globals allowed: no code in the file runs.

Module names differ from this project's, which builds YOLOX from ``cfg/yolox/yolox.yaml`` through Ultralytics' parser;
:mod:`attnyolo.yolox.official_keys` maps one onto the other.

Every official tensor must land on a tensor of the same shape: a key left over, a key missing or a shape that
differs is an error naming the key and both shapes; the only tensors allowed to stay behind are the class branch
(``head.cls_preds.*``) when ``nc`` differs from the file's, and they are reported.

Input convention: YOLOX feeds BGR images in 0..255 (``yolox/data/data_augment.py`` ``preproc``, no normalisation since
commit c9fe0aa, tag 0.2.0); Ultralytics feeds RGB in 0..1. That is the convention of the current weights (release
0.1.1rc0); the legacy ones expect other input and nothing in a file tells them apart (:func:`legacy_refusal`). The
stem's first convolution is linear and has no bias (BatchNorm follows), so the conversion folds both into its weight:
input channel ``3 * p + k`` of the Focus stem (patch ``p`` in the order top-left, bottom-left, top-right,
bottom-right; colour ``k``) takes ``255 * W[:, 3 * p + 2 - k]``. The converted model gives the official outputs on the
same (RGB, /255) pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
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
from .official_keys import BACKBONE_PREFIX, official_key_map

OFFICIAL_COMMIT = "6ddff4824372906469a7fae2dc3206c7aa4bbaee"  # the YOLOX commit the key map and tests follow
STEM_KEY = "backbone.backbone.stem.conv.conv.weight"
CLASS_KEY = "head.cls_preds.0.weight"
_REQUIRED_KEYS = (STEM_KEY, CLASS_KEY)
BGR255_SCALE = 255.0  # YOLOX's pixel range; Ultralytics' is 0..1


@dataclass(frozen=True)
class OfficialSize:
    """One of the six YOLOX models of the official model zoo (``exps/default/yolox_<name>.py``).

    Attributes:
        name: YOLOX's size name (``nano``, ``tiny``, ``s``, ``m``, ``l``, ``x``).
        depth: Depth multiple; CSP blocks have ``max(round(3 * depth), 1)`` bottlenecks (x 3 in dark3 and dark4).
        width: Width multiple; the stem has ``int(64 * width)`` channels.
        depthwise: Whether the 3x3 convs other than the stem's are depthwise-separable (Nano).
        test_size: The exp's ``test_size`` (square), the size the model zoo's numbers are measured at.
    """

    name: str
    depth: float
    width: float
    depthwise: bool
    test_size: int

    @property
    def stem_channels(self) -> int:
        """Output channels of the Focus stem, ``int(64 * width)``."""
        return int(64 * self.width)

    @property
    def csp_depth(self) -> int:
        """Bottlenecks in dark2's CSP block, ``max(round(3 * depth), 1)``."""
        return max(round(3 * self.depth), 1)

    @property
    def model_yaml(self) -> str:
        """The AttnYOLO model name that builds this size."""
        return f"yolox-{self.name}.yaml"

    def describe(self) -> str:
        """E.g. 'YOLOX-S (depth 0.33, width 0.50)'."""
        label = self.name.capitalize() if len(self.name) > 1 else self.name.upper()
        extra = ", depthwise" if self.depthwise else ""
        return f"YOLOX-{label} (depth {self.depth:.2f}, width {self.width:.3g}{extra})"


# exps/default/yolox_{nano,tiny,s,m,l,x}.py at the official commit.
OFFICIAL_SIZES: dict[str, OfficialSize] = {
    s.name: s
    for s in (
        OfficialSize("nano", 0.33, 0.25, True, 416),
        OfficialSize("tiny", 0.33, 0.375, False, 416),
        OfficialSize("s", 0.33, 0.50, False, 640),
        OfficialSize("m", 0.67, 0.75, False, 640),
        OfficialSize("l", 1.00, 1.00, False, 640),
        OfficialSize("x", 1.33, 1.25, False, 640),
    )
}


def fold_bgr255_into_stem(weight: torch.Tensor) -> torch.Tensor:
    """Turn the official stem weight (input BGR, 0..255) into one for RGB input in 0..1.

    Args:
        weight: ``backbone.backbone.stem.conv.conv.weight``, (c, 12, k, k): 4 Focus patches x 3 colours.

    Returns:
        ``W'[:, 3p + k] = 255 * W[:, 3p + 2 - k]``: colours reversed within each patch, never across patches.
    """
    c, cin = weight.shape[:2]
    if cin % 3:
        raise CheckpointError(f"{STEM_KEY} has {cin} input channels; a Focus stem over 3 colours has a multiple of 3.")
    return weight.reshape(c, cin // 3, 3, *weight.shape[2:]).flip(2).reshape(weight.shape) * BGR255_SCALE


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


def infer_size(shapes: Mapping[str, tuple[int, ...]]) -> OfficialSize:
    """The official YOLOX size a state dict has, from its tensor shapes.

    Stem output channels give the width (``int(64 * width)``), the bottlenecks of dark2's CSP block the depth
    (``max(round(3 * depth), 1)``), and ``dconv`` keys the depthwise convolutions of Nano.

    Args:
        shapes: ``{official key: shape}``.

    Returns:
        The :class:`OfficialSize`.

    Raises:
        CheckpointError: No official size has these three properties; the message gives them.
    """
    stem = tuple(shapes[STEM_KEY])
    if len(stem) != 4 or stem[1] != 12:
        raise CheckpointError(f"{STEM_KEY} has shape {stem}; YOLOX's Focus stem weight is (c, 12, 3, 3).")
    bottlenecks = {k.split(".")[5] for k in shapes if k.startswith(f"{BACKBONE_PREFIX}dark2.1.m.")}
    depthwise = any(".dconv." in k for k in shapes)
    for size in OFFICIAL_SIZES.values():
        if (size.stem_channels, size.csp_depth, size.depthwise) == (stem[0], len(bottlenecks), depthwise):
            return size
    raise CheckpointError(
        f"stem width {stem[0]}, {len(bottlenecks)} bottleneck(s) in dark2, "
        f"{'depthwise' if depthwise else 'dense'} 3x3 convs: no official YOLOX size (nano, tiny, s, m, l, x) has "
        "these. Fix: pass model=<a YOLOX YAML built like these weights>."
    )


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


def load_official_weights(
    model: nn.Module, state: Mapping[str, torch.Tensor], label: str = "model", source: str = "source"
) -> dict[str, Any]:
    """Copy an official YOLOX state dict into an AttnYOLO YOLOX model, folding the input convention into the stem.

    Args:
        model: A built AttnYOLO YOLOX ``DetectionModel`` (any attention variant); modified in place.
        state: The official state dict.
        label: How to name the model in messages.
        source: How to name the file in messages.

    Returns:
        ``{"mapped": n, "official": n, "attention_rows": [...], "reinitialised": [...]}``: tensors copied, tensors in
        the file, rows left at their initialisation, class-branch keys left at theirs (``nc`` differs).

    Raises:
        CheckpointError: A key of the file has no counterpart, a tensor the model needs is missing, a shape differs
            (other than the class branch's rows when the model's ``nc`` differs from the file's), or a class-branch
            tensor's rows differ from the file's class count; the message names the key and both shapes.
    """
    mapping = official_key_map(model, label)
    ours = model.state_dict()
    wanted = {official: key for key, official in mapping.items() if official is not None}
    extra = [official for official in state if official not in wanted]
    if extra:
        raise CheckpointError(
            f"{source} has {len(extra)} tensor(s) {label} has no place for, e.g. {', '.join(extra[:3])}. Fix: pass the "
            "model YAML these weights were trained as (model=yolox-<size>.yaml), or leave model= out to infer it."
        )
    missing = [official for official in wanted if official not in state]
    if missing:
        raise CheckpointError(
            f"{source} has no tensor {missing[0]}, which {label} needs for {wanted[missing[0]]} "
            f"({len(missing)} missing in all). Fix: pass the model YAML these weights were trained as, or leave model= "
            "out to infer it."
        )
    reinitialised = []
    file_nc, model_nc = int(state[CLASS_KEY].shape[0]), int(ours[wanted[CLASS_KEY]].shape[0])
    with torch.no_grad():
        for official, key in wanted.items():
            src, dst = state[official], ours[key]
            if official == STEM_KEY:
                src = fold_bgr255_into_stem(src.float())
            if official.startswith("head.cls_preds.") and src.shape[:1] != (file_nc,):
                # every class tensor has one row per class; another count is a damaged or edited file, not another nc
                raise CheckpointError(
                    f"{source}: {official} has shape {tuple(src.shape)}, but {CLASS_KEY} has {file_nc} classes: the "
                    "file's class branch is inconsistent (damaged or edited). Fix: download or save the weights again."
                )
            if tuple(src.shape) != tuple(dst.shape):
                other_nc = file_nc != model_nc and dst.shape[:1] == (model_nc,) and src.shape[1:] == dst.shape[1:]
                if official.startswith("head.cls_preds.") and other_nc:
                    reinitialised.append(official)  # nc= differs from the file's: this branch is trained anew
                    continue
                raise CheckpointError(
                    f"{source}: {official} has shape {tuple(src.shape)}, but {label} needs {tuple(dst.shape)} for "
                    f"{key}. Fix: pass the model YAML these weights were trained as, or leave model= out."
                )
            dst.copy_(src.to(dst.dtype))
    attention = sorted({int(k.split(".")[1]) for k, official in mapping.items() if official is None})
    return {
        "mapped": len(wanted) - len(reinitialised),
        "official": len(state),
        "attention_rows": attention,
        "reinitialised": reinitialised,
    }


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
