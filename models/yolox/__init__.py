"""YOLOX inside Ultralytics: decoupled head, depthwise-separable conv (Nano), SimOTA and the YOLOX loss.

The models are built from ``cfg/yolox/yolox.yaml`` (and ``yolox-attention.yaml``) by name, e.g.
``YOLO("yolox-s.yaml")`` or ``YOLO("yolox-nano-ELA-S.yaml")``; :mod:`attnyolo.integration` wires the head, the
depthwise option and the loss into Ultralytics. Class import paths here are part of the checkpoint format.
"""

from .blocks import DWSepConv, make_depthwise_separable
from .head import YOLOXDetect
from .loss import YOLOXLoss, pad_targets
from .simota import SimOTAResult, simota_assign, simota_assign_per_image

__all__ = (
    "DWSepConv",
    "SimOTAResult",
    "YOLOXDetect",
    "YOLOXLoss",
    "make_depthwise_separable",
    "pad_targets",
    "simota_assign",
    "simota_assign_per_image",
)
