"""Dataset facts AttnYOLO takes from the installed Ultralytics rather than restating them.

* :func:`coco_class_names`: the 80 COCO class names in the order of Ultralytics' ``cfg/datasets/coco.yaml`` (class
  index = position in COCO's list of 80 categories), which checkpoints converted from other projects' COCO models
  carry so that every tool prints and saves the same names as Ultralytics' own COCO models.
* :func:`image_verdicts` and :func:`evaluated_images`: what Ultralytics' validator makes of a dataset split, which
  images it evaluates and with which labels. Ultralytics builds its detection dataset by passing every image and its
  label file through ``ultralytics.data.utils.verify_image_label``: an unreadable image, or a label file with one bad
  line (a class id outside the dataset's classes, a row without 5 values, coordinates outside [0, 1] beyond its 1%
  tolerance), drops the whole image; duplicate rows are removed; anything else is kept as written. AttnYOLO's
  evaluator asks the same function, so its ground truth covers the images the model is run on, with the same labels,
  and reads back the images the validator did evaluate (:func:`label_file` says where a label file lives).
* :func:`training_labels`: the label sizes of a trainer's training set, for classic YOLOv5's AutoAnchor.
* :func:`predictor_frame_counts`: how many frames the videos or streams a predictor reads have.

Each reads an Ultralytics data structure; :mod:`attnyolo.integration.version` checks their layout by behaviour
(the ``validator_dataset``, ``dataset_layout`` and ``stream_frames`` self-checks).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ultralytics
import yaml
from ultralytics.data.utils import img2label_paths, verify_image_label

COCO_NUM_CLASSES = 80


@functools.cache
def coco_class_names() -> dict[int, str]:
    """The COCO class names of Ultralytics' ``coco.yaml``: ``{0: "person", 1: "bicycle", ..., 79: "toothbrush"}``.

    Raises:
        FileNotFoundError: The installed Ultralytics ships no ``cfg/datasets/coco.yaml``.
        ValueError: The file does not list exactly 80 names.
    """
    path = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml"
    names = yaml.safe_load(path.read_text(encoding="utf-8")).get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or sorted(names) != list(range(COCO_NUM_CLASSES)):
        raise ValueError(f"{path} does not list {COCO_NUM_CLASSES} class names under 'names'.")
    return {int(k): str(v) for k, v in names.items()}


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


def label_file(image: str | Path) -> Path:
    """The YOLO label file Ultralytics reads for ``image`` (``.../images/x.jpg`` -> ``.../labels/x.txt``)."""
    return Path(img2label_paths([str(image)])[0])


def image_verdicts(images: list[Path], num_classes: int, single_cls: bool = False) -> list[ImageVerdict]:
    """Check every image and its YOLO label file exactly as Ultralytics' detection dataset does.

    Args:
        images: The split's image files, in Ultralytics' order.
        num_classes: The dataset's class count (``len(names)``).
        single_cls: Ultralytics' ``single_cls`` setting (every class id counts as 0).

    Returns:
        One :class:`ImageVerdict` per image, in order.
    """
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


def training_labels(trainer) -> list[dict]:
    """The labels of an Ultralytics trainer's training set: per image ``shape`` (h, w) and ``bboxes`` (m, 4).

    ``bboxes`` are normalised ``x y w h``, as Ultralytics' detection dataset stores them after its checks (its
    ``dataset.labels``, read once the dataloaders exist).
    """
    return [
        {"shape": tuple(int(v) for v in label["shape"][:2]), "bboxes": np.asarray(label["bboxes"]).reshape(-1, 4)}
        for label in trainer.train_loader.dataset.labels
    ]


def predictor_frame_counts(predictor) -> int | list[float] | None:
    """How many frames what an Ultralytics predictor reads has, from its data loader.

    Returns:
        For images and video files (``LoadImagesAndVideos``) the frame count of the current video (an int); for
        cameras and streams (``LoadStreams``) one count per source, ``inf`` for a live source; None before the
        predictor has a loader, or for other loaders.
    """
    return getattr(getattr(predictor, "dataset", None), "frames", None)
