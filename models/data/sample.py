"""A small synthetic detection dataset that trains in minutes on a CPU, written in YOLO, VOC and COCO formats.

(One module of about 500 lines on purpose: the renderer and the three annotation writers share one source of truth
per image, and keeping them together is what makes the formats agree to the pixel.)

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
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..utils.atomic import (
    atomic_path,
    remove_stale_temporaries,
    write_bytes_atomic,
    write_image_atomic,
    write_text_atomic,
)
from ..utils.paths import sample_data_dir

CLASS_NAMES = ("circle", "rectangle", "triangle")

# Defaults tuned by training on 2 CPU cores (Ultralytics 8.4): yolov8n-CoordAtt.yaml from scratch with imgsz=160,
# epochs=15, batch=4, nbs=4 (an optimizer step every batch), optimizer=AdamW, lr0=0.003, warmup_epochs=1,
# close_mosaic=5, val=False, workers=0 reached mAP50 0.71 / 0.68 / 0.71 (seeds 0 / 1 / 2) on the val split in about
# 3 minutes including the final validation. Measured alternatives did worse in the same time: Ultralytics' default
# nbs=64 (batch 16: one step per 4 batches) reached 0.28, imgsz=128 ran no faster per image, mosaic=0 lost ~0.09.
DEFAULT_N_TRAIN = 240
DEFAULT_N_VAL = 60
DEFAULT_IMGSZ = 160

# Object sizes, as a fraction of the shorter image side. Most objects are large enough to learn quickly; a few
# are small so that the difficulty rule below has something to mark.
SIZE_RANGE = (0.16, 0.45)
SMALL_SIZE_RANGE = (0.035, 0.09)
SMALL_PROB = 0.08
OBJECTS_PER_IMAGE = (2, 6)

# Difficulty rule (see module docstring).
DIFFICULT_MIN_SIDE_FRAC = 0.05
DIFFICULT_MIN_VISIBLE = 0.7
# A new shape is rejected when it would leave less than this fraction of an earlier shape visible, so that no
# annotated object is hidden almost entirely.
MIN_VISIBLE = 0.55

VIDEO_NAME = "sample.mp4"
VIDEO_SIZE = (320, 240)  # width, height; mp4v wants even sides
VIDEO_FPS = 10
VIDEO_SECONDS = 3

_JPEG_QUALITY = 92
_BACKGROUND_FILES = ("bus.jpg", "zidane.jpg")


@dataclass
class SampleObject:
    """One pasted shape: its class and visible box in continuous pixel coordinates.

    The box spans pixel columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1`` (half-open, like COCO's ``[x, y, w, h]``),
    so ``x0`` and ``y0`` are the 0-based indices of the first covered pixel.

    Attributes:
        cls (int): class index into :data:`CLASS_NAMES`.
        x0 (int): left edge, pixels.
        y0 (int): top edge, pixels.
        x1 (int): right edge (exclusive), pixels.
        y1 (int): bottom edge (exclusive), pixels.
        area (int): number of visible pixels of the shape.
        difficult (bool): whether the VOC devkit should ignore the object (see the module docstring).
    """

    cls: int
    x0: int
    y0: int
    x1: int
    y1: int
    area: int
    difficult: bool

    def yolo_row(self, width: int, height: int) -> str:
        """YOLO label row ``class cx cy w h``, normalised by the image size."""
        cx = (self.x0 + self.x1) / 2 / width
        cy = (self.y0 + self.y1) / 2 / height
        return f"{self.cls} {cx:.6f} {cy:.6f} {(self.x1 - self.x0) / width:.6f} {(self.y1 - self.y0) / height:.6f}"

    def voc_box(self) -> tuple[int, int, int, int]:
        """VOC ``(xmin, ymin, xmax, ymax)``: 1-based, inclusive pixel indices, as the VOC devkit writes them."""
        return self.x0 + 1, self.y0 + 1, self.x1, self.y1

    def coco_box(self) -> list[int]:
        """COCO ``[x, y, w, h]`` in pixels."""
        return [self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0]


def load_backgrounds() -> list[np.ndarray]:
    """Load the photos bundled with Ultralytics that serve as backgrounds.

    Returns:
        (list[np.ndarray]): BGR images.

    Raises:
        FileNotFoundError: if an asset is missing from the installed Ultralytics package.
    """
    from ultralytics.utils import ASSETS

    images = []
    for name in _BACKGROUND_FILES:
        path = Path(ASSETS) / name
        image = cv2.imread(str(path))
        if image is None:
            raise FileNotFoundError(f"Background photo {path} is missing or unreadable; reinstall ultralytics.")
        images.append(image)
    return images


def random_background(rng: np.random.Generator, photos: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """A random crop of one photo, resized to ``width x height``, maybe flipped, with jittered brightness/contrast.

    Args:
        rng (np.random.Generator): random source.
        photos (list[np.ndarray]): BGR photos to crop from.
        width (int): output width in pixels.
        height (int): output height in pixels.

    Returns:
        (np.ndarray): a ``(height, width, 3)`` uint8 BGR image.
    """
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    # Largest crop with the output's aspect ratio, then a random fraction of it, so backgrounds range from whole
    # scenes to close-ups.
    max_w = min(pw, ph * width / height)
    scale = rng.uniform(0.3, 1.0)
    cw, ch = max(8, int(max_w * scale)), max(8, int(max_w * scale * height / width))
    x = int(rng.integers(0, pw - cw + 1))
    y = int(rng.integers(0, ph - ch + 1))
    image = cv2.resize(photo[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    alpha, beta = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
    return np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def shape_polygon(rng: np.random.Generator, cls: int, size: float) -> np.ndarray:
    """Outline of a shape of class ``cls`` centred on the origin, about ``size`` pixels across.

    Args:
        rng (np.random.Generator): random source for aspect ratio and rotation.
        cls (int): index into :data:`CLASS_NAMES` (circle, rectangle, triangle).
        size (float): nominal diameter / side in pixels.

    Returns:
        (np.ndarray): ``(N, 2)`` float polygon vertices ``(x, y)``.
    """
    if cls == 0:  # circle, slightly elliptical so that it is not a single template
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t) * size / 2, np.sin(t) * size / 2 * rng.uniform(0.85, 1.0)], 1)
        angle = rng.uniform(0, 2 * np.pi)
    elif cls == 1:  # rectangle, tilted at most 20 degrees so that it never turns into a diamond
        aspect = rng.uniform(0.6, 1.6)
        w, h = size * np.sqrt(aspect), size / np.sqrt(aspect)
        pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        angle = np.deg2rad(rng.uniform(-20, 20))
    elif cls == 2:  # triangle, roughly equilateral and roughly upright
        # Limiting the rotation (like the rectangle's) keeps each class a narrow family of outlines, which is what
        # lets a nano model learn the classes from scratch in a few CPU minutes.
        t = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-12, 12, 3))
        pts = np.stack([np.cos(t), np.sin(t)], 1) * size * 0.7
        angle = np.deg2rad(rng.uniform(-30, 30) + 180 * (rng.random() < 0.5))  # apex up or down
    else:
        raise ValueError(f"Unknown shape class {cls}; expected 0..{len(CLASS_NAMES) - 1} for {CLASS_NAMES}.")
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return pts @ rot.T


def random_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random colour with a random texture (noise, stripes, checks or gradient), as a BGR image.

    Args:
        rng (np.random.Generator): random source.
        width (int): texture width in pixels.
        height (int): texture height in pixels.

    Returns:
        (np.ndarray): ``(height, width, 3)`` uint8 BGR texture.
    """
    base = rng.uniform(20, 235, 3)
    # The pattern's second colour stays near the first: strong inner edges (a stripe across a rectangle) would
    # compete with the outline, which is all that tells the classes apart.
    other = np.clip(base + rng.uniform(-60, 60, 3), 0, 255)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = int(rng.integers(4))
    if kind == 0:  # noisy solid
        weight = np.zeros((height, width), np.float32)
    elif kind == 1:  # stripes at a random angle
        a, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        weight = (np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period) > 0).astype(np.float32)
    elif kind == 2:  # checks
        cell = int(rng.integers(3, 9))
        weight = ((xx // cell + yy // cell) % 2).astype(np.float32)
    else:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(a) + yy * np.sin(a)
        weight = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    texture = base * (1 - weight[..., None]) + other * weight[..., None]
    texture += rng.normal(0, 8, texture.shape)
    return np.clip(texture, 0, 255).astype(np.uint8)


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

    objects = [_visible_object(cls, mask, full, short) for cls, mask, full in zip(classes, masks, full_areas)]
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


def count_video_frames(path: str | Path) -> int:
    """Number of frames OpenCV can decode from a video (by reading them, not trusting the container header).

    Args:
        path (str | Path): video file.

    Returns:
        (int): decoded frames; 0 when the file cannot be opened.
    """
    cap = cv2.VideoCapture(str(path))
    frames = 0
    try:
        while cap.isOpened():
            ok, _ = cap.read()
            if not ok:
                break
            frames += 1
    finally:
        cap.release()
    return frames


def write_sample_video(
    path: str | Path, seed: int = 0, photos: list[np.ndarray] | None = None, size: tuple[int, int] = VIDEO_SIZE
) -> int:
    """Write a short mp4 of shapes moving over a still background and check that OpenCV can read it back.

    Args:
        path (str | Path): output ``.mp4`` file.
        seed (int): random seed.
        photos (list[np.ndarray] | None): background photos; loaded from Ultralytics' assets when None.
        size (tuple[int, int]): frame ``(width, height)``.

    Returns:
        (int): number of frames decoded back from the written file.

    Raises:
        RuntimeError: if this OpenCV build cannot write or read back mp4v video.
    """
    width, height = size
    with atomic_path(path, f"tmp{Path(path).suffix}") as tmp:  # the container is chosen by the file's extension
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV could not open {tmp} for writing with the mp4v codec; is FFMPEG support built?")
        try:
            for frame, _ in _video_frames(seed, photos, size):
                writer.write(frame)
        finally:
            writer.release()
    frames = count_video_frames(path)
    if frames == 0:
        raise RuntimeError(f"OpenCV wrote {path} but cannot read any frame back; check its FFMPEG support.")
    return frames


def sample_video_truth(
    seed: int = 0, photos: list[np.ndarray] | None = None, size: tuple[int, int] = VIDEO_SIZE
) -> list[list[SampleObject | None]]:
    """The true objects of every frame of the sample video :func:`write_sample_video` writes with the same arguments.

    Each moving shape is one object for the whole video (its index in a frame's list is its identity), boxed by its
    visible pixels as in the images (shapes pasted later cover earlier ones), with the images' difficulty rule.

    Args:
        seed (int): random seed, as given to :func:`write_sample_video`.
        photos (list[np.ndarray] | None): background photos; loaded from Ultralytics' assets when None.
        size (tuple[int, int]): frame ``(width, height)``.

    Returns:
        (list[list[SampleObject | None]]): per frame (0-based), per shape, its object; None while wholly covered.
    """
    return [objects for _, objects in _video_frames(seed, photos, size)]


def _video_frames(seed: int, photos: list[np.ndarray] | None, size: tuple[int, int]):
    """Yield each frame of the sample video and its objects (see :func:`sample_video_truth`)."""
    rng = np.random.default_rng([seed, 1_000_000])  # a stream apart from the per-image ones
    photos = photos if photos is not None else load_backgrounds()
    width, height = size
    background = random_background(rng, photos, width, height)
    short = min(width, height)
    sprites = []
    for cls in range(len(CLASS_NAMES)):
        pts = shape_polygon(rng, cls, rng.uniform(*SIZE_RANGE) * short)
        half = np.abs(pts).max(0)
        start = rng.uniform(half, (width, height) - half)
        velocity = rng.uniform(-1, 1, 2) * short * 0.4 / VIDEO_FPS  # up to 40% of the frame per second
        sprites.append((cls, pts, half, start, velocity, random_texture(rng, width, height)))
    for i in range(VIDEO_FPS * VIDEO_SECONDS):
        frame = background.copy()
        masks = []
        for _cls, pts, half, start, velocity, texture in sprites:
            # Bounce off the borders: fold the unbounded linear position back into the allowed range.
            lo, span = half, (width, height) - 2 * half
            pos = np.abs((start - lo + velocity * i) % (2 * span) - span)
            pos = lo + span - pos
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [np.round(pts + pos).astype(np.int32)], 1)
            masks.append(mask.astype(bool))
            frame[masks[-1]] = texture[masks[-1]]
        covered = np.zeros((height, width), bool)  # by the shapes pasted after the one being boxed
        objects = []
        for (cls, *_), mask in reversed(list(zip(sprites, masks))):
            objects.insert(0, _visible_object(cls, mask & ~covered, int(mask.sum()), short))
            covered |= mask
        yield frame, objects


def _visible_object(cls: int, visible: np.ndarray, full: int, short: int) -> SampleObject | None:
    """A shape's object from its visible pixels, with the images' difficulty rule; None when none is visible."""
    if not visible.any():
        return None
    ys, xs = np.nonzero(visible)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    area = int(visible.sum())
    difficult = min(x1 - x0, y1 - y0) < DIFFICULT_MIN_SIDE_FRAC * short or area < DIFFICULT_MIN_VISIBLE * full
    return SampleObject(cls, x0, y0, x1, y1, area, bool(difficult))


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
