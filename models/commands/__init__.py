"""The ``attnyolo`` command: ``attnyolo <command> key=value ...``; each ``tools/<command>.py`` runs the same code.

Every command parses Ultralytics-style ``key=value`` arguments (unknown keys are rejected with close matches),
prints its result, and exits 0, or 1 with a one-line message for bad input (2 for a malformed command line).
``attnyolo <command> help`` prints a command's keys.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence

from ..utils.cli import EXIT_USAGE, fail, run_tool

# command -> what it does (the module attnyolo.commands.<command> holds its main(argv))
COMMANDS: dict[str, str] = {
    "train": "train a detector from a model YAML, then score best.pt (COCO + VOC)",
    "val": "score a checkpoint or a predictions JSON with pycocotools and the VOC devkit",
    "predict": "run a checkpoint on images, folders, videos, webcams or streams",
    "track": "track objects through videos and streams (BoT-SORT, ByteTrack); MOTChallenge text and JSON",
    "export": "export a checkpoint (ONNX checked against PyTorch)",
    "import_weights": "convert a checkpoint another project wrote (official YOLOX, classic YOLOv5) to ours",
    "convert": "convert a VOCdevkit or COCO folder to the YOLO layout",
    "make_sample_data": "generate the offline sample dataset",
    "model_info": "print a model's size and where its attention layers sit; zoo tables",
    "benchmark": "time models and attention layers in one interleaved run",
    "benchmark_yolox": "time YOLOX-Nano's training step and batched SimOTA",
    "benchmark_track": "time what tracking adds per frame over predict on one video",
    "ablate": "train models x seeds with one recipe; statistics, bootstrap, placements and cost in one report",
    "visualize": "draw attention maps and Grad-CAM for one image",
    "gpu_check": "check the CUDA and mixed-precision paths on a GPU (device=cpu: a dry run)",
}


def usage() -> str:
    """The command list shown by ``attnyolo`` and ``attnyolo help``."""
    width = max(map(len, COMMANDS))
    lines = ["usage: attnyolo <command> key=value ...   (attnyolo <command> help: its keys)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def run(command: str, argv: Sequence[str] | None = None) -> int:
    """Run one command's ``main`` on ``argv`` (default ``sys.argv[1:]``) with the shared error handling."""
    module = importlib.import_module(f"{__name__}.{command}")
    return run_tool(module.main, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``attnyolo`` console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"help", "-h", "--help"}:
        print(usage())
        return 0
    command = argv[0].replace("-", "_")
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        fail(f"unknown command {argv[0]!r}.{hint} Commands: {', '.join(COMMANDS)}.", EXIT_USAGE)
    return run(command, argv[1:])
