"""The PASCAL Visual Object Classes (VOC) Challenge (Everingham et al., IJCV 2010): the detection AP protocol.

This is the devkit algorithm (VOCevaldet.m, and its Python ports in py-faster-rcnn and YOLOX ``voc_eval.py``),
written here from its description:

- per class, detections are sorted by score, highest first;
- box overlap is IoU with the devkit's +1 pixel convention: a box ``[x1, y1, x2, y2]`` covers
  ``(x2 - x1 + 1) * (y2 - y1 + 1)`` pixels, because VOC coordinates are inclusive integer pixel indices;
- each detection is compared with the ground-truth box it overlaps most (difficult ones included). If that IoU is
  strictly greater than the threshold (0.5): a ``difficult`` box makes the detection ignored (neither true nor false
  positive); an unmatched box makes it a true positive and marks the box; an already matched box makes it a false
  positive (duplicate). Otherwise the detection is a false positive;
- recall = cumulative TP / number of non-difficult ground-truth boxes, precision = cumulative TP / cumulative
  (TP + FP);
- AP is the 11-point interpolated AP (VOC2007 test) or the area under the monotone precision envelope (VOC2010+).

Ultralytics' VOC.yaml drops difficult objects from the labels, so its mAP counts detections of difficult objects as
false positives; the numbers from this module are the official protocol and are usually somewhat higher.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..data.annotations import read_voc_xml  # noqa: F401  (re-exported: the evaluator's input)

# Devkit constants (VOCevaldet.m): IoU must exceed 0.5; VOC2007 averages precision at 11 recall levels.
VOC_IOU_THRESHOLD = 0.5
VOC07_RECALL_POINTS = 11


def voc_ap(recall: Sequence[float] | np.ndarray, precision: Sequence[float] | np.ndarray, use_07_metric: bool) -> float:
    """Average precision from a precision/recall curve, as the VOC devkit defines it.

    Args:
        recall (Sequence[float] | np.ndarray): Recall after each detection, in score order (non-decreasing).
        precision (Sequence[float] | np.ndarray): Precision after each detection, same length as ``recall``.
        use_07_metric (bool): True for the VOC2007 11-point AP: the mean over t = 0, 0.1, ..., 1 of the maximum
            precision at recall >= t (0 where recall never reaches t). False for the VOC2010+ AP: the area under the
            precision envelope made monotone from the right.

    Returns:
        (float): AP in [0, 1]. An empty curve (no detections) gives 0.

    Raises:
        ValueError: If the two arrays are not 1-D and of equal length.

    Examples:
        >>> voc_ap([0.5, 1.0], [1.0, 0.5], use_07_metric=False)
        0.75
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if recall.ndim != 1 or recall.shape != precision.shape:
        raise ValueError(
            f"recall and precision must be 1-D arrays of equal length, got shapes {recall.shape} and {precision.shape}."
        )

    if use_07_metric:
        # i / 10 gives the correctly rounded thresholds; np.arange(0, 1.1, 0.1) would give 0.30000000000000004 etc.,
        # so a recall of exactly 3/10 would miss the t = 0.3 point that the devkit's definition (recall >= t) grants.
        thresholds = np.arange(VOC07_RECALL_POINTS) / (VOC07_RECALL_POINTS - 1)
        reached = recall[None, :] >= thresholds[:, None]  # (11, n)
        best = np.where(reached, precision[None, :], 0.0).max(axis=1, initial=0.0)
        return float(best.mean())

    # Sentinels: the curve starts at recall 0 and ends at recall 1 with precision 0, so the area covers [0, 1].
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    envelope = np.maximum.accumulate(mpre[::-1])[::-1]
    # Steps where recall does not change have zero width, so summing over every step equals the devkit's sum over
    # the points where recall changes.
    return float(np.sum(np.diff(mrec) * envelope[1:]))


def _box_array(value: Any, where: str) -> np.ndarray:
    """Return ``value`` as a finite float box ``[x1, y1, x2, y2]`` or raise a ValueError naming ``where``."""
    try:
        box = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        box = None
    if box is None or box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"{where}: bbox must be 4 finite numbers [x1, y1, x2, y2] in pixels, got {value!r}.")
    return box


def _class_index(value: Any, num_classes: int, where: str) -> int:
    """Return ``value`` as a class index in [0, num_classes) or raise a ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < num_classes:
        raise ValueError(f"{where}: class_id must be an int in [0, {num_classes}), got {value!r}.")
    return int(value)


def _iou_plus_one(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes with the devkit's inclusive-pixel (+1) areas."""
    iw = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2]) - np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    ih = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3]) - np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    inter = np.clip(iw + 1.0, 0.0, None) * np.clip(ih + 1.0, 0.0, None)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0] + 1.0) * (boxes_a[:, 3] - boxes_a[:, 1] + 1.0)
    area_b = (boxes_b[:, 2] - boxes_b[:, 0] + 1.0) * (boxes_b[:, 3] - boxes_b[:, 1] + 1.0)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def evaluate_voc(
    ground_truth: Mapping[Any, Sequence[Mapping[str, Any]]],
    detections: Iterable[Mapping[str, Any]],
    class_names: Sequence[str],
    iou_threshold: float = VOC_IOU_THRESHOLD,
) -> dict[str, Any]:
    """Score detections with the official PASCAL VOC protocol (devkit algorithm, see the module docstring).

    Classes without a single non-difficult ground-truth box have no defined recall, so their AP is ``None`` and
    they are left out of the mean (the devkit would divide by zero). Detections of such classes still appear in
    ``num_det``. Detections with equal scores keep their input order (the devkit's unstable sort leaves it open).

    Args:
        ground_truth (Mapping): image_id -> list of objects ``{"class_id": int, "bbox": [x1, y1, x2, y2] pixels,
            "difficult": bool}``. Every evaluated image must be a key, with an empty list if it has no objects;
            ``difficult`` may be omitted (False).
        detections (Iterable[Mapping]): Items ``{"image_id", "class_id": int, "score": float, "bbox": [x1, y1,
            x2, y2] pixels}``.
        class_names (Sequence[str]): Class names indexed by ``class_id``; they key ``per_class``.
        iou_threshold (float): A detection matches a box when IoU is strictly greater than this. The key names
            below say ``AP50`` whatever the threshold.

    Returns:
        (dict): ``{"mAP50_11point": float | None, "mAP50_area": float | None, "per_class": {name: {"AP50_11point",
            "AP50_area", "num_gt", "num_det"}}}``. AP values are fractions in [0, 1] (``None`` where undefined);
            ``num_gt`` counts non-difficult boxes, ``num_det`` all detections of the class, ignored ones included.

    Raises:
        ValueError: If an image id, class id or box is invalid; the message names the entry.

    Examples:
        >>> gt = {"img1": [{"class_id": 0, "bbox": [10, 10, 50, 50], "difficult": False}]}
        >>> dets = [{"image_id": "img1", "class_id": 0, "score": 0.9, "bbox": [12, 10, 50, 52]}]
        >>> evaluate_voc(gt, dets, ["cat"])["mAP50_area"]
        1.0
    """
    num_classes = len(class_names)
    if num_classes == 0:
        raise ValueError("class_names is empty; pass the dataset's class names indexed by class_id.")
    if len(set(class_names)) != num_classes:
        raise ValueError(f"class_names has duplicates: {list(class_names)}; each class needs its own name.")
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold!r}.")

    # Ground truth grouped per (class, image) so that each image gives one IoU matrix per class.
    image_index = {image_id: i for i, image_id in enumerate(ground_truth)}
    gt_boxes: dict[tuple[int, int], list[np.ndarray]] = defaultdict(list)
    gt_difficult: dict[tuple[int, int], list[bool]] = defaultdict(list)
    num_gt = np.zeros(num_classes, dtype=np.int64)
    for image_id, objects in ground_truth.items():
        for k, obj in enumerate(objects):
            where = f"ground_truth[{image_id!r}][{k}]"
            cls = _class_index(obj.get("class_id"), num_classes, where)
            key = (cls, image_index[image_id])
            gt_boxes[key].append(_box_array(obj.get("bbox"), where))
            difficult = bool(obj.get("difficult", False))
            gt_difficult[key].append(difficult)
            num_gt[cls] += not difficult

    det_image, det_class, det_score, det_box = [], [], [], []
    unknown_images = []
    for k, det in enumerate(detections):
        where = f"detections[{k}]"
        missing = [key for key in ("image_id", "class_id", "score", "bbox") if key not in det]
        if missing:
            raise ValueError(f"{where} lacks {missing}; each detection needs image_id, class_id, score and bbox.")
        if det["image_id"] not in image_index:
            unknown_images.append(det["image_id"])
            continue
        try:
            score = float(det["score"])
        except (TypeError, ValueError):
            score = float("nan")
        if not np.isfinite(score):
            raise ValueError(f"{where}: score must be a finite number, got {det['score']!r}.")
        det_image.append(image_index[det["image_id"]])
        det_class.append(_class_index(det["class_id"], num_classes, where))
        det_score.append(score)
        det_box.append(_box_array(det["bbox"], where))
    if unknown_images:
        shown = list(dict.fromkeys(unknown_images))[:5]
        raise ValueError(
            f"{len(unknown_images)} detections name image ids that are not in ground_truth, e.g. {shown}. "
            "Use the same image ids for both, and list images without objects in ground_truth with an empty list."
        )
    det_image_arr = np.asarray(det_image, dtype=np.int64)
    det_class_arr = np.asarray(det_class, dtype=np.int64)
    det_score_arr = np.asarray(det_score, dtype=np.float64)
    det_box_arr = np.asarray(det_box, dtype=np.float64).reshape(-1, 4)

    per_class = {}
    ap_11point, ap_area = [], []
    for cls, name in enumerate(class_names):
        selected = np.flatnonzero(det_class_arr == cls)
        # Stable sort on the negated score: highest first, ties in input order.
        selected = selected[np.argsort(-det_score_arr[selected], kind="stable")]
        images, boxes = det_image_arr[selected], det_box_arr[selected]
        num_det = len(selected)

        # Best-overlapping ground-truth box of each detection; one IoU matrix per image.
        best_iou = np.full(num_det, -np.inf)
        best_gt = np.zeros(num_det, dtype=np.int64)
        difficult_of: dict[int, np.ndarray] = {}
        for img in np.unique(images):
            key = (cls, int(img))
            if key not in gt_boxes:
                continue  # no box of this class here: every detection stays a false positive
            rows = np.flatnonzero(images == img)
            iou = _iou_plus_one(boxes[rows], np.stack(gt_boxes[key]))
            best_gt[rows] = iou.argmax(axis=1)
            best_iou[rows] = iou.max(axis=1)
            difficult_of[int(img)] = np.asarray(gt_difficult[key])

        # The matching itself is inherently sequential: whether a detection is a duplicate depends on the
        # higher-scored detections before it.
        tp = np.zeros(num_det)
        fp = np.zeros(num_det)
        matched: dict[int, np.ndarray] = {img: np.zeros(len(d), dtype=bool) for img, d in difficult_of.items()}
        for d in range(num_det):
            if best_iou[d] > iou_threshold:
                img, j = int(images[d]), best_gt[d]
                if difficult_of[img][j]:
                    continue  # ignored: neither TP nor FP
                if not matched[img][j]:
                    tp[d] = 1.0
                    matched[img][j] = True
                else:
                    fp[d] = 1.0  # duplicate detection of an already matched box
            else:
                fp[d] = 1.0

        entry: dict[str, Any] = {
            "AP50_11point": None,
            "AP50_area": None,
            "num_gt": int(num_gt[cls]),
            "num_det": num_det,
        }
        if num_gt[cls] > 0:
            cum_tp, cum_fp = np.cumsum(tp), np.cumsum(fp)
            recall = cum_tp / num_gt[cls]
            # eps keeps leading ignored detections (0 TP, 0 FP) at precision 0 instead of 0/0.
            precision = cum_tp / np.maximum(cum_tp + cum_fp, np.finfo(np.float64).eps)
            entry["AP50_11point"] = voc_ap(recall, precision, use_07_metric=True)
            entry["AP50_area"] = voc_ap(recall, precision, use_07_metric=False)
            ap_11point.append(entry["AP50_11point"])
            ap_area.append(entry["AP50_area"])
        per_class[name] = entry

    return {
        "mAP50_11point": float(np.mean(ap_11point)) if ap_11point else None,
        "mAP50_area": float(np.mean(ap_area)) if ap_area else None,
        "per_class": per_class,
    }
