"""What the sample dataset draws, and the record of a drawn object.

Backgrounds are crops of Ultralytics' two photos; the shape decides the class (:data:`CLASS_NAMES`), colour and
texture are random, so only the outline carries the label. A drawn shape's object (:class:`SampleObject`) is boxed by
its visible pixels, with VOC's difficulty rule (:func:`visible_object`; the rule is described in
:mod:`attnyolo.data.sample`). :mod:`attnyolo.data.sample` pastes shapes into images and writes the annotations;
:mod:`attnyolo.data.sample_video` moves them over a photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ultralytics.utils import ASSETS

CLASS_NAMES = ("circle", "rectangle", "triangle")

# Object sizes, as a fraction of the shorter image side: most objects are large enough to learn quickly.
SIZE_RANGE = (0.16, 0.45)

# Difficulty rule (see attnyolo.data.sample).
DIFFICULT_MIN_SIDE_FRAC = 0.05
DIFFICULT_MIN_VISIBLE = 0.7

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


def visible_object(cls: int, visible: np.ndarray, full: int, short: int) -> SampleObject | None:
    """A shape's object from its visible pixels, with the images' difficulty rule; None when none is visible."""
    if not visible.any():
        return None
    ys, xs = np.nonzero(visible)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    area = int(visible.sum())
    difficult = min(x1 - x0, y1 - y0) < DIFFICULT_MIN_SIDE_FRAC * short or area < DIFFICULT_MIN_VISIBLE * full
    return SampleObject(cls, x0, y0, x1, y1, area, bool(difficult))
