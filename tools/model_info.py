"""Build any shipped (or Ultralytics) model YAML at any scale and print its summary and attention placements.

Usage:
    python tools/model_info.py model=yolov5s_Coordinate_attention.yaml
    python tools/model_info.py model=yolo11m-ELA-S.yaml imgsz=640
    python tools/model_info.py table=yolov8 scales=ns      # Markdown table: every attention kind (+ baseline)
Keys: model, imgsz (GFLOPs input size, default 640), table (a family: yolov5, yolov8, yolo11), scales.
"""

import sys

import attnyolo  # noqa: F401  (registers the layers)
from attnyolo.cli import fail, parse_kv_args, run_tool
from attnyolo.registration import KINDS
from attnyolo.summary import model_summary

DEFAULTS = {"model": None, "imgsz": 640, "table": None, "scales": "nsmlx"}


def main(argv):
    """Print one model's summary, or a table of every attention kind of one family."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    if args["table"]:
        family, scales = args["table"], str(args["scales"])
        print(f"| model | params | GFLOPs@{args['imgsz']} |\n|---|---|---|")
        for scale in scales:
            for kind in ("", *KINDS):
                name = f"{family}{scale}{'-' + kind if kind else ''}.yaml"
                s = model_summary(name, args["imgsz"])
                print(f"| {name} | {s['params'] / 1e6:.3f}M | {s['gflops']:.2f} |")
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


if __name__ == "__main__":
    sys.exit(run_tool(main))
