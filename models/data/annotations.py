"""Readers of the annotation files the datasets come with: COCO's ground-truth JSON and PASCAL VOC's XML.

Both the converters (:mod:`attnyolo.data.convert_coco`, :mod:`attnyolo.data.convert_voc`) and the evaluators
(:mod:`attnyolo.evaluation`) read these files; a file that cannot be read fails with one line naming it.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..errors import first_line


def read_json(path: str | Path, source: str | None = None) -> Any:
    """A JSON file's content, or one line naming the file (``source``, default the path) and the parser's error.

    Raises:
        ValueError: Not valid UTF-8 JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{source or path}: not valid JSON ({first_line(error)}).") from None


def read_coco_json(path: str | Path) -> dict[str, Any]:
    """Read a COCO ground-truth JSON file, failing with one line if it is not JSON or lacks a required key.

    Args:
        path: The ``instances_*.json`` file.

    Returns:
        The parsed dict, which has ``images``, ``annotations`` and ``categories``.

    Raises:
        ValueError: Not valid JSON (the message gives the parser's first line), or a required key is missing.
    """
    data = read_json(path)
    _check_coco_keys(data, str(path))
    _check_boxes(data["annotations"], str(path))
    return data


def _check_boxes(annotations: Any, source: str) -> None:
    """Raise a ValueError naming ``source`` and the annotation whose ``bbox`` is not ``[x, y, width, height]``."""
    if not isinstance(annotations, list):
        raise ValueError(f"{source}: 'annotations' must be a list of objects, not {type(annotations).__name__}.")
    for index, ann in enumerate(annotations):
        box = ann.get("bbox") if isinstance(ann, dict) else None
        numbers = isinstance(box, list) and len(box) == 4
        if not (
            numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        ):
            which = f"id {ann.get('id')}" if isinstance(ann, dict) and "id" in ann else f"number {index}"
            raise ValueError(
                f"{source}: annotation {which} has bbox {box!r}; COCO boxes are [x, y, width, height], four numbers. "
                "Fix: correct or remove that annotation."
            )


def _check_coco_keys(dataset: Any, source: str) -> None:
    """Raise a ValueError naming ``source`` if ``dataset`` is not a dict with images, annotations and categories."""
    keys = ("images", "annotations", "categories")
    missing = [key for key in keys if key not in dataset] if isinstance(dataset, dict) else list(keys)
    if missing:
        raise ValueError(f"{source} is not a COCO ground truth: it lacks {missing}.")


_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def read_voc_xml(path: str | Path) -> list[dict[str, Any]]:
    """Read the objects of one PASCAL VOC annotation file.

    Coordinates are returned exactly as written in the file (VOC's inclusive, 1-based pixel indices; no offset is
    applied). A missing ``<difficult>`` tag reads as ``False``, as in the devkit (some VOC2012 files lack it).

    Args:
        path (str | Path): An ``Annotations/*.xml`` file.

    Returns:
        (list[dict]): One dict per ``<object>``, in file order, with keys ``name`` (str), ``bbox``
            (``[xmin, ymin, xmax, ymax]`` floats) and ``difficult`` (bool).

    Raises:
        ValueError: If the file is not well-formed XML or an object lacks a name, a box or a numeric coordinate.
            The message names the file, the object and the problem.

    Examples:
        >>> objects = read_voc_xml("VOCdevkit/VOC2007/Annotations/000005.xml")  # doctest: +SKIP
        >>> objects[0]  # doctest: +SKIP
        {'name': 'chair', 'bbox': [263.0, 211.0, 324.0, 339.0], 'difficult': False}
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path}: not well-formed XML ({error}). Re-extract or repair this annotation file.") from None

    objects = []
    for index, element in enumerate(root.iter("object")):
        where = f"{path}: <object> #{index}"
        name = (element.findtext("name") or "").strip()
        if not name:
            raise ValueError(f"{where} has no <name>. Every VOC object needs a class name.")
        box = element.find("bndbox")
        if box is None:
            raise ValueError(f"{where} ('{name}') has no <bndbox>.")
        bbox = []
        for tag in _BOX_TAGS:
            text = box.findtext(tag)
            try:
                bbox.append(float(text))
            except (TypeError, ValueError):
                raise ValueError(f"{where} ('{name}'): <bndbox><{tag}> is {text!r}; expected a number.") from None
        difficult_text = (element.findtext("difficult") or "0").strip()
        if difficult_text not in ("0", "1"):
            raise ValueError(f"{where} ('{name}'): <difficult> is {difficult_text!r}; expected 0 or 1.")
        objects.append({"name": name, "bbox": bbox, "difficult": difficult_text == "1"})
    return objects
