"""Ablation: several models, one recipe, one seed, one dataset, compared in one table and one figure.

Each model is trained, then scored with pycocotools and the VOC devkit; the tool writes the comparison: a Markdown/CSV
table (AP, AP50, AP75, APs/m/l, VOC mAP50, params, GFLOPs, latency) and a figure of AP against parameters and latency.
Running the same command again continues an interrupted ablation.

Usage:
    python tools/ablate.py                                        # yolov8n + every attention kind, sample data
    python tools/ablate.py models=yolov8n.yaml,yolov8n-CoordAtt.yaml,yolov8n-ELA-S.yaml epochs=30
    python tools/ablate.py family=yolo11n data=data/VOC.yaml epochs=100 imgsz=640 batch=32 device=0 name=voc
Keys: models (comma list; default: <family>.yaml and <family>-<kind>.yaml for every kind), family, data (default:
the sample dataset), project, name (the ablation directory project/name; reuse it to continue), latency_repeats
(0 skips the latency column), plus every Ultralytics training setting, shared by all runs (epochs, imgsz, batch,
seed, device, workers, lr0, ...). Defaults: seed=0 deterministic=True plots=False, and on the sample dataset the
recipe tools/train.py uses there (epochs=15 imgsz=160 ...); on other data, Ultralytics' defaults.
"""

import sys
from pathlib import Path

import attnyolo  # noqa: F401  (registers the layers before anything builds a model)
from attnyolo.ablation import DEFAULT_PROJECT, run_ablation
from attnyolo.benchmark import DEFAULT_FAMILY, default_models
from attnyolo.cli import parse_kv_args, run_tool, ultralytics_keys

DEFAULTS = {
    "models": None,
    "family": DEFAULT_FAMILY,
    "data": None,
    "project": str(DEFAULT_PROJECT),
    "name": "exp",
    "latency_repeats": 20,
}


def main(argv):
    """Parse key=value arguments, run (or continue) the ablation, print the table and the files written."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys() - {"model", "resume", "exist_ok"})
    models = args.pop("models")
    family = args.pop("family")
    if models is None:
        models = default_models(family)
    elif isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    out = Path(args.pop("project")) / str(args.pop("name"))
    result = run_ablation(
        models, data=args.pop("data"), out_dir=out, latency_repeats=args.pop("latency_repeats"), **args
    )
    print()
    print(Path(result["files"]["md"]).read_text(encoding="utf-8"))
    for path in result["files"].values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
