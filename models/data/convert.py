"""Convert PASCAL VOC and COCO folders into Ultralytics' YOLO layout while keeping their original annotations.

:func:`convert_dataset` looks at a folder, decides whether it is a VOCdevkit or a COCO folder and writes, under
``out`` (the readers: :mod:`attnyolo.data.convert_voc`, :mod:`attnyolo.data.convert_coco`; the writer they share:
:mod:`attnyolo.data.layout`)::

    images/<split>/NAME.jpg     symlinks to the original images (copies where symlinks are not allowed)
    labels/<split>/NAME.txt     YOLO labels: class cx cy w h, normalised
    data.yaml                   for Ultralytics, plus the keys our evaluators read

The evaluators need what YOLO labels cannot hold, so the original annotations stay reachable from data.yaml:

- VOC: every ``Annotations/NAME.xml`` is linked into ``out/Annotations`` and data.yaml says
  ``voc_annotations: Annotations``. The YOLO labels include the boxes of ``difficult`` objects (they are real
  objects and help training); the XML keeps the flag, so the VOC evaluator can ignore them as the devkit does.
  Ultralytics' own VOC.yaml instead drops difficult objects, so its mAP counts detections of them as false positives.
- COCO: the ``instances_<split>.json`` files are linked into ``out/annotations`` and data.yaml maps each split to
  its JSON under ``coco_annotations``.

Box frames. VOC boxes are 1-based inclusive pixel indices; they become the continuous box
``[xmin - 1, ymin - 1, xmax - 1, ymax - 1]``, the frame py-faster-rcnn, YOLOX and Ultralytics' VOC.yaml train in, so
that the VOC evaluator's ``+1`` on every corner of a prediction maps a perfect box back onto the XML box. COCO boxes
``[x, y, w, h]`` are continuous already and are only normalised.

Examples:
    >>> from attnyolo.data.convert import convert_dataset
    >>> convert_dataset("downloads/VOCdevkit", "datasets/VOC")  # doctest: +SKIP
    PosixPath('datasets/VOC/data.yaml')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..utils.atomic import remove_stale_temporaries
from .convert_coco import coco_jsons, coco_to_yolo, convert_coco
from .convert_voc import VOC_CLASS_NAMES, VOC_PARTS, convert_voc, voc_class_names, voc_xml_to_yolo, voc_years
from .layout import track_replaced, warn_dropped_boxes, warn_replaced

__all__ = [
    "VOC_CLASS_NAMES",
    "coco_to_yolo",
    "convert_coco",
    "convert_dataset",
    "convert_voc",
    "detect_format",
    "voc_class_names",
    "voc_xml_to_yolo",
]


def detect_format(source: str | Path) -> str:
    """Say whether ``source`` is a VOCdevkit folder or a COCO folder.

    Args:
        source (str | Path): the folder to inspect.

    Returns:
        (str): ``"voc"`` or ``"coco"``.

    Raises:
        FileNotFoundError: if ``source`` is not a folder.
        ValueError: if neither layout is found; the message lists what was looked for.
    """
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"Dataset folder {source} does not exist or is not a folder.")
    if voc_years(source):
        return "voc"
    if coco_jsons(source):
        return "coco"
    raise ValueError(
        f"{source} is neither a VOCdevkit nor a COCO folder. Looked for VOC20XX/{{{', '.join(VOC_PARTS)}}} "
        f"(in {source} or {source / 'VOCdevkit'}), for {', '.join(VOC_PARTS)} in {source} itself, and for "
        "annotations/instances_*.json."
    )


def convert_dataset(source: str | Path, out: str | Path, names: Sequence[str] | str | None = None) -> Path:
    """Convert a VOCdevkit or COCO folder into the YOLO layout under ``out`` (see the module docstring).

    Existing files under ``out`` with the same names are replaced, and one warning says how many and names the first
    few; others are left alone, so convert into an empty folder or into the output of an earlier conversion of the
    same source. Every path derived from the dataset's contents (COCO ``file_name``, VOC image ids) must stay inside
    its folder and inside ``out``, symlinks followed; otherwise the conversion fails naming the entry, before any
    file is written. Every box that cannot become a label
    (inverted, zero-size or outside its image) is counted in one warning with the first examples.

    Args:
        source (str | Path): a VOCdevkit folder (holding VOC2007 and/or VOC2012), a folder in the VOC layout
            (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``), or a COCO folder (holding
            ``annotations/instances_<split>.json`` and the images in ``<split>/`` or ``images/<split>/``).
        out (str | Path): output folder, created if needed.
        names (Sequence[str] | str | None): VOC only: the class names in class-index order (a list, or
            ``"cat,dog"``). By default PASCAL VOC's 20 classes, or, when the annotations name other classes (custom
            data in the VOC layout), the names found in them, sorted.

    Returns:
        (Path): the absolute path of ``out/data.yaml``.

    Raises:
        FileNotFoundError: if ``source`` or a listed image or annotation is missing.
        ValueError: if the layout is not recognised or an annotation is invalid; the message names the file.

    Examples:
        >>> convert_dataset("VOCdevkit", "datasets/VOC")  # doctest: +SKIP
        >>> convert_dataset("coco", "datasets/coco")  # doctest: +SKIP
    """
    kind = detect_format(source)
    if kind == "coco" and names is not None:
        raise ValueError(f"names= applies to VOC folders; {source} is a COCO folder, whose JSON names its classes.")
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out={out} is a file, not a folder. Fix: name a new or empty folder for out=.")
    out.mkdir(parents=True, exist_ok=True)
    for folder in out.glob("labels/*"):
        remove_stale_temporaries(folder)  # label files an earlier, killed conversion was writing
    dropped: list[str] = []
    with track_replaced() as replaced:
        data_yaml = convert_voc(source, out, names, dropped) if kind == "voc" else convert_coco(source, out, dropped)
    warn_dropped_boxes(dropped)
    warn_replaced(out, replaced)
    return data_yaml
