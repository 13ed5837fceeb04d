"""What YOLOX adds to the seam (:mod:`attnyolo.integration.plugins`), registered when :mod:`attnyolo.yolox` is imported.

* the ``YOLOXDetect`` head, which reads one row per pyramid level, with the YOLOX loss (:func:`resolve_head_args`);
* the top-level ``depthwise:`` key of YOLOX-Nano (:func:`~attnyolo.yolox.blocks.make_depthwise_separable`);
* the official YOLOX checkpoint format (:data:`attnyolo.yolox.official.FORMAT`);
* the self-checks of the Ultralytics internals these rely on: the multi-row head and depthwise conversion, the
  criterion, and ``get_flops`` on a Focus stem.
"""

from __future__ import annotations

import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import torch_utils
from ultralytics.utils.ops import make_divisible

from ..errors import ModelConfigError
from ..integration.names import yaml_label
from ..integration.parser import scale_params
from ..integration.plugins import (
    Head,
    ModelKey,
    register_format,
    register_head,
    register_model_key,
    register_self_check,
)
from .blocks import DWSepConv, make_depthwise_separable
from .head import YOLOX_HEAD_WIDTH, YOLOXDetect
from .loss import YOLOXLoss
from .official import FORMAT


def resolve_head_args(d: dict, i: int, row: list, channels: list[int]) -> list:
    """Turn a head row's YAML args ``[nc]`` or ``[nc, hidden]`` into ``[nc, scaled hidden, channels]``.

    ``hidden`` is written unscaled (YOLOX's 256) and scaled and clipped like a Conv row's channels, which equals
    YOLOX's ``int(256 * width)`` at every official width.
    """
    args = list(row[3])
    if not 1 <= len(args) <= 2:
        raise ModelConfigError(
            f"{yaml_label(d)}, row {i} ({row[2]}): args {args!r} should be [nc] or [nc, hidden width], e.g. [nc, 256]."
        )
    hidden = args[1] if len(args) == 2 else YOLOX_HEAD_WIDTH
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ModelConfigError(
            f"{yaml_label(d)}, row {i} ({row[2]}): hidden width {hidden!r} must be a positive integer, e.g. 256."
        )
    width, max_channels = scale_params(d)
    return [args[0], make_divisible(min(hidden, max_channels) * width, 8), channels]


# A tiny YOLOX: Focus stem, CoordAtt, the multi-row head and depthwise conversion (the self-checks build it).
_YOLOX_CFG = {
    "nc": 2,
    "depthwise": True,
    "backbone": [
        [-1, 1, "Focus", [8, 3]],
        [-1, 1, "Conv", [16, 3, 2]],
        [-1, 1, "Conv", [24, 3, 2]],
        [-1, 1, "CoordAtt", [24]],
        [-1, 1, "Conv", [32, 3, 2]],
        [-1, 1, "Conv", [40, 3, 2]],
    ],
    "head": [[[3, 4, 5], 1, "YOLOXDetect", ["nc", 16]]],
}


def _yolox_model():
    return DetectionModel(dict(_YOLOX_CFG), ch=3, verbose=False)


def _check_yolox_head() -> None:
    model = _yolox_model().eval()
    head = model.model[-1]
    if not isinstance(head, YOLOXDetect) or list(head.f) != [3, 4, 5]:
        raise AssertionError(f"the YOLOX head reads rows {getattr(head, 'f', None)}, not [3, 4, 5]")
    if not any(isinstance(m, DWSepConv) for m in model.modules()):
        raise AssertionError("`depthwise: true` made no conv depthwise-separable")
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))[0]
    if tuple(out.shape) != (1, 4 + 2, 8 * 8 + 4 * 4 + 2 * 2):
        raise AssertionError(f"the YOLOX head returned shape {tuple(out.shape)}, not (1, 6, 84)")


def _check_criterion() -> None:
    criterion = _yolox_model().init_criterion()
    if not isinstance(criterion, YOLOXLoss):
        raise AssertionError(f"a YOLOX model got {type(criterion).__name__}, not YOLOXLoss")


def _check_flops() -> None:
    # through the module: the check must call the get_flops the seam patched, not the one bound at import
    if not torch_utils.get_flops(_yolox_model(), 64) > 0:
        raise AssertionError("get_flops reports 0 GFLOPs for a Focus-stem model")


register_head(
    Head(YOLOXDetect, family="YOLOX", resolve_args=resolve_head_args, example_args="[nc, 256]", loss=YOLOXLoss)
)
register_model_key(
    ModelKey(
        "depthwise",
        apply=make_depthwise_separable,
        done="{changed} dense 3x3 convs made depthwise 3x3 + pointwise 1x1 (Focus stem kept), {before:,} -> {after:,} "
        "parameters; the rows above show the dense convs",
        example="`depthwise: [n]` for YOLOX-Nano",
    )
)
register_format(FORMAT)
register_self_check(
    "yolox_head", "ultralytics.nn.tasks.parse_model (multi-row YOLOX head, depthwise)", _check_yolox_head
)
register_self_check("criterion", "ultralytics.nn.tasks.DetectionModel.init_criterion", _check_criterion)
register_self_check("flops", "ultralytics.utils.torch_utils.get_flops", _check_flops)
