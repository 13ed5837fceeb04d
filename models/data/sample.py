"""A small synthetic detection dataset that trains in minutes on a CPU, written in YOLO, VOC and COCO formats.

The renderer and the three annotation writers are here, beside the one source of truth per image they share; the
drawing primitives and the object record (backgrounds, shape outlines, textures, :class:`SampleObject`) are in
:mod:`attnyolo.data.shapes`, the clip and its ground truth in :mod:`attnyolo.data.sample_video`.

Backgrounds are random crops of the two photos that ship with Ultralytics (``bus.jpg`` and ``zidane.jpg``), so
nothing is downloaded. On each background a few filled, textured shapes are pasted; the shape decides the class
(:data:`CLASS_NAMES`), colour and texture are random so that only the outline carries the label. Later shapes may
partly cover earlier ones.

Every image has one source of truth, a list of :class:`SampleObject` built from the pasted masks, and all three
annotation formats are written from it, so they agree to the pixel. Boxes enclose the visible pixels of a shape, as
VOC and COCO annotators draw them:

- ``labels/{train,val}/NAME.txt``: YOLO ``class cx cy w h`` normalised to the image size.
- ``Annotations/NAME.xml``: PASCAL VOC, ``bndbox`` as 1-based inclusive pixel indices, ``difficult`` 0/1.
- ``annotations/instances_{train,val}.json``: COCO instances, ``category_id = class index + 1``,
  ``bbox = [x, y, w, h]`` in pixels, ``area`` = visible mask pixels, ``iscrowd`` 0 and an extra ``difficult`` key.

Difficulty rule (VOC marks objects that are hard to recognise as ``difficult``; the devkit ignores them in
evaluation): an object is difficult when the shorter side of its visible box is below
:data:`DIFFICULT_MIN_SIDE_FRAC` of the shorter image side, or when less than :data:`DIFFICULT_MIN_VISIBLE` of its
pixels remain visible after later shapes were pasted over it. Difficult objects are still in the YOLO labels and in
the COCO JSON (with ``"difficult": 1``); only evaluators that follow the VOC devkit ignore them.

Also written: ``data.yaml`` for Ultralytics, with the extra keys ``voc_annotations``, ``coco_annotations`` (read by
our evaluators) and ``video``, and ``sample.mp4`` (3 s at 10 fps, 320 x 240, mp4v) of shapes moving over a photo.
``Annotations`` (VOC's name) and ``annotations`` (COCO's) coincide on case-insensitive file systems; the file names
differ, so both still work there.

Image names are numeric (``000001.jpg``) and unique across splits, so Ultralytics' ``save_json`` derives the same
integer ``image_id`` that the COCO JSON uses.

Examples:
    >>> from attnyolo.data.sample import make_sample_dataset
    >>> data_yaml = make_sample_dataset()  # data/sample under the working directory  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..utils.atomic import (
    remove_stale_temporaries,
    write_bytes_atomic,
    write_image_atomic,
    write_text_atomic,
)
from ..utils.paths import sample_data_dir
from .sample_video import (  # noqa: F401  (re-exported: the dataset's clip)
    VIDEO_FPS,
    VIDEO_SECONDS,
    VIDEO_SIZE,
    count_video_frames,
    sample_video_truth,
    write_sample_video,
)
from .shapes import (  # noqa: F401  (re-exported: the classes and the difficulty rule)
    CLASS_NAMES,
    DIFFICULT_MIN_SIDE_FRAC,
    DIFFICULT_MIN_VISIBLE,
    SIZE_RANGE,
    SampleObject,
    load_backgrounds,
    random_background,
    random_texture,
    shape_polygon,
    visible_object,
)

# Defaults tuned by training on 2 CPU cores (Ultralytics 8.4): yolov8n-CoordAtt.yaml from scratch with imgsz=160,
# epochs=15, batch=4, nbs=4 (an optimizer step every batch), optimizer=AdamW, lr0=0.003, warmup_epochs=1,
# close_mosaic=5, val=False, workers=0 reached mAP50 0.71 / 0.68 / 0.71 (seeds 0 / 1 / 2) on the val split in about
# 3 minutes including the final validation. Measured alternatives did worse in the same time: Ultralytics' default
# nbs=64 (batch 16: one step per 4 batches) reached 0.28, imgsz=128 ran no faster per image, mosaic=0 lost ~0.09.
DEFAULT_N_TRAIN = 240
DEFAULT_N_VAL = 60
DEFAULT_IMGSZ = 160

# Small objects, as a fraction of the shorter image side (the usual sizes are shapes.SIZE_RANGE): a few, so that the
# difficulty rule has something to mark.
SMALL_SIZE_RANGE = (0.035, 0.09)
SMALL_PROB = 0.08
OBJECTS_PER_IMAGE = (2, 6)

# A new shape is rejected when it would leave less than this fraction of an earlier shape visible, so that no
# annotated object is hidden almost entirely.
MIN_VISIBLE = 0.55

VIDEO_NAME = "sample.mp4"

_JPEG_QUALITY = 92


def render_image(
    rng: np.random.Generator, photos: list[np.ndarray], width: int, height: int
) -> tuple[np.ndarray, list[SampleObject]]:
    """Render one sample image and its objects.

    Args:
        rng (np.random.Generator): random source; the same state gives the same image and objects.
        photos (list[np.ndarray]): background photos (see :func:`load_backgrounds`).
        width (int): image width in pixels.
        height (int): image height in pixels.

    Returns:
        (tuple[np.ndarray, list[SampleObject]]): the BGR image and its objects, in paste order.
    """
    image = random_background(rng, photos, width, height)
    short = min(width, height)
    masks: list[np.ndarray] = []  # visible pixels of each pasted shape, updated as later shapes cover them
    full_areas: list[int] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1))):
        cls = int(rng.integers(len(CLASS_NAMES)))
        lo, hi = SMALL_SIZE_RANGE if rng.random() < SMALL_PROB else SIZE_RANGE
        pts = shape_polygon(rng, cls, rng.uniform(lo, hi) * short)
        for _attempt in range(20):
            # Keep the whole shape inside the image, so no object is truncated.
            cx = rng.uniform(-pts[:, 0].min(), width - pts[:, 0].max())
            cy = rng.uniform(-pts[:, 1].min(), height - pts[:, 1].max())
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [np.round(pts + (cx, cy)).astype(np.int32)], 1)
            mask = mask.astype(bool)
            if mask.sum() < 4:
                break  # degenerate (tiny) polygon: skip this object
            if all((m & ~mask).sum() >= MIN_VISIBLE * a for m, a in zip(masks, full_areas)):
                masks = [m & ~mask for m in masks]
                masks.append(mask)
                full_areas.append(int(mask.sum()))
                classes.append(cls)
                image[mask] = random_texture(rng, width, height)[mask]
                break
    if rng.random() < 0.3:  # soften edges now and then, as camera images are rarely pixel-sharp
        image = cv2.GaussianBlur(image, (3, 3), 0)

    objects = [visible_object(cls, mask, full, short) for cls, mask, full in zip(classes, masks, full_areas)]
    return image, objects


def voc_xml(filename: str, width: int, height: int, objects: list[SampleObject]) -> bytes:
    """PASCAL VOC annotation XML for one image.

    Args:
        filename (str): image file name, e.g. ``000001.jpg``.
        width (int): image width in pixels.
        height (int): image height in pixels.
        objects (list[SampleObject]): the image's objects.

    Returns:
        (bytes): the XML document, UTF-8 encoded.
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "AttnYOLO-sample"
    ET.SubElement(root, "filename").text = filename
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "AttnYOLO synthetic shapes"
    size = ET.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = CLASS_NAMES[obj.cls]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = "0"  # shapes are always placed wholly inside the image
        ET.SubElement(node, "difficult").text = str(int(obj.difficult))
        box = ET.SubElement(node, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.voc_box()):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def make_sample_dataset(
    out_dir: str | Path | None = None,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    imgsz: int = DEFAULT_IMGSZ,
    seed: int = 0,
    video: bool = True,
) -> Path:
    """Generate the sample dataset in YOLO, VOC and COCO formats, plus a short video and an Ultralytics data.yaml.

    The same ``seed`` and sizes always give byte-identical label and annotation files. An existing ``out_dir`` is
    replaced (only the files this function writes), so a regenerated dataset never mixes with a stale one.

    Args:
        out_dir (str | Path | None): output folder; None means ``data/sample`` under the working directory
            (:func:`attnyolo.utils.paths.sample_data_dir`, where the tools look for it).
        n_train (int): number of training images.
        n_val (int): number of validation images.
        imgsz (int): longer image side in pixels; the shorter side is 75-100% of it.
        seed (int): random seed.
        video (bool): also write ``sample.mp4``.

    Returns:
        (Path): the absolute path of ``out_dir/data.yaml``.

    Raises:
        ValueError: if a count or size is out of range.

    Examples:
        >>> data_yaml = make_sample_dataset("/tmp/sample", n_train=8, n_val=4, video=False)  # doctest: +SKIP
    """
    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train={n_train} and n_val={n_val} must both be >= 1.")
    if imgsz < 32:
        raise ValueError(f"imgsz={imgsz} is too small for shapes to be recognisable; use 32 or more.")
    out = Path(out_dir if out_dir is not None else sample_data_dir()).resolve()
    for sub in ("images", "labels", "Annotations", "annotations"):
        shutil.rmtree(out / sub, ignore_errors=True)  # also drops Ultralytics' labels/*.cache of an older dataset
    photos = load_backgrounds()

    image_id = 0
    for split, count in (("train", n_train), ("val", n_val)):
        for folder in (out / "images" / split, out / "labels" / split, out / "Annotations", out / "annotations"):
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder)  # an earlier run killed mid-write
        coco_images, coco_annotations = [], []
        for _ in range(count):
            image_id += 1
            # One generator per image, keyed by (seed, image id): an image does not change when counts change.
            rng = np.random.default_rng([seed, image_id])
            long_side, short_side = imgsz, int(round(imgsz * rng.uniform(0.75, 1.0)))
            width, height = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
            image, objects = render_image(rng, photos, width, height)
            name = f"{image_id:06d}"
            # Many small files: atomic renames without a disk flush each (see attnyolo.utils.atomic).
            quality = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
            write_image_atomic(out / "images" / split / f"{name}.jpg", image, quality, durable=False)
            rows = "".join(obj.yolo_row(width, height) + "\n" for obj in objects)
            write_text_atomic(out / "labels" / split / f"{name}.txt", rows, durable=False)
            xml = voc_xml(f"{name}.jpg", width, height, objects)
            write_bytes_atomic(out / "Annotations" / f"{name}.xml", xml, durable=False)
            coco_images.append({"id": image_id, "file_name": f"{name}.jpg", "width": width, "height": height})
            for obj in objects:
                coco_annotations.append(
                    {
                        "id": len(coco_annotations) + 1,
                        "image_id": image_id,
                        "category_id": obj.cls + 1,
                        "bbox": obj.coco_box(),
                        "area": obj.area,
                        "iscrowd": 0,
                        "difficult": int(obj.difficult),
                    }
                )
        coco = {
            "info": {"description": f"AttnYOLO synthetic shapes, {split} split, seed {seed}"},
            "images": coco_images,
            "annotations": coco_annotations,
            "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)],
        }
        write_text_atomic(out / "annotations" / f"instances_{split}.json", json.dumps(coco) + "\n")

    data = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASS_NAMES)),
        # Read by our evaluators, ignored by Ultralytics: the VOC XML keeps the `difficult` flags the devkit needs.
        "voc_annotations": "Annotations",
        "coco_annotations": {"train": "annotations/instances_train.json", "val": "annotations/instances_val.json"},
    }
    if video:
        write_sample_video(out / VIDEO_NAME, seed=seed, photos=photos)
        data["video"] = VIDEO_NAME
    else:
        (out / VIDEO_NAME).unlink(missing_ok=True)
    data_yaml = out / "data.yaml"
    write_text_atomic(data_yaml, yaml.safe_dump(data, sort_keys=False))  # last: a complete dataset has one
    return data_yaml
