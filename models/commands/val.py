"""Score a detector on a dataset split with pycocotools (COCO protocol) and the PASCAL VOC devkit protocol.

Usage:
    attnyolo val model=runs/train/exp/weights/best.pt data=data/sample/data.yaml
    attnyolo val model=best.pt data=data/VOC.yaml split=test imgsz=640 batch=32 device=0
    attnyolo val data=data/sample/data.yaml predictions=runs/val/exp/predictions.json
Keys: data, and either model (a trained checkpoint; Ultralytics runs it with save_json=True, conf=0.001) or
predictions (a COCO results JSON, e.g. Ultralytics' predictions.json; no model is run). Also project (runs/val),
name (exp; numbered like Ultralytics: exp, exp-2, ...), exist_ok, split (val), and with model= every Ultralytics val
setting (imgsz, batch, device, workers, conf, iou, half, ...). The run directory receives predictions.json and
metrics.json. VOC numbers appear when the data YAML has voc_annotations (or XML files next to the images).
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from ..evaluation.report import DEFAULT_NAME, format_metrics_table, run_directory
from ..evaluation.validator import score_predictions_file, validate_model
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, check_run_settings, fail, parse_kv_args, ultralytics_keys

DEFAULTS = {
    "model": None,
    "data": None,
    "predictions": None,
    "project": None,
    "name": DEFAULT_NAME,
    "exist_ok": False,
    "split": "val",
    TRUST_KEY: False,
}


def main(argv):
    """Parse key=value arguments, score the model or the predictions file, print the table and where it went."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys())
    apply_trust_checkpoint(args)
    check_run_settings(args, "val")
    model, data, predictions = args.pop("model"), args.pop("data"), args.pop("predictions")
    if data is None:
        fail("data= is required, e.g. data=data/sample/data.yaml. Run with 'help' for usage.")
    if (model is None) == (predictions is None):
        fail("give either model=<checkpoint.pt> or predictions=<results.json>, not both or neither.")
    if predictions is not None:
        extra = sorted(k for k, v in args.items() if k not in DEFAULTS and v is not None)
        if extra:
            fail(f"with predictions= no model is run, so these keys do not apply: {', '.join(extra)}.")
        out_dir = run_directory(args["project"], args["name"], args["exist_ok"])
        metrics, run_dir = score_predictions_file(data, predictions, out_dir, split=args["split"])
    else:
        settings = {k: v for k, v in args.items() if v is not None}
        metrics, run_dir = validate_model(model, data, **settings)
    print(format_metrics_table(metrics))
    print(f"run directory: {run_dir}")
    print(f"metrics: {run_dir / 'metrics.json'}")
    return 0
