"""Train a detector from any shipped YAML, then score it with pycocotools and the VOC protocol.

Usage:
    python tools/train.py                                  # CoordAtt YOLOv8n, offline sample dataset, CPU
    python tools/train.py model=yolov5s_Coordinate_attention.yaml data=data/VOC.yaml epochs=100 device=0
    python tools/train.py model=yolov8n-ELA-T.yaml pretrained=yolov8n.pt   # row-aligned weight transfer
    python tools/train.py resume=True                      # continue the newest interrupted run
Keys: model, data, pretrained, resume, evaluate, plus every Ultralytics training setting (epochs, imgsz, batch,
device, workers, project, name, seed, lr0, ...). With no data=, the sample dataset is generated on first use.
"""

import sys

import attnyolo  # noqa: F401  (registers the layers before anything builds a model)
from attnyolo.cli import parse_kv_args, run_tool, ultralytics_keys
from attnyolo.evaluation.dataset import format_metrics_table
from attnyolo.training import DEFAULT_MODEL, train

DEFAULTS = {"model": DEFAULT_MODEL, "data": None, "pretrained": None, "resume": False, "evaluate": True}


def main(argv):
    """Parse key=value arguments, train, evaluate, print the AP table and the run directory."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys())
    metrics, run_dir, transfer = train(**args)
    if transfer is not None:
        print(f"pretrained {args['pretrained']}: {transfer.summary()}")
    if metrics is not None:
        print(format_metrics_table(metrics))
        print(f"metrics: {run_dir / 'metrics.json'}")
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
