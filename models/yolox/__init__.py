"""YOLOX inside Ultralytics: decoupled head, depthwise-separable conv (Nano), SimOTA and the YOLOX loss.

The models are built from ``cfg/yolox/yolox.yaml`` (and ``yolox-attention.yaml``) by name, e.g.
``YOLO("yolox-s.yaml")`` or ``YOLO("yolox-nano-ELA-S.yaml")``; :mod:`attnyolo.integration` wires the head, the
depthwise option and the loss into Ultralytics. Class import paths here are part of the checkpoint format.
:mod:`attnyolo.yolox.official` converts the official YOLOX checkpoints; :mod:`attnyolo.yolox.recipe` is YOLOX's own
training schedule (``attnyolo train recipe=yolox``).
"""

from . import registration  # noqa: F401  (registers the family with the seam: attnyolo.integration.plugins)
from .blocks import DWSepConv, make_depthwise_separable
from .head import YOLOXDetect
from .loss import YOLOXLoss, pad_targets
from .simota import (
    LEGACY_RULES,
    OFFICIAL_RULES,
    SIMOTA_RULES,
    SimOTAResult,
    SimOTARules,
    simota_assign,
    simota_assign_per_image,
)

__all__ = (
    "LEGACY_RULES",
    "OFFICIAL_RULES",
    "SIMOTA_RULES",
    "DWSepConv",
    "SimOTAResult",
    "SimOTARules",
    "YOLOXDetect",
    "YOLOXLoss",
    "make_depthwise_separable",
    "pad_targets",
    "simota_assign",
    "simota_assign_per_image",
)
