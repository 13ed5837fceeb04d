"""Ablation: several models x seeds, one recipe, one dataset; statistics, cost and figures in one report.

Each model is trained once per seed, then scored with pycocotools and the VOC devkit. The report says, per model, the
mean, sd and 95% interval over seeds of every metric; against the baseline, the paired per-seed difference (t interval,
paired t-test) and a test-set bootstrap of the AP difference, each with a verdict; and the cost (params, GFLOPs,
latency measured once, interleaved) with the AP gain per added GFLOP and millisecond. Files: ablation.md, ablation.csv,
ablation.json and figures. Running the same command again continues an interrupted ablation; adding seeds or models
trains only the new runs; a finished ablation is reprinted without training.

Usage:
    attnyolo ablate models=yolov8n.yaml,yolov8n-CoordAtt.yaml seeds=3     # does CA help yolov8n, beyond seed noise?
    attnyolo ablate base=yolov8n.yaml kinds=CoordAtt,ELA-S placements=backbone,neck,all seeds=3
    attnyolo ablate family=yolo11n data=data/VOC.yaml epochs=100 imgsz=640 batch=32 device=0 name=voc
    attnyolo ablate models=yolov8n.yaml,yolov8n-CoordAtt.yaml seeds=3 backend=ray address=10.0.0.1:6379 project=/nfs/abl
Keys: models (comma list; default: <family>.yaml and <family>-<kind>.yaml for each kind), family, kinds (comma list;
default: every kind), seeds (a count, 3 = seeds 0,1,2, or a list 0,1,2; default 0), base and placements (base model
and placement names backbone, neck, all: generated variants of base for each kind, docs/tools.md), baseline (default:
the one model without attention), bootstrap (test-set resamples, default 1000; 0 skips), confidence (default 0.95),
backend (local: one run after another here; ray: Ray tasks, several at a time, here or on a cluster, with address,
cpus_per_run, gpus_per_run, max_retries; pip install "attnyolo[ray]"; docs/tools.md), data (default: the sample
dataset), project, name (the ablation directory project/name; reuse it to continue), latency_repeats (0 skips the
latency column), plus every Ultralytics training setting, shared by all runs (epochs, imgsz, batch, device, workers,
lr0, ...). Defaults: deterministic=True plots=False, and on the sample
dataset the recipe `attnyolo train` uses there (epochs=15 imgsz=160 ...); on other data, Ultralytics' defaults.
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from pathlib import Path

from ..analysis.ablation import run_ablation
from ..analysis.ablation_runs import BACKENDS
from ..analysis.models import DEFAULT_FAMILY, default_models
from ..analysis.placements import check_placements
from ..analysis.ray_backend import KEYS as RAY_KEYS
from ..analysis.ray_backend import backend_options
from ..layers.registry import kind_names, kinds_arg
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
    "seeds": None,
    "base": None,
    "placements": None,
    "baseline": None,
    "bootstrap": 1000,
    "confidence": 0.95,
    "backend": "local",
    **dict.fromkeys(RAY_KEYS),
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
    base, placements = args.pop("base"), args.pop("placements")
    if placements is not None:
        placements = check_placements(placements)
        base = base or f"{family}.yaml"
        kinds = kinds if kinds is not None else kind_names()
    if models is None:
        models = [] if placements is not None else default_models(family, kinds)
    elif isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if args["backend"] not in BACKENDS:
        raise ValueError(f"backend={args['backend']} is not one of {', '.join(BACKENDS)}. Fix: backend=local.")
    options = backend_options(args["backend"], {k: args.pop(k) for k in RAY_KEYS})  # Ray missing: one line, now
    out = Path(args.pop("project") or runs_dir("ablate")) / str(args.pop("name"))
    result = run_ablation(
        models,
        data=args.pop("data"),
        out_dir=out,
        seeds=args.pop("seeds"),
        base=base,
        kinds=kinds or (),
        placements=placements or (),
        baseline=args.pop("baseline"),
        backend=args.pop("backend"),
        backend_options=options,
        bootstrap=args.pop("bootstrap"),
        confidence=args.pop("confidence"),
        latency_repeats=args.pop("latency_repeats"),
        **args,
    )
    print()
    print(Path(result["files"]["md"]).read_text(encoding="utf-8"))
    for path in result["files"].values():
        print(f"wrote {path}")
    return 0
