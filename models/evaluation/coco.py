"""Microsoft COCO: Common Objects in Context (Lin et al., ECCV 2014, arXiv 1405.0312): the box AP protocol.

Scoring is pycocotools' COCOeval (iouType ``bbox``); this module only prepares its inputs, checks them with errors a
person can act on, and reads its outputs. Results follow the COCO results format ``[{"image_id", "category_id",
"bbox": [x, y, w, h] pixels, "score"}]``, which is what Ultralytics' ``save_json=True`` writes.

Ultralytics' own mAP (101-point interpolation on its own matcher) differs slightly from these numbers, and
Ultralytics >= 8.3.157 scores COCO JSON with faster-coco-eval rather than pycocotools.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from ultralytics.data.converter import coco80_to_coco91_class

from ..data.annotations import _check_coco_keys, read_coco_json, read_json  # noqa: F401  (read_coco_json: re-exported)

# Metrics reported by evaluate_coco and their positions in COCOeval.stats (see COCOeval.summarize): AP@[.5:.95],
# AP@.5, AP@.75, AP small/medium/large, and AR with at most 100 detections per image.
COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
_STATS_INDEX = (0, 1, 2, 3, 4, 5, 8)

_RESULT_KEYS = ("image_id", "category_id", "bbox", "score")
_SHOWN_IDS = 5  # how many offending ids an error message lists

CocoSource = COCO | Mapping[str, Any] | str | Path


@lru_cache(maxsize=1)
def _coco91_table() -> tuple[int, ...]:
    # Imported lazily: Ultralytics is heavy to import and only this helper needs it.
    return tuple(coco80_to_coco91_class())


def coco80_to_91(class_index: int) -> int:
    """Map a COCO 80-class training index to the original COCO category id (1..90, with gaps).

    The table is Ultralytics' ``coco80_to_coco91_class``, the one its ``save_json`` uses for COCO.

    Args:
        class_index (int): Index in [0, 80) in the order of Ultralytics' coco.yaml.

    Returns:
        (int): The ``category_id`` that ``instances_val2017.json`` uses for that class.

    Raises:
        ValueError: If ``class_index`` is not in [0, 80).

    Examples:
        >>> coco80_to_91(0), coco80_to_91(79)  # person, toothbrush
        (1, 90)
    """
    table = _coco91_table()
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)):
        raise ValueError(f"class_index must be an int in [0, {len(table)}), got {class_index!r}.")
    if not 0 <= class_index < len(table):
        raise ValueError(f"class_index must be in [0, {len(table)}), got {class_index}.")
    return table[int(class_index)]


def yolo_image_id(path: str | Path) -> int | str:
    """The image id Ultralytics' ``save_json`` writes for an image file: its stem, as an int when all digits.

    Args:
        path (str | Path): Image path or file name.

    Returns:
        (int | str): ``int(stem)`` for stems of decimal digits (``000123.jpg`` -> 123), else the stem
            (``2008_000002.jpg`` -> ``'2008_000002'``).

    Examples:
        >>> yolo_image_id("images/val2017/000000000139.jpg"), yolo_image_id("2008_000002.jpg")
        (139, '2008_000002')
    """
    stem = Path(path).stem
    # Ultralytics tests str.isnumeric(), which also accepts characters int() rejects ('²'); isdecimal() is exactly
    # the set int() accepts, so the two agree wherever Ultralytics itself does not crash.
    return int(stem) if stem.isdecimal() else stem


def build_coco_ground_truth(images: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Build a COCO-format ground-truth dict from per-image pixel boxes.

    Category ids are class index + 1, the convention Ultralytics' ``save_json`` uses for datasets other than COCO,
    so its ``predictions.json`` can be scored against the result directly.

    Difficult objects (PASCAL VOC) become ``iscrowd=1``, which makes COCOeval ignore them: they are not counted
    as objects to find, and a detection that matches one is neither a true nor a false positive. Two departures
    from VOC's handling follow from COCOeval's crowd rules: a crowd box can absorb any number of detections, and
    the overlap with it is intersection over the detection's area rather than IoU.

    ``area`` is the box area w * h (there are no masks); COCOeval uses it for the small/medium/large split.

    Args:
        images (Sequence[Mapping]): One dict per image: ``{"id": int | str, "file_name": str, "width": int,
            "height": int, "boxes": [[x1, y1, x2, y2], ...] pixels, "classes": [int, ...],
            "difficult": [bool, ...] (optional)}``. Ids must be unique and all ints or all strings.
        class_names (Sequence[str]): Class names indexed by class index.

    Returns:
        (dict): ``{"info", "images", "annotations", "categories"}`` ready for ``json.dump`` or ``evaluate_coco``.

    Raises:
        ValueError: On duplicate or mixed-type image ids, mismatched list lengths, class indices out of range or
            boxes that are not 4 finite numbers with x2 >= x1 and y2 >= y1. The message names the image and box.

    Examples:
        >>> gt = build_coco_ground_truth(
        ...     [{"id": 1, "file_name": "1.jpg", "width": 64, "height": 48, "boxes": [[4, 8, 20, 40]], "classes": [0]}],
        ...     ["cat"],
        ... )
        >>> gt["annotations"][0]["bbox"], gt["annotations"][0]["category_id"]
        ([4.0, 8.0, 16.0, 32.0], 1)
    """
    num_classes = len(class_names)
    coco_images, annotations, seen = [], [], set()
    for i, image in enumerate(images):
        missing = [key for key in ("id", "file_name", "width", "height", "boxes", "classes") if key not in image]
        if missing:
            raise ValueError(f"images[{i}] lacks {missing}.")
        image_id = image["id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise ValueError(f"images[{i}]: id must be an int or a str, got {image_id!r}.")
        if image_id in seen:
            raise ValueError(f"images[{i}]: image id {image_id!r} appears twice; image ids must be unique.")
        seen.add(image_id)
        boxes, classes = image["boxes"], image["classes"]
        difficult = image.get("difficult")
        if difficult is None:
            difficult = [False] * len(classes)
        if not len(boxes) == len(classes) == len(difficult):
            raise ValueError(
                f"image {image_id!r}: boxes, classes and difficult have lengths {len(boxes)}, {len(classes)} and "
                f"{len(difficult)}; they must be equal."
            )
        coco_images.append(
            {"id": image_id, "file_name": image["file_name"], "width": image["width"], "height": image["height"]}
        )
        for k, (box, cls, hard) in enumerate(zip(boxes, classes, difficult)):
            where = f"image {image_id!r}, box {k}"
            if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 0 <= cls < num_classes:
                raise ValueError(f"{where}: class must be an int in [0, {num_classes}), got {cls!r}.")
            x1, y1, x2, y2 = _finite_numbers(box, 4, f"{where}: box [x1, y1, x2, y2]")
            if x2 < x1 or y2 < y1:
                raise ValueError(f"{where}: box {list(box)} has x2 < x1 or y2 < y1; expected [x1, y1, x2, y2].")
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    # Ids start at 1: COCOeval records matches by annotation id and reads id 0 as "unmatched".
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": int(bool(hard)),
                }
            )
    if len({type(image_id) for image_id in seen}) > 1:
        # COCOeval sorts the image ids, which fails on a mix of int and str.
        raise ValueError(
            "image ids mix ints and strings; COCOeval needs one type. Use yolo_image_id() for every image, or "
            "number the images."
        )
    categories = [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(class_names)]
    return {
        "info": {"description": "built by attnyolo.evaluation.coco.build_coco_ground_truth"},
        "images": coco_images,
        "annotations": annotations,
        "categories": categories,
    }


def _finite_numbers(value: Any, length: int, what: str) -> list[float]:
    """Return ``value`` as ``length`` finite floats, or raise a ValueError that starts with ``what``."""
    if (
        not isinstance(value, (list, tuple, np.ndarray))
        or len(value) != length
        or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise ValueError(f"{what} must be {length} finite numbers, got {value!r}.")
    return [float(v) for v in value]


def _load_coco(coco_gt: CocoSource) -> COCO:
    """Return a pycocotools COCO object for a COCO object, a ground-truth dict or a JSON path."""
    if isinstance(coco_gt, COCO):
        return coco_gt
    if isinstance(coco_gt, Mapping):
        # A copy, because COCOeval writes an 'ignore' flag into every ground-truth annotation it sees.
        dataset = copy.deepcopy(dict(coco_gt))
        _check_coco_keys(dataset, "the ground-truth dict")
    elif isinstance(coco_gt, (str, Path)):
        dataset = read_coco_json(coco_gt)
    else:
        raise TypeError(f"coco_gt must be a pycocotools COCO object, a dict or a JSON path, got {type(coco_gt)}.")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        coco.createIndex()
    return coco


def _unknown_ids_error(kind: str, unknown: list[Any], known: list[Any], source: str, fix: str) -> ValueError:
    """A ValueError naming the first few unknown ids, where they came from and how to fix it."""
    shown = list(dict.fromkeys(unknown))[:_SHOWN_IDS]
    examples = sorted(known, key=str)[:_SHOWN_IDS]
    return ValueError(
        f"{source}: {len(unknown)} result(s) have a '{kind}' that is not in the ground truth, e.g. {shown} "
        f"(ground-truth {kind}s look like {examples}). {fix}"
    )


def load_results(
    results: str | Path | Sequence[Mapping[str, Any]], coco_gt: CocoSource, source: str | None = None
) -> list[dict[str, Any]]:
    """Read and check detections in the COCO results format against a ground truth.

    Args:
        results (str | Path | Sequence[Mapping]): A results JSON file (e.g. Ultralytics' ``predictions.json``) or
            its list: ``[{"image_id", "category_id", "bbox": [x, y, w, h] pixels, "score"}, ...]``.
        coco_gt (COCO | Mapping | str | Path): The ground truth the results refer to.
        source (str | None): How messages name the results (default: the file, or "results list").

    Returns:
        (list[dict]): New dicts with exactly the four keys, ``bbox`` and ``score`` as floats. Empty if there are
            no detections (a UserWarning says so; every AP is then 0).

    Raises:
        ValueError: If the file is not JSON or not a list, an entry lacks a key or has a bad value (the message
            names its index and key), or image or category ids are not in the ground truth (the message names the
            first few, the file and the fix).

    Examples:
        >>> detections = load_results("runs/detect/val/predictions.json", "annotations.json")  # doctest: +SKIP
    """
    source = source or (str(results) if isinstance(results, (str, Path)) else "results list")
    if isinstance(results, (str, Path)):
        results = read_json(results, source)
    if not isinstance(results, (list, tuple)):
        raise ValueError(f"{source}: expected a list of detections, got {type(results).__name__}.")
    coco = _load_coco(coco_gt)

    checked = []
    for i, entry in enumerate(results):
        where = f"{source}: entry {i}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} is a {type(entry).__name__}, not an object with keys {list(_RESULT_KEYS)}.")
        missing = [key for key in _RESULT_KEYS if key not in entry]
        if missing:
            raise ValueError(f"{where} lacks key(s) {missing}; every detection needs {list(_RESULT_KEYS)}.")
        image_id, category_id = entry["image_id"], entry["category_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise ValueError(f"{where}: 'image_id' must be an int or a str, got {image_id!r}.")
        if isinstance(category_id, bool) or not isinstance(category_id, int):
            raise ValueError(f"{where}: 'category_id' must be an int, got {category_id!r}.")
        bbox = _finite_numbers(entry["bbox"], 4, f"{where}: 'bbox' [x, y, w, h]")
        if bbox[2] < 0 or bbox[3] < 0:
            raise ValueError(f"{where}: 'bbox' {entry['bbox']} has a negative width or height; expected [x, y, w, h].")
        (score,) = _finite_numbers([entry["score"]], 1, f"{where}: 'score'")
        checked.append({"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score})

    known_images, known_categories = set(coco.getImgIds()), set(coco.getCatIds())
    unknown_images = [d["image_id"] for d in checked if d["image_id"] not in known_images]
    if unknown_images:
        raise _unknown_ids_error(
            "image_id",
            unknown_images,
            list(known_images),
            source,
            "Write results with the ground truth's image ids: Ultralytics' save_json uses the image file stem, as an "
            "int when it is all digits (yolo_image_id), so build the ground truth with the same convention.",
        )
    unknown_categories = [d["category_id"] for d in checked if d["category_id"] not in known_categories]
    if unknown_categories:
        raise _unknown_ids_error(
            "category_id",
            unknown_categories,
            list(known_categories),
            source,
            "For the COCO dataset map class indices with coco80_to_91(); for other data use class index + 1, as "
            "build_coco_ground_truth and Ultralytics' save_json do.",
        )
    if not checked:
        warnings.warn(f"{source} holds no detections; every AP will be 0.", UserWarning, stacklevel=2)
    return checked


def evaluate_images(
    coco_gt: CocoSource, results: str | Path | Sequence[Mapping[str, Any]], source: str | None = None
) -> COCOeval:
    """Check detections and run pycocotools' per-image matching (``COCOeval.evaluate()``), without accumulating.

    ``evaluate_coco`` accumulates the returned evaluator into AP; the test-set bootstrap
    (``attnyolo.analysis.coco_matches``) re-accumulates its ``evalImgs`` over resampled image sets instead.

    Args:
        coco_gt (COCO | Mapping | str | Path): Ground truth, as for ``evaluate_coco``. A COCO object is used as it
            is (COCOeval resets the flags it writes into it on every evaluation, so it can be shared).
        results (str | Path | Sequence[Mapping]): Detections, checked by ``load_results``.
        source (str | None): How messages name the results (default: the file, or "results list").

    Returns:
        (COCOeval): iouType ``bbox``, default parameters, after ``evaluate()``: ``evalImgs`` holds one entry per
            (category, area range, image), ``cocoGt`` the ground truth. pycocotools' prints are suppressed.

    Raises:
        ValueError: If the ground truth or the results are malformed (see ``load_results``).
    """
    coco = _load_coco(coco_gt)
    detections = load_results(results, coco, source)
    with contextlib.redirect_stdout(io.StringIO()):
        if detections:
            coco_dt = coco.loadRes(detections)
        else:
            # loadRes([]) indexes the first entry and crashes; an empty results set built by hand lets COCOeval
            # score zero detections normally (AP 0 where there is ground truth, -1 where there is none).
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(coco.dataset["images"]), "annotations": [], "categories": []}
            coco_dt.dataset["categories"] = copy.deepcopy(coco.dataset["categories"])
            coco_dt.createIndex()
        evaluator = COCOeval(coco, coco_dt, iouType="bbox")
        evaluator.evaluate()
    return evaluator


def evaluate_coco(
    coco_gt: CocoSource, results: str | Path | Sequence[Mapping[str, Any]], per_class: bool = True
) -> dict[str, Any]:
    """Score detections with pycocotools' COCOeval (iouType ``bbox``).

    Args:
        coco_gt (COCO | Mapping | str | Path): Ground truth as a pycocotools COCO object, a COCO dict (e.g. from
            ``build_coco_ground_truth``) or a JSON path (e.g. ``instances_val2017.json``).
        results (str | Path | Sequence[Mapping]): Detections, checked by ``load_results``.
        per_class (bool): Also report AP@[.5:.95] per category.

    Returns:
        (dict): One float in [0, 1] per name in ``COCO_METRIC_NAMES``, or ``None`` where the ground truth has no
            object in that area range (pycocotools' -1); ``"per_class"``: category name -> AP (``None`` for
            categories without ground truth; empty if ``per_class`` is False); ``"summary"``: the table
            ``COCOeval.summarize()`` prints. pycocotools' other prints are suppressed.

    Raises:
        ValueError: If the ground truth or the results are malformed (see ``load_results``).

    Examples:
        >>> metrics = evaluate_coco("annotations/instances_val2017.json", "predictions.json")  # doctest: +SKIP
        >>> metrics["AP"], metrics["AP50"]  # doctest: +SKIP
        (0.373, 0.526)
    """
    evaluator = evaluate_images(coco_gt, results)
    coco = evaluator.cocoGt
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()

    metrics: dict[str, Any] = {
        name: (None if evaluator.stats[index] < 0 else float(evaluator.stats[index]))
        for name, index in zip(COCO_METRIC_NAMES, _STATS_INDEX)
    }
    metrics["per_class"] = _per_class_ap(evaluator, coco) if per_class else {}
    metrics["summary"] = summary.getvalue()
    return metrics


def _per_class_ap(evaluator: COCOeval, coco: COCO) -> dict[str, float | None]:
    """AP@[.5:.95] per category, read from COCOeval's accumulated precision the way summarize() reads the mean."""
    params = evaluator.params
    # precision has shape (IoU thresholds, recall thresholds, categories, area ranges, max detections); summarize()
    # takes the AP over area 'all' with the largest maxDets (100), where -1 marks "no ground truth".
    precision = evaluator.eval["precision"][:, :, :, params.areaRngLbl.index("all"), len(params.maxDets) - 1]
    per_class = {}
    for k, category_id in enumerate(params.catIds):
        values = precision[:, :, k]
        values = values[values > -1]
        name = coco.cats[category_id].get("name", str(category_id))
        per_class[name] = float(values.mean()) if values.size else None
    return per_class
