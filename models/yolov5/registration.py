"""What classic YOLOv5 adds to the seam (:mod:`attnyolo.integration.plugins`), registered by :mod:`attnyolo.yolov5`.

* the anchor-based ``YOLOv5Detect`` head (the forks' ``Detect, [nc, anchors]`` rows become it, see
  :mod:`attnyolo.integration.parser_forks`), with YOLOv5's loss and its ``Bottleneck``/``BottleneckCSP`` blocks;
* the checkpoint format of ultralytics/yolov5 and its forks (:data:`attnyolo.yolov5.checkpoint.FORMAT`);
* the self-checks of the Ultralytics internals these rely on: the head's strides and anchors, and the parser's
  module names resolved on every call.
"""

from __future__ import annotations

import torch
import ultralytics.nn.tasks as tasks
from ultralytics.nn.modules import Bottleneck, BottleneckCSP
from ultralytics.nn.tasks import DetectionModel

from ..integration.parser_forks import resolve_classic_args
from ..integration.plugins import Head, register_format, register_head, register_self_check
from .blocks import CLASSIC_BLOCKS, YOLOv5Bottleneck, YOLOv5BottleneckCSP
from .checkpoint import FORMAT
from .head import YOLOv5Detect
from .loss import YOLOv5Loss

# A tiny classic YOLOv5 (the self-checks build it): strides 8/16/32, the forks' CA layer, the anchor-based Detect row.
_CLASSIC_CFG = {
    "nc": 2,
    "depth_multiple": 0.33,
    "width_multiple": 0.25,
    "anchors": [[10, 13, 16, 30], [30, 61, 62, 45], [116, 90, 156, 198]],
    "backbone": [
        [-1, 1, "Conv", [64, 6, 2, 2]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 1, "CA", [256]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 1, "Conv", [1024, 3, 2]],
    ],
    "head": [[[3, 4, 5], 1, "Detect", ["nc", "anchors"]]],
}


def _check_classic_head() -> None:
    model = DetectionModel(dict(_CLASSIC_CFG), ch=3, verbose=False)
    head = model.model[-1]
    if not isinstance(head, YOLOv5Detect) or list(head.f) != [3, 4, 5]:
        raise AssertionError(f"the classic head is {type(head).__name__} reading rows {getattr(head, 'f', None)}")
    if head.stride.tolist() != [8.0, 16.0, 32.0] or head.anchors[0, 0].tolist() != [1.25, 1.625]:
        raise AssertionError(f"strides {head.stride.tolist()}, first anchor {head.anchors[0, 0].tolist()} (grid units)")
    if not isinstance(model.init_criterion(), YOLOv5Loss):
        raise AssertionError("a classic YOLOv5 model did not get YOLOv5Loss")
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 64, 64))[0]
    if tuple(out.shape) != (1, 4 + 2, 2 * (8 * 8 + 4 * 4 + 2 * 2)):
        raise AssertionError(f"the classic head returned shape {tuple(out.shape)}, not (1, 6, 168)")
    if model.double().model[-1].anchors.dtype != torch.float64:  # BaseModel._apply converts the anchors buffer
        raise AssertionError("converting the model left the classic head's anchors behind")


def _check_classic_blocks() -> None:
    d = dict(_CLASSIC_CFG)
    d["backbone"] = [*d["backbone"][:2], [-1, 3, "BottleneckCSP", [128]], [-1, 6, "Bottleneck", [128, False]]]
    d["backbone"] += [_CLASSIC_CFG["backbone"][i] for i in (2, 4, 5)]
    d["head"] = [[[4, 5, 6], 1, "Detect", ["nc", "anchors"]]]
    model = DetectionModel(d, ch=3, verbose=False)
    csp, stack = model.model[2], model.model[3]
    if type(csp) is not YOLOv5BottleneckCSP or len(csp.m) != 1 or csp.cv4.conv.out_channels != 32:
        raise AssertionError(f"row 2 built {type(csp).__name__} with {len(getattr(csp, 'm', ()))} blocks, not 1")
    if not all(type(b) is YOLOv5Bottleneck and b.cv1.conv.kernel_size == (1, 1) and not b.add for b in stack):
        raise AssertionError(f"row 3 built {[type(b).__name__ for b in stack]}, not YOLOv5's 1x1-3x3 blocks")
    if tasks.Bottleneck is not Bottleneck or tasks.BottleneckCSP is not BottleneckCSP:
        raise AssertionError("parse_model's Bottleneck/BottleneckCSP names were not restored after a classic build")


register_head(
    Head(
        YOLOv5Detect,
        family="classic YOLOv5",
        resolve_args=resolve_classic_args,
        example_args="[nc, anchors]",
        loss=YOLOv5Loss,
        blocks=CLASSIC_BLOCKS,
    )
)
register_format(FORMAT)
register_self_check(
    "classic_head",
    "ultralytics.nn.tasks.parse_model / DetectionModel stride and bias_init (classic YOLOv5 head)",
    _check_classic_head,
)
register_self_check(
    "classic_blocks",
    "ultralytics.nn.tasks.parse_model (module names resolved in its globals on every call)",
    _check_classic_blocks,
)
