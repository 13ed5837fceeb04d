"""Classic YOLOv5 (anchor-based, ultralytics/yolov5 v7.0) inside Ultralytics.

Head, loss, AutoAnchor, training recipe, and the reader for checkpoints that ultralytics/yolov5 and its forks wrote.

The models are built from ``cfg/yolov5/yolov5-classic.yaml`` (and ``yolov5-classic-attention.yaml``) by name, e.g.
``YOLO("yolov5s-classic.yaml")``, ``YOLO("yolov5n-classic-CoordAtt.yaml")`` or the forks'
``YOLO("yolov5s_Coordinate_attention.yaml")``, and from YOLOv5's own YAMLs unchanged (``Detect, [nc, anchors]``).
:mod:`attnyolo.integration` wires the head and the loss into Ultralytics. Class import paths here are part of the
checkpoint format.
"""

from . import registration  # noqa: F401  (registers the family with the seam: attnyolo.integration.plugins)
from .head import YOLOv5Detect, check_anchor_order
from .loss import YOLOv5Loss, build_targets, ciou

__all__ = ("YOLOv5Detect", "YOLOv5Loss", "build_targets", "check_anchor_order", "ciou")
