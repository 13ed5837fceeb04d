"""Compare attention layers for speed and size, in one interleaved run.

Two tables: models (params, GFLOPs, latency, throughput, overhead against the baseline measured in the same run)
and layer kernels (each layer's forward against a plain implementation of its equations).

Usage:
    attnyolo benchmark                                   # yolov8n baseline + every kind, in table order
    attnyolo benchmark models=yolo11s.yaml,yolo11s-CoordAtt.yaml,yolo11s-ELA-S.yaml imgsz=640 device=cpu
    attnyolo benchmark family=yolov5s repeats=50 threads=1
    attnyolo benchmark models=none layers=True           # layer kernels only
    attnyolo benchmark device=0                          # CUDA (timings synchronised)
Keys: models (comma list; none: no models; default: <family>.yaml and <family>-<kind>.yaml), family, kinds (comma
list of attention kinds for the default models and the layer benchmark; default all), imgsz, device,
batch (larger batch for throughput; 1 skips it), repeats, warmup, baseline (default: the first model without
attention), fuse, channels_last (memory order of models and layer inputs; default: what Ultralytics' predictor uses
here, channels-last on x86 CPUs), threads (torch CPU threads; default torch's choice), layers (also time the layer
kernels), layer_repeats, layer_batch, project, name, exist_ok.
Writes models.md/.csv/.png, layers.md/.csv/.png and benchmark.json into project/name (default runs/benchmark/exp).
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

import torch

from ..analysis.layers import benchmark_layers, format_layer_table
from ..analysis.models import DEFAULT_FAMILY, benchmark_models, default_models, format_model_table
from ..analysis.report import write_results
from ..evaluation.report import run_directory
from ..layers.registry import kinds_arg
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, parse_kv_args
from ..utils.paths import runs_dir

DEFAULTS = {
    "models": "default",
    "family": DEFAULT_FAMILY,
    "kinds": None,
    "imgsz": 640,
    "device": "cpu",
    "batch": 8,
    "repeats": 20,
    "warmup": 2,
    "baseline": None,
    "fuse": True,
    "channels_last": None,
    "threads": None,
    "layers": True,
    "layer_repeats": 100,
    "layer_batch": 1,
    "project": None,
    "name": "exp",
    "exist_ok": False,
    TRUST_KEY: False,
}


def _model_list(value, family, kinds):
    """models= as a list: 'default' -> the family's list, none (parsed as None) -> [], 'a.yaml,b.yaml' -> both."""
    if value == "default":
        return default_models(family, kinds)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [m.strip() for m in str(value).split(",") if m.strip()]


def main(argv):
    """Parse key=value arguments, run the benchmarks, print Markdown tables and write the result files."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    apply_trust_checkpoint(args)
    if args["threads"]:
        torch.set_num_threads(int(args["threads"]))
    kinds = kinds_arg(args["kinds"])
    models = _model_list(args["models"], args["family"], kinds)
    if not models and not args["layers"]:
        raise ValueError("nothing to do: models=none and layers=False. Give models= or layers=True.")
    model_result = layer_result = None
    if models:
        print(f"benchmarking {len(models)} models at {args['imgsz']} on {args['device']} ...", flush=True)
        model_result = benchmark_models(
            models,
            imgsz=args["imgsz"],
            device=args["device"],
            batch=args["batch"],
            repeats=args["repeats"],
            warmup=args["warmup"],
            baseline=args["baseline"],
            fuse=args["fuse"],
            channels_last=args["channels_last"],
        )
        print(format_model_table(model_result), end="\n\n")
    if args["layers"]:
        print("benchmarking layer kernels ...", flush=True)
        layer_result = benchmark_layers(
            kinds,
            batch=args["layer_batch"],
            repeats=args["layer_repeats"],
            device=args["device"],
            channels_last=args["channels_last"],
        )
        print(format_layer_table(layer_result), end="\n\n")
    out = run_directory(args["project"] or runs_dir("benchmark"), args["name"], args["exist_ok"])
    for path in write_results(out, model_result, layer_result).values():
        print(f"wrote {path}")
    return 0
