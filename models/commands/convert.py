"""Convert a PASCAL VOCdevkit or COCO folder into Ultralytics' YOLO layout, keeping the original annotations.

Usage:
    attnyolo convert source=downloads/VOCdevkit out=datasets/VOC
    attnyolo convert source=downloads/coco out=datasets/coco
    attnyolo convert source=my_voc_style_data out=datasets/mine names=helmet,head,person
Keys: source (a VOCdevkit folder with VOC2007 and/or VOC2012, a folder in the VOC layout (Annotations, JPEGImages,
ImageSets/Main), or a COCO folder with annotations/instances_*.json), out (output folder), names (VOC layout only:
class names in index order; default PASCAL VOC's 20, or the names the annotations use, sorted). VOC: train =
VOC2007+2012 trainval, val = VOC2007 test; difficult objects stay in the labels and the XML stays available
(voc_annotations) so the VOC evaluator can ignore them as the devkit does. COCO: the instances JSON stays available
(coco_annotations). Images are symlinked (copied where links are not allowed). Boxes that cannot be labels
(inverted, zero-size, outside the image) are counted in a warning with examples.
"""

from pathlib import Path

import yaml

from ..data.convert import convert_dataset, detect_format
from ..utils.cli import fail, parse_kv_args

DEFAULTS = {"source": None, "out": None, "names": None}


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
    data_yaml = convert_dataset(source, out, args["names"])
    names = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))["names"]
    print(f"classes ({len(names)}): {', '.join(str(n) for n in names.values())}")
    print(f"data: {data_yaml}")
    return 0
