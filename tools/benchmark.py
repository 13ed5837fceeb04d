"""Compare attention layers for speed and size, in one interleaved run.

Two tables: models (params, GFLOPs, latency, throughput, overhead against the baseline measured in the same run)
and layer kernels (each layer's forward against a plain implementation of its equations).

Usage:
    python tools/benchmark.py                                   # yolov8n baseline + SE, CBAM, ECA, CA, ELA-T/B/S/L
    python tools/benchmark.py models=yolo11s.yaml,yolo11s-CoordAtt.yaml,yolo11s-ELA-S.yaml imgsz=640 device=cpu
    python tools/benchmark.py family=yolov5s repeats=50 threads=1
    python tools/benchmark.py models=none layers=True           # layer kernels only
    python tools/benchmark.py device=0                          # CUDA (timings synchronised)
Keys: models (comma list; none: no models; default: <family>.yaml and <family>-<kind>.yaml), family, imgsz, device,
batch (larger batch for throughput; 1 skips it), repeats, warmup, baseline (default: the first model without
attention), fuse, channels_last (memory order of models and layer inputs; default: what Ultralytics' predictor uses
here, channels-last on x86 CPUs), threads (torch CPU threads; default torch's choice), layers (also time the layer
kernels), layer_repeats, layer_batch, project, name, exist_ok.
Writes models.md/.csv/.png, layers.md/.csv/.png and benchmark.json into project/name (default runs/benchmark/exp).
"""

import sys

import attnyolo  # noqa: F401  (registers the layers before anything builds a model)
from attnyolo.benchmark import (
    DEFAULT_FAMILY,
    DEFAULT_PROJECT,
    benchmark_layers,
    benchmark_models,
    default_models,
    format_layer_table,
    format_model_table,
    write_results,
)
from attnyolo.cli import parse_kv_args, run_tool
from attnyolo.evaluation.dataset import run_directory

DEFAULTS = {
    "models": "default",
    "family": DEFAULT_FAMILY,
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
    "project": str(DEFAULT_PROJECT),
    "name": "exp",
    "exist_ok": False,
}


def _model_list(value, family):
    """models= as a list: 'default' -> the family's list, none (parsed as None) -> [], 'a.yaml,b.yaml' -> both."""
    if value == "default":
        return default_models(family)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [m.strip() for m in str(value).split(",") if m.strip()]


def main(argv):
    """Parse key=value arguments, run the benchmarks, print Markdown tables and write the result files."""
    import torch

    args = parse_kv_args(argv, DEFAULTS, __doc__)
    if args["threads"]:
        torch.set_num_threads(int(args["threads"]))
    models = _model_list(args["models"], args["family"])
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
            batch=args["layer_batch"],
            repeats=args["layer_repeats"],
            device=args["device"],
            channels_last=args["channels_last"],
        )
        print(format_layer_table(layer_result), end="\n\n")
    out = run_directory(args["project"], args["name"], args["exist_ok"])
    for path in write_results(out, model_result, layer_result).values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
