"""Time YOLOX-Nano against YOLOv8n per training step, and batched SimOTA against a per-image loop, on this CPU.

Usage:
    attnyolo benchmark_yolox
    attnyolo benchmark_yolox imgsz=416 batch=16 threads=2 repeats=7
Keys: imgsz (320) and batch (8) of the training-step comparison (same synthetic batch for both models); assign_imgsz
(640), assign_batch (16) and max_gt (30) of the assignment comparison; repeats (5; medians are printed); threads
(torch CPU threads; default: torch's choice). Not a test: numbers depend on the machine and its load.
"""

import torch

from ..analysis.yolox import benchmark, format_benchmark
from ..utils.cli import parse_kv_args

DEFAULTS = {
    "imgsz": 320,
    "batch": 8,
    "assign_imgsz": 640,
    "assign_batch": 16,
    "max_gt": 30,
    "repeats": 5,
    "threads": None,
}


def main(argv):
    """Parse key=value arguments, run the benchmark, print the timings and ratios."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    threads = args.pop("threads")
    if threads:
        torch.set_num_threads(int(threads))
    print(format_benchmark(benchmark(**args)))
    return 0
