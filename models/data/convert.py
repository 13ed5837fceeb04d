"""Convert PASCAL VOC and COCO folders into Ultralytics' YOLO layout while keeping their original annotations.

(About 450 lines in one module: the two converters share the layout writer (links, labels, data.yaml) and the box
rules, and each is only a reader of its annotation format in front of it.)

:func:`convert_dataset` looks at a folder, decides whether it is a VOCdevkit or a COCO folder and writes, under
``out``::

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
    >>> from attnyolo.datasets import convert_dataset
    >>> convert_dataset("downloads/VOCdevkit", "datasets/VOC")  # doctest: +SKIP
    PosixPath('datasets/VOC/data.yaml')
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from ..evaluation.coco import read_coco_json
from ..evaluation.voc import read_voc_xml
from ..utils.atomic import atomic_path, remove_stale_temporaries, write_text_atomic

# The 20 PASCAL VOC classes in the devkit's order (VOCdevkit/VOCcode/VOCinit.m), which every VOC result table uses.
VOC_CLASS_NAMES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

_VOC_YEAR = re.compile(r"^VOC20\d\d$")
_VOC_PARTS = ("Annotations", "JPEGImages", "ImageSets/Main")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


# -------------------------------------------------------------------------------------------------- entry point
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
    if _voc_years(source):
        return "voc"
    if _coco_jsons(source):
        return "coco"
    raise ValueError(
        f"{source} is neither a VOCdevkit nor a COCO folder. Looked for VOC20XX/{{{', '.join(_VOC_PARTS)}}} "
        f"(in {source} or {source / 'VOCdevkit'}), for {', '.join(_VOC_PARTS)} in {source} itself, and for "
        "annotations/instances_*.json."
    )


def convert_dataset(source: str | Path, out: str | Path, names: Sequence[str] | str | None = None) -> Path:
    """Convert a VOCdevkit or COCO folder into the YOLO layout under ``out`` (see the module docstring).

    Existing files under ``out`` with the same names are replaced; others are left alone, so convert into an empty
    folder or into the output of an earlier conversion of the same source. Every box that cannot become a label
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
    out.mkdir(parents=True, exist_ok=True)
    for folder in out.glob("labels/*"):
        remove_stale_temporaries(folder)  # label files an earlier, killed conversion was writing
    dropped: list[str] = []
    data_yaml = convert_voc(source, out, names, dropped) if kind == "voc" else convert_coco(source, out, dropped)
    _warn_dropped_boxes(dropped)
    return data_yaml


_SHOWN_DROPPED = 3  # examples in the dropped-box warning


def _warn_dropped_boxes(dropped: list[str]) -> None:
    """One warning: how many boxes could not become labels, and the first few."""
    if dropped:
        shown = "; ".join(dropped[:_SHOWN_DROPPED]) + ("; ..." if len(dropped) > _SHOWN_DROPPED else "")
        warnings.warn(
            f"{len(dropped)} box(es) dropped: inverted, zero-size or entirely outside their image, so no label can "
            f"hold them: {shown}",
            UserWarning,
            stacklevel=3,
        )


def _write_data_yaml(out: Path, data: dict) -> Path:
    """Write ``out/data.yaml`` (path first, as Ultralytics' own dataset files do) and return its path."""
    return write_text_atomic(out / "data.yaml", yaml.safe_dump({"path": str(out), **data}, sort_keys=False))


def _link(src: Path, dst: Path) -> None:
    """Make ``dst`` point at ``src``: a symlink where allowed (no copy of large datasets), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if dst.resolve() == src.resolve():
            return  # already the file itself (in-place conversion) or a link to it; never delete the original
        dst.unlink()
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # e.g. Windows without developer mode, or file systems without symlinks
        with atomic_path(dst, durable=False) as tmp:
            shutil.copy2(src, tmp)


def _write_labels(path: Path, rows: Iterable[str]) -> None:
    """Write one YOLO label file (an empty file for an image without objects: a known background image).

    Atomically, without a disk flush per file (a dataset has many): a kill or a full disk leaves no truncated label.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(f"{row}\n" for row in rows), durable=False)


def _yolo_row(cls: int, x0: float, y0: float, x1: float, y1: float, width: float, height: float) -> str | None:
    """YOLO row for a continuous pixel box clipped to the image, or None when nothing of it is left."""
    x0, x1 = max(0.0, min(x0, width)), max(0.0, min(x1, width))
    y0, y1 = max(0.0, min(y0, height)), max(0.0, min(y1, height))
    if x1 <= x0 or y1 <= y0:
        return None
    cx, cy, w, h = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


# -------------------------------------------------------------------------------------------------- PASCAL VOC
def _voc_years(source: Path) -> list[Path]:
    """The complete ``VOC20XX`` folders in ``source`` or ``source/VOCdevkit`` by year, or ``[source]`` for custom data.

    ``[source]`` when it is itself one folder in the VOC layout under another name.
    """
    for root in (source, source / "VOCdevkit"):
        if root.is_dir():
            years = [p for p in sorted(root.iterdir()) if _VOC_YEAR.match(p.name) and p.is_dir()]
            years = [p for p in years if all((p / part).is_dir() for part in _VOC_PARTS)]
            if years:
                return years
    if all((source / part).is_dir() for part in _VOC_PARTS):
        return [source]
    return []


def _read_split_list(year: Path, split: str) -> list[str]:
    """Image ids listed in ``ImageSets/Main/<split>.txt``."""
    path = year / "ImageSets" / "Main" / f"{split}.txt"
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _voc_plan(years: list[Path]) -> dict[str, list[tuple[Path, str]]]:
    """Which ``(year folder, image-set)`` lists make up the train and val splits.

    The standard protocol trains on every year's trainval and tests on VOC2007 test. Without VOC2007 test (e.g. only
    VOC2012, whose test annotations are not public) the ``val`` lists become the val split and training uses the
    ``train`` lists, so that no image is in both.
    """

    def has(year: Path, split: str) -> bool:
        return (year / "ImageSets" / "Main" / f"{split}.txt").is_file()

    voc2007 = next((y for y in years if y.name == "VOC2007"), None)
    custom = len(years) == 1 and not _VOC_YEAR.match(years[0].name)  # one folder in the VOC layout, own name
    if voc2007 is not None and has(voc2007, "test"):
        plan = {"train": [(y, "trainval") for y in years if has(y, "trainval")], "val": [(voc2007, "test")]}
    elif custom and has(years[0], "test") and has(years[0], "trainval"):
        plan = {"train": [(years[0], "trainval")], "val": [(years[0], "test")]}
    else:
        plan = {
            "train": [(y, "train") for y in years if has(y, "train")],
            "val": [(y, "val") for y in years if has(y, "val")],
        }
        if plan["val"] and not custom:
            used = ", ".join(f"{y.name} val" for y, _ in plan["val"])
            warnings.warn(
                f"VOC2007 test not found under {years[0].parent}; using {used} as the val split and the train "
                "lists (not trainval) for training. Published VOC numbers are on VOC2007 test.",
                stacklevel=3,
            )
    for role, lists in plan.items():
        if not lists:
            where = ", ".join(str(y / "ImageSets" / "Main") for y in years)
            wanted = "trainval.txt (or train.txt)" if role == "train" else "VOC2007 test.txt (or val.txt)"
            raise ValueError(f"No VOC {role} split: looked for {wanted} in {where}.")
    return plan


def _voc_image_size(xml: Path, image: Path) -> tuple[int, int]:
    """Image ``(width, height)`` from the XML's ``<size>``, or from the image header when the XML lacks it."""
    try:
        size = ET.parse(xml).getroot().find("size")
    except ET.ParseError as error:
        raise ValueError(f"{xml}: not well-formed XML ({error}). Re-extract or repair this annotation file.") from None
    try:
        width, height = int(float(size.findtext("width"))), int(float(size.findtext("height")))
        if width > 0 and height > 0:
            return width, height
    except (AttributeError, TypeError, ValueError):
        pass  # missing or malformed <size>: a few third-party VOC-style sets have none
    from PIL import Image

    with Image.open(image) as im:
        return im.size


def _voc_image(year: Path, image_id: str) -> Path:
    """The image file of ``image_id`` in ``year/JPEGImages`` (VOC's are .jpg; other extensions are accepted)."""
    for suffix in _IMAGE_SUFFIXES:
        path = year / "JPEGImages" / f"{image_id}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"Image {image_id} listed in {year / 'ImageSets' / 'Main'} is missing from {year / 'JPEGImages'}."
    )


def voc_xml_to_yolo(
    xml: str | Path,
    image: str | Path | None = None,
    names: Sequence[str] = VOC_CLASS_NAMES,
    dropped: list[str] | None = None,
) -> list[str]:
    """YOLO label rows for one VOC annotation file, difficult objects included.

    Args:
        xml (str | Path): an ``Annotations/NAME.xml`` file.
        image (str | Path | None): the image, read only when the XML has no usable ``<size>``.
        names (Sequence[str]): class names; the row's class is the name's index.
        dropped (list[str] | None): receives a description of each box that cannot become a row (inverted,
            zero-size or outside the image).

    Returns:
        (list[str]): ``class cx cy w h`` rows, in the XML's object order.

    Raises:
        ValueError: if an object's class is not in ``names`` or the XML is malformed (the message names the file).
    """
    xml = Path(xml)
    width, height = _voc_image_size(xml, Path(image) if image else xml.with_suffix(".jpg"))
    index = {name: i for i, name in enumerate(names)}
    rows = []
    for k, obj in enumerate(read_voc_xml(xml)):
        if obj["name"] not in index:
            raise ValueError(
                f"{xml}: object class {obj['name']!r} is not one of the {len(names)} class names {list(names)}. Fix: "
                "add it to names= (or leave names= out to take the class names from the annotations)."
            )
        xmin, ymin, xmax, ymax = obj["bbox"]
        row = _yolo_row(index[obj["name"]], xmin - 1, ymin - 1, xmax - 1, ymax - 1, width, height)
        if row is not None:
            rows.append(row)
        elif dropped is not None:
            box = " ".join(f"{v:g}" for v in obj["bbox"])
            dropped.append(f"{xml} object {k} '{obj['name']}' [{box}] in a {width}x{height} image")
    return rows


def voc_class_names(xml_files: Iterable[Path]) -> list[str]:
    """The class names VOC annotations use, in class-index order.

    PASCAL VOC's 20 in the devkit's order when every name is among them; otherwise every name found, sorted (custom
    data in the VOC layout), with a warning.
    """
    found = {obj["name"] for xml in xml_files for obj in read_voc_xml(xml)}
    if found <= set(VOC_CLASS_NAMES):
        return list(VOC_CLASS_NAMES)
    names = sorted(found)
    other = sorted(found - set(VOC_CLASS_NAMES))
    warnings.warn(
        f"the annotations name classes outside PASCAL VOC's 20 (e.g. {', '.join(other[:3])}); using the "
        f"{len(names)} class names found in them, sorted: {', '.join(names)}. Pass names= to choose the order.",
        UserWarning,
        stacklevel=3,
    )
    return names


def _names_arg(names: Sequence[str] | str | None) -> list[str] | None:
    """``names=`` as a list of unique class names (``"cat,dog"`` or a list), or None."""
    if names is None:
        return None
    items = names.split(",") if isinstance(names, str) else [str(n) for n in names]
    items = [n.strip() for n in items if n.strip()]
    if not items or len(set(items)) != len(items):
        raise ValueError(f"names={names!r} must list distinct class names, e.g. names=cat,dog,person.")
    return items


def convert_voc(
    source: str | Path, out: str | Path, names: Sequence[str] | str | None = None, dropped: list[str] | None = None
) -> Path:
    """Convert a VOCdevkit folder (VOC2007 and/or VOC2012) to the YOLO layout, keeping the XML for the evaluator.

    Args:
        source (str | Path): the VOCdevkit folder (or its parent), or one folder in the VOC layout.
        out (str | Path): output folder.
        names (Sequence[str] | str | None): class names in index order; default :func:`voc_class_names`.
        dropped (list[str] | None): receives a description of each box that cannot become a label.

    Returns:
        (Path): ``out/data.yaml``.

    Raises:
        ValueError: if no VOC year folder or split list is found, two years share an image id, or an XML is invalid.
        FileNotFoundError: if a listed image or annotation is missing.
    """
    source, out = Path(source), Path(out).resolve()
    years = _voc_years(source)
    if not years:
        raise ValueError(f"No VOC20XX folder with {', '.join(_VOC_PARTS)} in {source} or {source / 'VOCdevkit'}.")
    plan = _voc_plan(years)
    seen: dict[str, Path] = {}  # image id -> year, to catch ids that two years share (they would overwrite)
    work = []
    for role, lists in plan.items():
        for year, image_set in lists:
            for image_id in _read_split_list(year, image_set):
                if seen.setdefault(image_id, year) != year:
                    raise ValueError(
                        f"Image id {image_id} is in both {seen[image_id]} and {year}; the output folder needs unique "
                        "names. Convert the years separately."
                    )
                xml = year / "Annotations" / f"{image_id}.xml"
                if not xml.is_file():
                    raise FileNotFoundError(
                        f"Annotation {xml} of image {image_id} ({year.name} {image_set}) is missing."
                    )
                work.append((role, image_id, xml, _voc_image(year, image_id)))
    names = _names_arg(names) or voc_class_names(xml for _, _, xml, _ in work)
    for role, image_id, xml, image in work:
        _write_labels(out / "labels" / role / f"{image_id}.txt", voc_xml_to_yolo(xml, image, names, dropped))
        _link(image, out / "images" / role / image.name)
        _link(xml, out / "Annotations" / xml.name)
    return _write_data_yaml(
        out,
        {
            "train": "images/train",
            "val": "images/val",
            "names": dict(enumerate(names)),
            # Read by our VOC evaluator: the XML keeps the difficult flags that YOLO labels cannot hold.
            "voc_annotations": "Annotations",
            "voc_splits": {role: [f"{y.name}/{s}" for y, s in lists] for role, lists in plan.items()},
        },
    )


# -------------------------------------------------------------------------------------------------- COCO
def _coco_jsons(source: Path) -> list[Path]:
    """``annotations/instances_<split>.json`` files of a COCO folder, sorted."""
    return sorted((source / "annotations").glob("instances_*.json"))


def _coco_role(split: str) -> str | None:
    """Which data.yaml key a COCO split belongs to (train2017 -> train, val2017 -> val), or None."""
    for role in ("train", "val", "test"):
        if split.startswith(role):
            return role
    return None


def _coco_image_dir(source: Path, split: str, json_path: Path) -> Path:
    """The folder holding a split's images: ``<split>/`` (COCO's zips) or ``images/<split>/``."""
    candidates = (source / split, source / "images" / split)
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"No image folder for {json_path.name}: looked for {' and '.join(str(c) for c in candidates)}."
    )


def coco_to_yolo(
    data: dict, class_of_category: dict[int, int], dropped: list[str] | None = None, source: str = "annotations"
) -> dict[int, list[str]]:
    """YOLO label rows per image id for a loaded COCO instances dict; crowd regions are left out.

    Crowd regions are not objects to detect: COCOeval ignores detections that fall on them, and Ultralytics'
    own converter skips them as well.

    Args:
        data (dict): a COCO instances dict (``images``, ``annotations``, ``categories``).
        class_of_category (dict[int, int]): category id -> class index.
        dropped (list[str] | None): receives a description of each box that cannot become a row (inverted,
            zero-size or outside the image).
        source (str): the file, for those descriptions.

    Returns:
        (dict[int, list[str]]): ``class cx cy w h`` rows for every image id in ``data["images"]`` (empty lists for
            images without objects).

    Raises:
        ValueError: if an annotation refers to an unknown image or category.
    """
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    rows: dict[int, list[str]] = {image_id: [] for image_id in sizes}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        if ann["image_id"] not in sizes or ann["category_id"] not in class_of_category:
            raise ValueError(
                f"Annotation {ann.get('id')} refers to image {ann['image_id']} / category {ann['category_id']}, "
                "which the file does not define."
            )
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        row = _yolo_row(class_of_category[ann["category_id"]], x, y, x + w, y + h, width, height)
        if row is not None:
            rows[ann["image_id"]].append(row)
        elif dropped is not None:
            dropped.append(f"{source} annotation {ann.get('id')} bbox {ann['bbox']} in a {width}x{height} image")
    return rows


def convert_coco(source: str | Path, out: str | Path, dropped: list[str] | None = None) -> Path:
    """Convert a COCO folder (``annotations/instances_<split>.json`` + images) to the YOLO layout.

    Class indices follow the categories sorted by id, so names come in COCO order; for COCO itself this is the
    usual 80-class list (the 91 original ids with their gaps map to 0..79). The original JSON files are linked
    into ``out/annotations`` and named in data.yaml's ``coco_annotations`` for the COCO evaluator.

    Args:
        source (str | Path): the COCO folder.
        out (str | Path): output folder.
        dropped (list[str] | None): receives a description of each box that cannot become a label.

    Returns:
        (Path): ``out/data.yaml``.

    Raises:
        ValueError: if no instances JSON is found, the splits disagree on categories, or there is no train or val
            split.
        FileNotFoundError: if an image folder or a listed image is missing.
    """
    # Ultralytics' converter.convert_coco does not fit: it maps classes by the fixed COCO-91 table (or id - 1),
    # writes into a new incremented folder and leaves the images where they are.
    source, out = Path(source), Path(out).resolve()
    json_paths = _coco_jsons(source)
    if not json_paths:
        raise ValueError(f"No COCO annotations in {source}: looked for {source / 'annotations' / 'instances_*.json'}.")
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    annotations: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    categories = None
    for json_path in json_paths:
        split = json_path.stem[len("instances_") :]
        role = _coco_role(split)
        if role is None:
            warnings.warn(f"Skipping {json_path}: '{split}' is not a train, val or test split.", stacklevel=2)
            continue
        data = read_coco_json(json_path)
        cats = sorted((c["id"], c["name"]) for c in data["categories"])
        if categories is not None and cats != categories:
            raise ValueError(f"{json_path}: its categories differ from those of {json_paths[0].name}.")
        categories = cats
        class_of_category = {cat_id: i for i, (cat_id, _) in enumerate(cats)}
        image_dir = _coco_image_dir(source, split, json_path)
        rows = coco_to_yolo(data, class_of_category, dropped, str(json_path))
        for image in data["images"]:
            src = image_dir / image["file_name"]
            if not src.is_file():
                raise FileNotFoundError(f"Image {src} listed in {json_path} is missing.")
            rel = Path(image["file_name"])
            _link(src, out / "images" / split / rel)
            _write_labels((out / "labels" / split / rel).with_suffix(".txt"), rows[image["id"]])
        _link(json_path, out / "annotations" / json_path.name)
        splits[role].append(f"images/{split}")
        annotations[role].append(f"annotations/{json_path.name}")
    for role in ("train", "val"):
        if not splits[role]:
            raise ValueError(f"No COCO {role} split in {source}: looked for annotations/instances_{role}*.json.")
    data_yaml = {role: paths[0] if len(paths) == 1 else paths for role, paths in splits.items() if paths}
    data_yaml["names"] = {i: name for i, (_, name) in enumerate(categories)}
    # The evaluator scores one split against one JSON; splits made of several JSON files get no entry.
    data_yaml["coco_annotations"] = {role: paths[0] for role, paths in annotations.items() if len(paths) == 1}
    return _write_data_yaml(out, data_yaml)
