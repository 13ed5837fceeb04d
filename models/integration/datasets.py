"""Dataset facts AttnYOLO takes from the installed Ultralytics rather than restating them.

* :func:`coco_class_names`: the 80 COCO class names in the order of Ultralytics' ``cfg/datasets/coco.yaml`` (class
  index = position in COCO's list of 80 categories), which checkpoints converted from other projects' COCO models
  carry so that every tool prints and saves the same names as Ultralytics' own COCO models.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

COCO_NUM_CLASSES = 80


@functools.cache
def coco_class_names() -> dict[int, str]:
    """The COCO class names of Ultralytics' ``coco.yaml``: ``{0: "person", 1: "bicycle", ..., 79: "toothbrush"}``.

    Raises:
        FileNotFoundError: The installed Ultralytics ships no ``cfg/datasets/coco.yaml``.
        ValueError: The file does not list exactly 80 names.
    """
    import ultralytics

    path = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml"
    names = yaml.safe_load(path.read_text(encoding="utf-8")).get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or sorted(names) != list(range(COCO_NUM_CLASSES)):
        raise ValueError(f"{path} does not list {COCO_NUM_CLASSES} class names under 'names'.")
    return {int(k): str(v) for k, v in names.items()}
