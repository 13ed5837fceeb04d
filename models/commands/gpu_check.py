"""Check the CUDA and mixed-precision paths on a GPU: precision, AMP training, predict/export, timing, in one run.

Usage:
    attnyolo gpu_check                       # CUDA device 0; writes runs/gpu_check/gpu_check.json and .md
    attnyolo gpu_check device=cpu out=/tmp/dry   # the same steps at a tiny size on the CPU: a dry run of the code
    attnyolo gpu_check steps=precision,timing kinds=CoordAtt,ELA-S
Keys: device (0, cuda:1, or cpu for the dry run), out (output folder), steps (comma list of precision, training,
deployment, timing; deployment needs training), kinds (attention kinds of the precision step; default all).
Exits 0 when every check passed, 1 when one failed (each named in the summary) or no CUDA device is present.
What it needs, and the wheels a bare GPU machine lacks: docs/gpu.md.
"""

import torch

from ..analysis.gpu_check import missing_requirements, run_gpu_check
from ..layers.registry import kinds_arg
from ..utils.cli import EXIT_FAILURE, fail, parse_kv_args

STEPS = ("precision", "training", "deployment", "timing")
DEFAULTS = {"device": "0", "out": "runs/gpu_check", "steps": ",".join(STEPS), "kinds": None}


def main(argv):
    """Parse key=value arguments, run the check, print the summary; exit 1 on a failed check or without CUDA."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    missing = missing_requirements()
    if missing:
        fail(
            f"the GPU check needs {', '.join(missing)}; none can be installed offline here. Fix: docs/gpu.md lists "
            "the wheels to carry and the pip command.",
            EXIT_FAILURE,
        )
    device = str(args["device"]).strip().lower()
    if device != "cpu" and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        fail(
            f"no CUDA device: torch {torch.__version__} ({built}) sees none, so the GPU check cannot run (device="
            f"{args['device']}). Fix: run it on a GPU machine, or device=cpu for the dry run.",
            EXIT_FAILURE,
        )
    given = args["steps"] if isinstance(args["steps"], (list, tuple)) else str(args["steps"]).split(",")
    steps = [str(s).strip() for s in given if str(s).strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise ValueError(f"steps={args['steps']!r}: {', '.join(unknown) or 'empty'}; choose from {', '.join(STEPS)}.")
    report = run_gpu_check(device=device, out=args["out"], kinds=kinds_arg(args["kinds"]), steps=steps)
    print(f"{'every check passed' if report['ok'] else 'FAILED: ' + '; '.join(report['failures'])}")
    print(f"results: {report['out']}/gpu_check.json and gpu_check.md ({report['seconds']:.0f} s)")
    return 0 if report["ok"] else EXIT_FAILURE
