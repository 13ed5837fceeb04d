"""Build any shipped (or Ultralytics) model YAML at any scale and print its summary and attention placements.

Usage:
    attnyolo model_info model=yolov5s_Coordinate_attention.yaml
    attnyolo model_info model=yolo11m-ELA-S.yaml imgsz=640
    attnyolo model_info table=yolov8 scales=ns      # Markdown table: the family's baseline and every kind
    attnyolo model_info table=zoo                   # the whole zoo (docs/zoo.md): every family, scale and kind
    attnyolo model_info table=layers                # the table of attention kinds (docs/layers.md)
Keys: model, imgsz (GFLOPs input size, default 640), table (zoo, layers, yolox, or a family: yolov5 (YOLOv5u),
yolov5-classic (anchor-based YOLOv5), yolov8, yolo11), scales (for families; default nsmlx).
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from ..analysis.summary import model_summary, zoo_markdown, zoo_names
from ..integration.names import SCALED_FAMILIES
from ..layers.registry import kinds_markdown
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, fail, parse_kv_args

DEFAULTS = {"model": None, "imgsz": 640, "table": None, "scales": "nsmlx", TRUST_KEY: False}
TABLES = ("zoo", "layers", "yolox", *SCALED_FAMILIES)


def main(argv):
    """Print one model's summary, or a Markdown table (the zoo, one family, or the kinds)."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    apply_trust_checkpoint(args)
    table = args["table"]
    if table is not None:
        if table not in TABLES:
            fail(f"table={table!r} is not one of {', '.join(TABLES)}.")
        if table == "layers":
            print(kinds_markdown())
            return 0
        families = tuple(SCALED_FAMILIES) if table == "zoo" else () if table == "yolox" else (table,)
        names = zoo_names(families, str(args["scales"]), yolox=table in {"zoo", "yolox"})
        for line in zoo_markdown(names, args["imgsz"]):
            print(line, flush=True)
        return 0
    if not args["model"]:
        fail("give model=<yaml or .pt>, e.g. model=yolov8n-CoordAtt.yaml, or table=yolov8. Run with 'help'.")
    s = model_summary(args["model"], args["imgsz"])
    print(f"{s['model']}: {s['layers']} layers, {s['params']:,} parameters, {s['gflops']:.2f} GFLOPs at {s['imgsz']}")
    for a in s["attention"]:
        print(f"  row {a['row']:>3}  {a['level']:<3} {a['layer']:<16} {a['channels']} channels")
    if not s["attention"]:
        print("  no attention layers")
    return 0
