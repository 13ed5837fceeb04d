"""The ground truth of a dataset split, read from a data YAML in Ultralytics' format, for COCO and VOC scoring.

This module takes the split's images in the order Ultralytics reads them and its annotation files (both found by
:mod:`attnyolo.evaluation.split_files`) and assembles the COCO ground truth (and, where annotated, the VOC objects)
that :mod:`attnyolo.evaluation.validator` scores predictions against.

Ground truth for COCO, in order of preference:

1. the data YAML's ``coco_annotations: {split: path}`` (paths relative to the dataset root), e.g. the sample dataset;
2. the COCO layout: ``<path>/annotations/instances_<name>.json`` when the split is ``val2017.txt``,
   ``images/val2017`` or any other name ending in a year, as for ``coco.yaml``. Predictions then use the original
   91 category ids, as Ultralytics' ``save_json`` writes them for COCO;
3. otherwise a ground truth built from the split's YOLO label files with ``build_coco_ground_truth`` (category id =
   class index + 1, as ``save_json`` writes for other data). Objects that the VOC XML marks ``difficult`` become
   ``iscrowd`` and are ignored, like the VOC devkit ignores them; difficult objects missing from the labels (as
   Ultralytics' VOC.yaml conversion drops them) are added from the XML as such. The built ground truth is saved as
   ``ground_truth.json`` in the run directory, so anyone can re-run pycocotools on the same files.

Whatever the source, the ground truth covers exactly the images Ultralytics' validator evaluates: each image and its
label file get Ultralytics' own verdict first (:mod:`attnyolo.integration.datasets`). An unreadable image, or a label
file with one invalid line (a class id outside ``names``, a row without 5 values, coordinates outside [0, 1]), makes
Ultralytics drop the whole image; it is then dropped here too, with a warning, and listed in ``metrics.json`` under
``dropped_images`` with Ultralytics' reason. Otherwise its objects would all count as misses against predictions the
model was never asked to make.

The VOC protocol runs when the data YAML has ``voc_annotations: <folder of NAME.xml>`` or when every image has an
XML next to it (``NAME.xml`` beside ``NAME.jpg``, or ``Annotations/NAME.xml`` beside ``JPEGImages/``).

Box convention for VOC. COCO results hold continuous 0-based pixel boxes ``[x, y, w, h]``; the devkit compares
1-based, inclusive pixel indices. Detections are converted the way py-faster-rcnn and YOLOX write their VOC result
files: 1 is added to all four 0-based corners, ``[x + 1, y + 1, x + w + 1, y + h + 1]``. This is exact for models
trained on Ultralytics' VOC labels, whose converter maps ``xmin..xmax`` to the continuous box ``[xmin - 1, xmax - 1]``
(the frame py-faster-rcnn and YOLOX train in). For labels that instead cover ``[xmin - 1, xmax]`` (the pixel-exact
frame of :mod:`attnyolo.data.sample`), a perfect box comes out one pixel wider and taller: IoU
``w * h / ((w + 1) * (h + 1))``, above 0.5 for every box of 3 pixels or more.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..integration.datasets import image_verdicts, label_file
from .coco import build_coco_ground_truth, read_coco_json, yolo_image_id
from .split_files import _coco_json_path, _image_ids, _read_data, _split_images, _voc_xml_files
from .voc import read_voc_xml

_MAX_LABEL_WARNINGS = 20  # individual warnings about dropped images; the rest are counted in one summary


_MATCH_IOU = 0.5  # a label box takes the difficult flag of the VOC object it overlaps this much


@dataclass
class SplitGroundTruth:
    """Everything the scorers need about one split; built once, before any model runs."""

    data: Path  # the data YAML
    split: str
    names: list[str]  # class names indexed by class index
    images: list[Path]
    coco: dict[str, Any]  # COCO ground-truth dict, restricted to the split's images
    coco_source: str  # where it came from, for the report
    coco_built: bool  # True when built from YOLO labels (then it is saved beside the metrics)
    category_of_class: list[int | None]  # class index -> ground-truth category id
    voc: dict[Any, list[dict[str, Any]]] | None  # image id -> VOC objects, None without VOC annotations
    voc_source: str | None
    # Images of the split Ultralytics' validator does not evaluate: {"image", "id", "reason"}; in neither the ground
    # truth nor the scored predictions.
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def restricted_to(self, images: Sequence[str | Path], reason: str) -> SplitGroundTruth:
        """The same ground truth on ``images`` only; the others join :attr:`dropped` with ``reason``.

        Args:
            images: The images to keep (e.g. those the validator evaluated).
            reason: Why the others are dropped, for metrics.json.

        Returns:
            A new ground truth (this one is unchanged).
        """
        keep = {Path(p).resolve() for p in images}
        kept = [p for p in self.images if p.resolve() in keep]
        if len(kept) == len(self.images):
            return self
        lost = [p for p in self.images if p.resolve() not in keep]
        ids = {yolo_image_id(p) for p in kept}
        coco = {
            **self.coco,
            "images": [im for im in self.coco["images"] if im["id"] in ids],
            "annotations": [a for a in self.coco["annotations"] if a["image_id"] in ids],
        }
        voc = {k: v for k, v in self.voc.items() if k in ids} if self.voc is not None else None
        extra = [{"image": str(p), "id": yolo_image_id(p), "reason": reason} for p in lost]
        return replace(self, images=kept, coco=coco, voc=voc, dropped=[*self.dropped, *extra])


def _label_boxes(labels: np.ndarray, width: int, height: int) -> tuple[list[list[float]], list[int]]:
    """Pixel boxes ``[x1, y1, x2, y2]`` (clipped to the image) and classes of Ultralytics' normalised label rows."""
    boxes, classes = [], []
    for cls, cx, cy, w, h in labels.tolist():
        x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
        classes.append(int(cls))
    return boxes, classes


def _warn_dropped(dropped: list[dict[str, Any]], total: int) -> None:
    """One warning per image Ultralytics' validator drops, up to a limit, then a count."""
    for entry in dropped[:_MAX_LABEL_WARNINGS]:
        warnings.warn(
            f"{entry['image']}: dropped from the evaluation, as Ultralytics' validator drops it ({entry['reason']}); "
            "fix the file to have it scored.",
            UserWarning,
            stacklevel=3,
        )
    if len(dropped) > _MAX_LABEL_WARNINGS:
        warnings.warn(
            f"... and {len(dropped) - _MAX_LABEL_WARNINGS} more images dropped ({len(dropped)} of {total}).",
            UserWarning,
            stacklevel=3,
        )


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of continuous xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _with_voc_difficult(
    boxes: list[list[float]], classes: list[int], objects: list[dict[str, Any]]
) -> tuple[list[list[float]], list[int], list[bool]]:
    """Label boxes with the VOC ``difficult`` flag of the same-class XML object each overlaps most.

    Labels and XML need not list objects in the same order, so boxes are matched greedily by IoU; a label box without
    a match (IoU < 0.5) is not difficult. Difficult XML objects that no label matches are appended as difficult
    boxes: Ultralytics' VOC converter drops difficult objects from the labels, and without them a detection of one
    would count as a false positive in COCOeval, which the VOC protocol forbids.

    Returns:
        (tuple): boxes, classes and difficult flags, the label boxes first and in their order.
    """
    flags = [False] * len(boxes)
    if not objects:
        return boxes, classes, flags
    # VOC's inclusive 1-based corners as a continuous 0-based box covering the same pixels.
    xml_boxes = [[o["bbox"][0] - 1, o["bbox"][1] - 1, o["bbox"][2], o["bbox"][3]] for o in objects]
    matched = [False] * len(objects)
    if boxes:
        iou = _box_iou(np.asarray(boxes, dtype=np.float64), np.asarray(xml_boxes, dtype=np.float64))
        iou[np.asarray(classes)[:, None] != np.array([o["class_id"] for o in objects])[None, :]] = 0.0
        while iou.max() >= _MATCH_IOU:
            i, j = np.unravel_index(int(iou.argmax()), iou.shape)
            flags[i], matched[j] = objects[j]["difficult"], True
            iou[i, :], iou[:, j] = 0.0, 0.0
    extra = [j for j, o in enumerate(objects) if o["difficult"] and not matched[j]]
    return (
        [*boxes, *(xml_boxes[j] for j in extra)],
        [*classes, *(objects[j]["class_id"] for j in extra)],
        [*flags, *([True] * len(extra))],
    )


def _read_voc(files: list[Path], names: list[str]) -> list[list[dict[str, Any]]]:
    """Objects of every XML as ``{"class_id", "bbox", "difficult"}``, with names turned into class indices."""
    index = {name: i for i, name in enumerate(names)}
    result = []
    for xml in files:
        objects = []
        for obj in read_voc_xml(xml):
            if obj["name"] not in index:
                raise ValueError(
                    f"{xml}: object name {obj['name']!r} is not one of the data YAML's names {names}. Fix: make the "
                    "names in the data YAML match the XML <name> tags."
                )
            objects.append({"class_id": index[obj["name"]], "bbox": obj["bbox"], "difficult": obj["difficult"]})
        result.append(objects)
    return result


def _coco_from_json(path: Path, images: list[Path], ids: list[int | str]) -> dict[str, Any]:
    """The COCO JSON restricted to the split's images, with image ids set to those Ultralytics' save_json writes."""
    gt = read_coco_json(path)
    # Images are found by file name first: COCO's own ids equal the numeric stems, but other JSONs may number
    # images 1..N, and predictions from save_json always carry the stem.
    by_name = {Path(str(im.get("file_name", ""))).name: im for im in gt["images"]}
    by_id = {im.get("id"): im for im in gt["images"]}
    new_id, images_out, missing = {}, [], []
    for image, image_id in zip(images, ids):
        entry = by_name.get(image.name) or by_id.get(image_id)
        if entry is None:
            missing.append(image.name)
            continue
        new_id[entry["id"]] = image_id
        images_out.append({**entry, "id": image_id})
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} of the split's {len(images)} images are not in it, e.g. {missing[:3]}. "
            "Fix: point coco_annotations at the JSON of this split."
        )
    annotations = [{**a, "image_id": new_id[a["image_id"]]} for a in gt["annotations"] if a.get("image_id") in new_id]
    return {**gt, "images": images_out, "annotations": annotations}


def _category_of_class(categories: list[dict[str, Any]], names: list[str]) -> list[int | None]:
    """Ground-truth category id of each class index: by name, else by position (COCO's sorted 91-id table)."""
    by_name = {str(c.get("name")): c["id"] for c in categories}
    if all(name in by_name for name in names):
        return [by_name[name] for name in names]
    ids = sorted(c["id"] for c in categories)
    if len(ids) == len(names):
        return list(ids)
    return [None] * len(names)


def load_split(data: str | Path, split: str = "val", single_cls: bool = False) -> SplitGroundTruth:
    """Resolve the data YAML and assemble the split's COCO (and, if annotated, VOC) ground truth.

    Every image and label file first gets Ultralytics' own verdict
    (:func:`attnyolo.integration.datasets.image_verdicts`): an image Ultralytics' validator drops (unreadable, or a
    label file with an invalid line) is left out of the ground truth too, with a warning, and listed in
    :attr:`SplitGroundTruth.dropped`; labels are read as Ultralytics reads them (duplicate rows removed).

    Args:
        data: The data YAML.
        split: The data YAML key of the split.
        single_cls: Ultralytics' ``single_cls`` setting, which changes its label verdicts.

    Returns:
        The split's ground truth.

    Raises:
        FileNotFoundError: A missing data YAML, split folder, listed image or annotation file.
        ValueError: A malformed data YAML or annotation, or a split without one usable image.
    """
    raw = _read_data(data, split)
    yaml_file, root, names = raw["yaml_file"], Path(raw["path"]), raw["names"]
    listed = _split_images(raw[split], split, yaml_file)
    verdicts = image_verdicts(listed, raw.get("bg_class_idx") or len(names), single_cls)
    dropped = [
        {"image": str(v.image), "id": yolo_image_id(v.image), "reason": v.message} for v in verdicts if not v.kept
    ]
    verdicts = [v for v in verdicts if v.kept]
    if not verdicts:
        raise ValueError(
            f"data={yaml_file}: none of the {len(listed)} '{split}' images can be evaluated, e.g. "
            f"{dropped[0]['image']}: {dropped[0]['reason']}. Fix: replace the images or their label files."
        )
    _warn_dropped(dropped, len(listed))
    images = [v.image for v in verdicts]
    ids = _image_ids(images, yaml_file)
    sizes = [(v.shape[1], v.shape[0]) for v in verdicts]  # (width, height) after EXIF rotation, as Ultralytics reads

    xml = _voc_xml_files(raw, root, images, split)
    voc_objects = _read_voc(xml[0], names) if xml else None

    json_path = _coco_json_path(raw, root, split, raw[split])
    if json_path is not None:
        coco = _coco_from_json(json_path, images, ids)
        source, built = str(json_path), False
    else:
        records = []
        for k, (verdict, image_id, (width, height)) in enumerate(zip(verdicts, ids, sizes)):
            boxes, classes = _label_boxes(verdict.labels, width, height)
            difficult = None
            if voc_objects:
                boxes, classes, difficult = _with_voc_difficult(boxes, classes, voc_objects[k])
            records.append(
                {
                    "id": image_id,
                    "file_name": verdict.image.name,
                    "width": width,
                    "height": height,
                    "boxes": boxes,
                    "classes": classes,
                    "difficult": difficult,
                }
            )
        coco = build_coco_ground_truth(records, names)
        label_dir = label_file(images[0]).parent
        source = f"YOLO labels in {label_dir}" + (" (VOC-difficult objects as iscrowd, ignored)" if xml else "")
        built = True

    voc = dict(zip(ids, voc_objects)) if voc_objects is not None else None
    return SplitGroundTruth(
        data=yaml_file,
        split=split,
        names=names,
        images=images,
        coco=coco,
        coco_source=source,
        coco_built=built,
        category_of_class=_category_of_class(coco["categories"], names),
        voc=voc,
        voc_source=xml[1] if xml else None,
        dropped=dropped,
    )


def voc_box(bbox: Sequence[float]) -> list[float]:
    """COCO ``[x, y, w, h]`` (0-based, continuous) to the devkit's 1-based corners; see the module docstring."""
    x, y, w, h = bbox
    return [x + 1.0, y + 1.0, x + w + 1.0, y + h + 1.0]
