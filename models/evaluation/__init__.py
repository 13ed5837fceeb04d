"""Detection evaluation: the official PASCAL VOC protocol and COCO via pycocotools.

Both take plain Python data (dicts and lists of pixel boxes) or the files that real tools read and write, so that
predictions from Ultralytics' ``save_json=True`` or from our own tools can be scored the way the papers score them.
"""

from .coco import (
    COCO_METRIC_NAMES,
    build_coco_ground_truth,
    coco80_to_91,
    evaluate_coco,
    load_results,
    yolo_image_id,
)
from .voc import evaluate_voc, read_voc_xml, voc_ap

__all__ = [
    "COCO_METRIC_NAMES",
    "build_coco_ground_truth",
    "coco80_to_91",
    "evaluate_coco",
    "evaluate_voc",
    "load_results",
    "read_voc_xml",
    "voc_ap",
    "yolo_image_id",
]
