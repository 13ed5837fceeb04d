"""Train a detector from any shipped YAML, then score it with pycocotools and the VOC protocol.

Usage:
    attnyolo train                                  # CoordAtt YOLOv8n, offline sample dataset, CPU
    attnyolo train model=yolov5s_Coordinate_attention.yaml data=data/VOC.yaml epochs=100 device=0
    attnyolo train model=yolov8n-ELA-T.yaml pretrained=yolov8n.pt   # row-aligned weight transfer
    attnyolo train resume=True                      # continue the newest interrupted run
    attnyolo train model=yolox-s.yaml data=data/coco.yaml recipe=yolox device=0   # YOLOX's own schedule
    attnyolo train model=yolox-s-ELA-S.yaml pretrained=yolox_s.pth   # official YOLOX weights, converted first
    attnyolo train model=best.pt data=my.yaml       # fine-tune a checkpoint of ultralytics/yolov5 or a fork
Keys: model, data, pretrained, resume, evaluate, recipe (ultralytics: the default; yolox or yolox-0.3.0: YOLOX's
SGD, schedule, EMA and multi-scale, YOLOX models only), plus every Ultralytics training setting (epochs, imgsz,
batch, device, workers, project, name, seed, lr0, ...). With no data=, the sample dataset is generated on first use.
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
Classic YOLOv5 models (yolov5s-classic.yaml, yolov5s_Coordinate_attention.yaml, a YOLOv5 best.pt) train with
YOLOv5's hyp.scratch-low for every key you leave out, and also take YOLOv5's loss keys obj, obj_pw,
cls_pos_weight, anchor_t, fl_gamma, label_smoothing and autoanchor (true/false).
"""

from ..engine.trainer import DEFAULT_MODEL, train
from ..evaluation.report import format_metrics_table
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, check_run_settings, parse_kv_args, ultralytics_keys
from ..yolov5.recipe import LOSS_KEYS

DEFAULTS = {
    "model": DEFAULT_MODEL,
    "data": None,
    "pretrained": None,
    "resume": False,
    "evaluate": True,
    "recipe": "ultralytics",
    TRUST_KEY: False,
}


def main(argv):
    """Parse key=value arguments, train, evaluate, print the AP table and the run directory."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys() | set(LOSS_KEYS))
    apply_trust_checkpoint(args)
    check_run_settings(args, "train")
    metrics, run_dir, transfer = train(**args)
    if transfer is not None:
        print(f"pretrained {args['pretrained']}: {transfer.summary()}")
    if metrics is not None:
        print(format_metrics_table(metrics))
        print(f"metrics: {run_dir / 'metrics.json'}")
    print(f"run directory: {run_dir}")
    return 0
