"""Where the files of a dataset split are, for COCO and VOC scoring: the data YAML, the images, their annotations.

The data YAML is read and resolved as Ultralytics resolves it (:func:`_read_data`); the split's images are listed in
the order Ultralytics reads them (:func:`_split_images`) with the image ids its ``save_json`` writes
(:func:`_image_ids`); the VOC XML files (:func:`_voc_xml_files`) and the COCO ground-truth JSON
(:func:`_coco_json_path`) are found where the data YAML or the dataset's layout puts them.
:mod:`attnyolo.evaluation.ground_truth` reads them into the split's ground truth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ultralytics.data.utils import IMG_FORMATS

from ..data.data_yaml import locate_data_yaml, read_data_yaml, resolve_data_yaml
from .coco import yolo_image_id

_YEAR_SPLIT = re.compile(r".*\d{4}$")  # COCO layout split names: val2017, train2014, test-dev2017


def _read_data(data: str | Path, split: str) -> dict[str, Any]:
    """Read and resolve a data YAML for evaluating ``split``; class names must be given.

    ``coco.yaml``/``VOC.yaml`` name this project's own (:func:`attnyolo.data.data_yaml.locate_data_yaml`). A YAML with
    a ``download:`` key (those two) fetches a missing dataset as Ultralytics does; any other is never downloaded.
    """
    path = Path(locate_data_yaml(data))
    raw = read_data_yaml(path, data)
    if raw.get("names") is None:
        # Ultralytics would invent class_0, class_1, ...; per-class results and VOC's object names need real ones.
        raise ValueError(f"data={data}: no 'names' key. Fix: add the class names, e.g. names: {{0: cat, 1: dog}}.")
    resolved = resolve_data_yaml(path, data, split, download=bool(raw.get("download")))
    if not resolved.get(split):
        raise ValueError(f"data={data}: no '{split}' split. Fix: add '{split}: images/{split}' or pass split=.")
    names = resolved["names"]
    resolved["names"] = [str(names[i]) for i in range(len(names))] if isinstance(names, dict) else list(names)
    resolved["yaml_file"] = path.resolve()
    return resolved


def _under(root: Path, value: str | Path) -> Path:
    """``value`` as a path, relative ones taken from the dataset root."""
    value = Path(value)
    return value if value.is_absolute() else root / value


def _split_images(entry: str | list[str], split: str, data: Path) -> list[Path]:
    """The split's image files in the order Ultralytics reads them (folders recursively, or list files)."""
    files = []
    for item in entry if isinstance(entry, list) else [entry]:
        item = Path(item)
        if item.is_dir():
            files += [p for p in item.rglob("*.*") if p.is_file()]
        elif item.is_file():
            # As Ultralytics: one path per line, './' relative to the list file, anything else as written.
            lines = item.read_text(encoding="utf-8-sig").strip().splitlines()
            files += [Path(str(item.parent) + os.sep + line[2:] if line.startswith("./") else line) for line in lines]
        else:
            raise FileNotFoundError(f"data={data}: the '{split}' path {item} does not exist.")
    images = sorted((p for p in files if p.suffix[1:].lower() in IMG_FORMATS), key=str)
    if not images:
        raise ValueError(f"data={data}: the '{split}' split {entry} holds no images; there is nothing to evaluate.")
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"data={data}: {len(missing)} '{split}' image(s) listed but missing, e.g. {missing[0]}."
        )
    return images


def _image_ids(images: list[Path], data: Path) -> list[int | str]:
    """Ultralytics' ``save_json`` image id of every image, checked to be unique and of one type."""
    ids = [yolo_image_id(p) for p in images]
    seen: dict[int | str, Path] = {}
    for image, image_id in zip(images, ids):
        if image_id in seen:
            raise ValueError(
                f"data={data}: {seen[image_id]} and {image} share the image id {image_id!r}; Ultralytics' save_json "
                "names detections by file stem, so stems must be unique within a split."
            )
        seen[image_id] = image
    if len({type(i) for i in ids}) > 1:
        example = next(p for p, i in zip(images, ids) if isinstance(i, str))
        raise ValueError(
            f"data={data}: image names mix numeric stems and others (e.g. {example.name}); Ultralytics' save_json "
            "then writes int and str image ids, which COCOeval cannot sort. Fix: rename the images consistently."
        )
    return ids


def _voc_xml_files(raw: dict[str, Any], root: Path, images: list[Path], split: str) -> tuple[list[Path], str] | None:
    """The split's VOC XML files and where they are, or None when the dataset has no VOC annotations."""
    folder = raw.get("voc_annotations")
    if folder:
        xml_dir = _under(root, folder)
        if not xml_dir.is_dir():
            raise FileNotFoundError(f"data={raw['yaml_file']}: voc_annotations folder {xml_dir} does not exist.")
        files = [xml_dir / f"{image.stem}.xml" for image in images]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(images)} '{split}' images have no VOC annotation in {xml_dir}, "
                f"e.g. {missing[0].name}. Fix: add the XML files or remove voc_annotations from the data YAML."
            )
        return files, str(xml_dir)
    beside = [image.with_suffix(".xml") for image in images]
    if all(f.is_file() for f in beside):
        return beside, "VOC XML next to the images"
    if all(image.parent.name == "JPEGImages" for image in images):  # VOCdevkit layout
        devkit = [image.parent.parent / "Annotations" / f"{image.stem}.xml" for image in images]
        if all(f.is_file() for f in devkit):
            return devkit, str(images[0].parent.parent / "Annotations")
    return None


def _coco_json_path(raw: dict[str, Any], root: Path, split: str, entry: str | list[str]) -> Path | None:
    """The COCO ground-truth JSON for the split (data YAML key or COCO layout), or None."""
    declared = raw.get("coco_annotations")
    if declared is not None and not isinstance(declared, Mapping):
        raise ValueError(
            f"data={raw['yaml_file']}: coco_annotations must map split names to JSON files, e.g. "
            f"coco_annotations: {{val: annotations/instances_val.json}}; got {declared!r}."
        )
    if declared and declared.get(split):
        path = _under(root, declared[split])
        if not path.is_file():
            raise FileNotFoundError(f"data={raw['yaml_file']}: coco_annotations[{split}] {path} does not exist.")
        return path
    if isinstance(entry, str):
        name = Path(entry).stem  # val2017.txt and images/val2017 both name the COCO split val2017
        candidate = root / "annotations" / f"instances_{name}.json"
        if _YEAR_SPLIT.match(name) and candidate.is_file():
            return candidate
    return None
