"""PASCAL VOC folders (a VOCdevkit with VOC2007 and/or VOC2012, or one folder in the VOC layout) to the YOLO layout.

Boxes: VOC's are 1-based inclusive pixel indices and become the continuous box ``[xmin - 1, ymin - 1, xmax - 1,
ymax - 1]`` (see :mod:`attnyolo.data.convert`). The XML files are linked beside the labels, so the VOC evaluator keeps
the ``difficult`` flags.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from .annotations import read_voc_xml
from .layout import contained, link, write_data_yaml, write_labels, yolo_row

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
VOC_PARTS = ("Annotations", "JPEGImages", "ImageSets/Main")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def voc_years(source: Path) -> list[Path]:
    """The complete ``VOC20XX`` folders in ``source`` or ``source/VOCdevkit`` by year, or ``[source]`` for custom data.

    ``[source]`` when it is itself one folder in the VOC layout under another name.
    """
    for root in (source, source / "VOCdevkit"):
        if root.is_dir():
            years = [p for p in sorted(root.iterdir()) if _VOC_YEAR.match(p.name) and p.is_dir()]
            years = [p for p in years if all((p / part).is_dir() for part in VOC_PARTS)]
            if years:
                return years
    if all((source / part).is_dir() for part in VOC_PARTS):
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
        row = yolo_row(index[obj["name"]], xmin - 1, ymin - 1, xmax - 1, ymax - 1, width, height)
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
    years = voc_years(source)
    if not years:
        raise ValueError(f"No VOC20XX folder with {', '.join(VOC_PARTS)} in {source} or {source / 'VOCdevkit'}.")
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
                # the id comes from the split list: it must name files inside the year's folders and inside out=
                entry = f"{year / 'ImageSets' / 'Main' / image_set}.txt entry {image_id!r}"
                xml = contained(year / "Annotations", f"{image_id}.xml", entry)
                contained(year / "JPEGImages", image_id, entry)
                contained(out, Path("labels") / role / f"{image_id}.txt", entry, resolve=True)
                if not xml.is_file():
                    raise FileNotFoundError(
                        f"Annotation {xml} of image {image_id} ({year.name} {image_set}) is missing."
                    )
                work.append((role, image_id, xml, _voc_image(year, image_id)))
    names = _names_arg(names) or voc_class_names(xml for _, _, xml, _ in work)
    for role, image_id, xml, image in work:
        for path in (out / "images" / role / image.name, out / "Annotations" / xml.name):
            contained(out, path.relative_to(out), f"image {image_id}'s output", resolve=True)
    for role, image_id, xml, image in work:
        write_labels(out / "labels" / role / f"{image_id}.txt", voc_xml_to_yolo(xml, image, names, dropped))
        link(image, out / "images" / role / image.name)
        link(xml, out / "Annotations" / xml.name)
    return write_data_yaml(
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
