"""Generate the offline sample dataset: synthetic shapes on photo backgrounds, in YOLO, VOC and COCO formats.

Usage:
    attnyolo make_sample_data
    attnyolo make_sample_data out=/tmp/sample seed=1 n_train=40 n_val=10 imgsz=160 video=false
Keys: out (data/sample), seed (0), n_train, n_val, imgsz (longer image side), video (true: also write sample.mp4).
The same seed and sizes give byte-identical labels and annotations. Prints the data.yaml path and a summary.
"""

import json

from ..data.sample import (
    DEFAULT_IMGSZ,
    DEFAULT_N_TRAIN,
    DEFAULT_N_VAL,
    VIDEO_NAME,
    count_video_frames,
    make_sample_dataset,
)
from ..utils.cli import fail, parse_kv_args

DEFAULTS = {
    "out": None,  # data/sample under the working directory (attnyolo.utils.paths.sample_data_dir)
    "seed": 0,
    "n_train": DEFAULT_N_TRAIN,
    "n_val": DEFAULT_N_VAL,
    "imgsz": DEFAULT_IMGSZ,
    "video": True,
}


def main(argv):
    """Generate the dataset and print where it is and what it holds."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    for key in ("seed", "n_train", "n_val", "imgsz"):
        if not isinstance(args[key], int) or isinstance(args[key], bool):
            fail(f"{key}={args[key]!r} must be an integer.")
    try:
        data_yaml = make_sample_dataset(
            None if args["out"] is None else str(args["out"]),
            args["n_train"],
            args["n_val"],
            args["imgsz"],
            args["seed"],
            bool(args["video"]),
        )
    except ValueError as error:
        fail(str(error))  # a bad count or size is a usage error: exit 2
    root = data_yaml.parent
    for split in ("train", "val"):
        coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text(encoding="utf-8"))
        difficult = sum(a["difficult"] for a in coco["annotations"])
        print(f"{split}: {len(coco['images'])} images, {len(coco['annotations'])} objects ({difficult} difficult)")
    if args["video"]:
        print(f"video: {root / VIDEO_NAME}, {count_video_frames(root / VIDEO_NAME)} frames")
    print(f"data: {data_yaml}")
    return 0
