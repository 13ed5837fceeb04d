"""An official YOLOX state dict (github Megvii-BaseDetection/YOLOX) copied into an AttnYOLO YOLOX model.

The six sizes of the official model zoo, the size a state dict has (:func:`infer_size`), the fold of YOLOX's input
convention into the stem (:func:`fold_bgr255_into_stem`) and the copy itself (:func:`load_official_weights`); the key
map is :mod:`attnyolo.yolox.official_keys`, the reader of the files :mod:`attnyolo.yolox.official`.

Every official tensor must land on a tensor of the same shape: a key left over, a key missing or a shape that
differs is an error naming the key and both shapes; the only tensors allowed to stay behind are the class branch
(``head.cls_preds.*``) when ``nc`` differs from the file's, and they are reported.

Input convention: YOLOX feeds BGR images in 0..255 (``yolox/data/data_augment.py`` ``preproc``, no normalisation since
commit c9fe0aa, tag 0.2.0); Ultralytics feeds RGB in 0..1. That is the convention of the current weights (release
0.1.1rc0); the legacy ones expect other input and nothing in a file tells them apart
(:func:`attnyolo.yolox.official.legacy_refusal`). The stem's first convolution is linear and has no bias (BatchNorm
follows), so the conversion folds both into its weight: input channel ``3 * p + k`` of the Focus stem (patch ``p`` in
the order top-left, bottom-left, top-right, bottom-right; colour ``k``) takes ``255 * W[:, 3 * p + 2 - k]``. The
converted model gives the official outputs on the same (RGB, /255) pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .official_keys import BACKBONE_PREFIX, official_key_map

STEM_KEY = "backbone.backbone.stem.conv.conv.weight"
CLASS_KEY = "head.cls_preds.0.weight"
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
