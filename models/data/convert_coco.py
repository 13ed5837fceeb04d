"""COCO folders (``annotations/instances_<split>.json`` and the images) to the YOLO layout.

Boxes ``[x, y, w, h]`` are continuous already and are only normalised; crowd regions are left out. The instances
JSON files are linked beside the labels for the COCO evaluator (see :mod:`attnyolo.data.convert`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .annotations import read_coco_json
from .layout import contained, link, write_data_yaml, write_labels, yolo_row


def coco_jsons(source: Path) -> list[Path]:
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
        row = yolo_row(class_of_category[ann["category_id"]], x, y, x + w, y + h, width, height)
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
    json_paths = coco_jsons(source)
    if not json_paths:
        raise ValueError(f"No COCO annotations in {source}: looked for {source / 'annotations' / 'instances_*.json'}.")
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    annotations: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    categories = None
    work: list[tuple[Path, Path, Path | None, list[str] | None]] = []  # (source, link, label file, rows)
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
            # file_name comes from the JSON: it must name a file inside the image folder, and so must its outputs
            entry = f"{json_path} image {image.get('id')} file_name {image['file_name']!r}"
            src = contained(image_dir, str(image["file_name"]), entry)
            if not src.is_file():
                raise FileNotFoundError(f"Image {src} listed in {json_path} is missing.")
            rel = Path(image["file_name"])
            dst_image = contained(out, Path("images") / split / rel, entry, resolve=True)
            dst_label = contained(out, (Path("labels") / split / rel).with_suffix(".txt"), entry, resolve=True)
            work.append((src, dst_image, dst_label, rows[image["id"]]))
        work.append((json_path, out / "annotations" / json_path.name, None, None))
        splits[role].append(f"images/{split}")
        annotations[role].append(f"annotations/{json_path.name}")
    for role in ("train", "val"):
        if not splits[role]:
            raise ValueError(f"No COCO {role} split in {source}: looked for annotations/instances_{role}*.json.")
    for src, dst, label, rows in work:  # written only once every entry of every JSON has been checked
        link(src, dst)
        if label is not None:
            write_labels(label, rows)
    data_yaml = {role: paths[0] if len(paths) == 1 else paths for role, paths in splits.items() if paths}
    data_yaml["names"] = {i: name for i, (_, name) in enumerate(categories)}
    # The evaluator scores one split against one JSON; splits made of several JSON files get no entry.
    data_yaml["coco_annotations"] = {role: paths[0] for role, paths in annotations.items() if len(paths) == 1}
    return write_data_yaml(out, data_yaml)
