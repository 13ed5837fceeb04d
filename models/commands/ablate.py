"""Ablation: several models, one recipe, one seed, one dataset, compared in one table and one figure.

Each model is trained, then scored with pycocotools and the VOC devkit; the tool writes the comparison: a Markdown/CSV
table (AP, AP50, AP75, APs/m/l, VOC mAP50, params, GFLOPs, latency) and a figure of AP against parameters and latency.
Running the same command again continues an interrupted ablation.

Usage:
    attnyolo ablate                                        # yolov8n + every attention kind, sample data
    attnyolo ablate models=yolov8n.yaml,yolov8n-CoordAtt.yaml,yolov8n-ELA-S.yaml epochs=30
    attnyolo ablate family=yolo11n data=data/VOC.yaml epochs=100 imgsz=640 batch=32 device=0 name=voc
Keys: models (comma list; default: <family>.yaml and <family>-<kind>.yaml for each kind), family, kinds (comma list;
default: every kind), data (default:
the sample dataset), project, name (the ablation directory project/name; reuse it to continue), latency_repeats
(0 skips the latency column), plus every Ultralytics training setting, shared by all runs (epochs, imgsz, batch,
seed, device, workers, lr0, ...). Defaults: seed=0 deterministic=True plots=False, and on the sample dataset the
recipe `attnyolo train` uses there (epochs=15 imgsz=160 ...); on other data, Ultralytics' defaults.
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from pathlib import Path

from ..analysis.ablation import run_ablation
from ..analysis.models import DEFAULT_FAMILY, default_models
from ..layers.registry import kinds_arg
from ..utils.cli import (
    TRUST_KEY,
    apply_trust_checkpoint,
    check_run_settings,
    parse_kv_args,
    ultralytics_keys,
)
from ..utils.paths import runs_dir

DEFAULTS = {
    "models": None,
    "family": DEFAULT_FAMILY,
    "kinds": None,
    "data": None,
    "project": None,
    "name": "exp",
    "latency_repeats": 20,
    TRUST_KEY: False,
}


def main(argv):
    """Parse key=value arguments, run (or continue) the ablation, print the table and the files written."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys() - {"model", "resume", "exist_ok"})
    apply_trust_checkpoint(args)
    check_run_settings(args, "train")
    models = args.pop("models")
    family, kinds = args.pop("family"), kinds_arg(args.pop("kinds"))
    if models is None:
        models = default_models(family, kinds)
    elif isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    out = Path(args.pop("project") or runs_dir("ablate")) / str(args.pop("name"))
    result = run_ablation(
        models, data=args.pop("data"), out_dir=out, latency_repeats=args.pop("latency_repeats"), **args
    )
    print()
    print(Path(result["files"]["md"]).read_text(encoding="utf-8"))
    for path in result["files"].values():
        print(f"wrote {path}")
    return 0
