"""Convert a PASCAL VOCdevkit or COCO folder into Ultralytics' YOLO layout, keeping the original annotations.

Usage:
    attnyolo convert source=downloads/VOCdevkit out=datasets/VOC
    attnyolo convert source=downloads/coco out=datasets/coco
Keys: source (a VOCdevkit folder with VOC2007 and/or VOC2012, or a COCO folder with annotations/instances_*.json),
out (output folder). VOC: train = VOC2007+2012 trainval, val = VOC2007 test; difficult objects stay in the labels and
the XML stays available (voc_annotations) so the VOC evaluator can ignore them as the devkit does. COCO: the
instances JSON stays available (coco_annotations). Images are symlinked (copied where links are not allowed).
"""

from pathlib import Path

from ..data.convert import convert_dataset, detect_format
from ..utils.cli import fail, parse_kv_args

DEFAULTS = {"source": None, "out": None}


def main(argv):
    """Convert ``source`` into ``out`` and print the data.yaml path."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    if not args["source"] or not args["out"]:
        fail("give source=<VOCdevkit or COCO folder> and out=<output folder>. Run with 'help' for usage.")
    source, out = Path(str(args["source"])), Path(str(args["out"]))
    try:
        kind = detect_format(source)
    except (FileNotFoundError, ValueError) as error:
        fail(" ".join(str(error).split()))  # a wrong source folder is a usage error: exit 2
    print(f"{source}: {kind.upper()} layout")
    print(f"data: {convert_dataset(source, out)}")
    return 0
