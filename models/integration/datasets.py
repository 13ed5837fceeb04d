"""What Ultralytics' validator makes of a dataset split: which images it evaluates, and with which labels.

Ultralytics builds its detection dataset by passing every image and its label file through
``ultralytics.data.utils.verify_image_label``: an unreadable image, or a label file with one bad line (a class id
outside the dataset's classes, a row without 5 values, coordinates outside [0, 1] beyond its 1% tolerance), drops the
whole image; duplicate rows are removed; anything else is kept as written. AttnYOLO's evaluator asks the same
function (:func:`image_verdicts`), so its ground truth covers the images the model is run on, with the same labels,
and reads back the images the validator did evaluate (:func:`evaluated_images`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ImageVerdict:
    """Ultralytics' verdict on one image of a split.

    Attributes:
        image: The image file.
        kept: False when Ultralytics drops the image (and with it all its labels).
        labels: ``(N, 5)`` rows ``class cx cy w h``, normalised, as Ultralytics uses them; empty when dropped.
        shape: ``(height, width)`` after EXIF rotation, or None when dropped.
        message: Ultralytics' note: why the image was dropped, ``"N duplicate labels removed"``, or empty.
    """

    image: Path
    kept: bool
    labels: np.ndarray
    shape: tuple[int, int] | None
    message: str


def _reason(message: str, image: str) -> str:
    """Ultralytics' message without the image path it starts with, its prefix and emoji."""
    text = message.split(f"{image}: ", 1)[-1].replace("⚠️", "").strip()
    return " ".join(text.split())


def image_verdicts(images: list[Path], num_classes: int, single_cls: bool = False) -> list[ImageVerdict]:
    """Check every image and its YOLO label file exactly as Ultralytics' detection dataset does.

    Args:
        images: The split's image files, in Ultralytics' order.
        num_classes: The dataset's class count (``len(names)``).
        single_cls: Ultralytics' ``single_cls`` setting (every class id counts as 0).

    Returns:
        One :class:`ImageVerdict` per image, in order.
    """
    from ultralytics.data.utils import img2label_paths, verify_image_label

    label_files = img2label_paths([str(p) for p in images])
    jobs = [(str(image), label, "", False, num_classes, 0, 0, single_cls) for image, label in zip(images, label_files)]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # as Ultralytics' scan: I/O bound
        results = list(pool.map(verify_image_label, jobs))
    verdicts = []
    for image, result in zip(images, results):
        im_file, labels, shape, message = result[0], result[1], result[2], result[-1]
        kept = im_file is not None
        verdicts.append(
            ImageVerdict(
                image=image,
                kept=kept,
                labels=np.asarray(labels, dtype=np.float64).reshape(-1, 5) if kept else np.zeros((0, 5)),
                shape=(int(shape[0]), int(shape[1])) if kept else None,
                message=_reason(message, str(image)) if message else "",
            )
        )
    return verdicts


def evaluated_images(validator) -> list[Path]:
    """The images an Ultralytics validator ran the model on (its dataset after its own checks), in order."""
    return [Path(f) for f in validator.dataloader.dataset.im_files]
