"""Official YOLOX checkpoints (github Megvii-BaseDetection/YOLOX) as AttnYOLO models.

YOLOX's trainer saves ``{"model": state_dict, "optimizer": ..., "start_epoch": ..., ...}`` with ``torch.save``
(``yolox/core/trainer.py`` ``save_ckpt``; ``"model"`` holds the EMA weights), and its readers accept that dict or a
bare state dict (``tools/export_onnx.py``, ``yolox/models/build.py``). Both are plain tensors in dicts, so they are
read with ``torch.load(weights_only=True)``: no code in the file runs.

Module names differ from this project's, which builds YOLOX from ``cfg/yolox/yolox.yaml`` through Ultralytics' parser;
:mod:`attnyolo.yolox.official_keys` maps one onto the other.

Every official tensor must land on a tensor of the same shape: a key left over, a key missing or a shape that
differs is an error naming the key and both shapes; the only tensors allowed to stay behind are the class branch
(``head.cls_preds.*``) when ``nc`` differs from the file's, and they are reported.

Input convention: YOLOX feeds BGR images in 0..255 (``yolox/data/data_augment.py`` ``preproc``, no normalisation since
commit c9fe0aa, tag 0.2.0); Ultralytics feeds RGB in 0..1. The stem's first convolution is linear and has no bias
(BatchNorm follows), so the conversion folds both into its weight: input channel ``3 * p + k`` of the Focus stem
(patch ``p`` in the order top-left, bottom-left, top-right, bottom-right; colour ``k``) takes
``255 * W[:, 3 * p + 2 - k]``. The converted model gives the official outputs on the same (RGB, /255) pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.importing import ForeignFormat, native_checkpoint
from ..errors import CheckpointError, first_line
from ..integration.checkpoints import load_weights_only, referenced_globals
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


def read_official(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Read an official YOLOX checkpoint: its state dict and the names of its other top-level entries.

    Args:
        path: A ``.pth`` as YOLOX's trainer saves it (``{"model": state_dict, ...}``) or a bare state dict.

    Returns:
        ``(state_dict, other entry names)``.

    Raises:
        CheckpointError: The file cannot be read with ``weights_only=True`` or holds no YOLOX state dict.
    """
    path = Path(path)
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    if _cache.get("key") != key:
        _cache.clear()
        try:
            referenced_globals(path)  # refuses, unread, a pickle larger than any checkpoint's (and damaged files)
            obj = load_weights_only(path)
        except Exception as error:  # torch raises many types for files it cannot read
            _cache.update(key=key, result=None, reason=first_line(error))
        else:
            _cache.update(key=key, result=_state_of(obj), reason="it holds no YOLOX state dict")
    if _cache["result"] is None:
        raise CheckpointError(
            f"source={path} is not an official YOLOX checkpoint ({_cache['reason']}). Fix: pass a .pth that YOLOX's "
            "trainer saved or a released yolox_<size>.pth."
        )
    return _cache["result"]


def detect(path: Path) -> bool:
    """Whether ``path`` is an official YOLOX checkpoint (read with ``weights_only=True``; no code runs)."""
    try:
        read_official(path)
    except (CheckpointError, OSError):
        return False
    return True


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
        CheckpointError: A key of the file has no counterpart, a tensor the model needs is missing, or a shape
            differs (other than the class branch); the message names the key and both shapes.
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
    with torch.no_grad():
        for official, key in wanted.items():
            src, dst = state[official], ours[key]
            if official == STEM_KEY:
                src = fold_bgr255_into_stem(src.float())
            if tuple(src.shape) != tuple(dst.shape):
                if official.startswith("head.cls_preds."):  # a different number of classes: train this branch anew
                    reinitialised.append(official)
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
    from ultralytics.nn.tasks import DetectionModel

    from ..integration.datasets import COCO_NUM_CLASSES, coco_class_names
    from ..integration.names import check_model_source
    from .head import YOLOXDetect

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
