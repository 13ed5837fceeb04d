"""Helpers of the classic YOLOv5 tests: the files the real ultralytics/yolov5 code wrote, and a writer of
YOLOv5-format checkpoints for versions no fixture covers."""

import copy
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yolov5"


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def fixture_npz(name: str):
    return np.load(FIXTURES / name)


def load_classic(name: str, entry: str | None = None):
    """(AttnYOLO model, report) of a fixture checkpoint; ``entry`` picks 'model' or 'ema' (default as YOLOv5 picks)."""
    from attnyolo.yolov5 import checkpoint

    path = FIXTURES / name
    raw = checkpoint.read_classic(path)
    src = raw[entry] if entry else (raw.get("ema") or raw.get("model"))
    return checkpoint.rebuild(src, path)


def classic_names():
    """Our classes -> the YOLOv5 class paths their pickles use."""
    from ultralytics.nn.modules import C3, SPP, SPPF, Bottleneck, BottleneckCSP, Concat, Conv, Focus
    from ultralytics.nn.tasks import DetectionModel

    from attnyolo.layers.coord_attention import CoordAtt
    from attnyolo.yolov5.head import YOLOv5Detect

    return {
        DetectionModel: "models.yolo.DetectionModel",
        YOLOv5Detect: "models.yolo.Detect",
        Conv: "models.common.Conv",
        C3: "models.common.C3",
        Bottleneck: "models.common.Bottleneck",
        BottleneckCSP: "models.common.BottleneckCSP",
        SPPF: "models.common.SPPF",
        SPP: "models.common.SPP",
        Focus: "models.common.Focus",
        Concat: "models.common.Concat",
        CoordAtt: "models.common.CoordAtt",
    }


def write_classic_checkpoint(
    model, path: Path, yaml: dict, names=None, model_class="DetectionModel", v5_0=False, extra=None
):
    """Save ``model`` the way YOLOv5's train.py + strip_optimizer do: a dict whose ``model`` pickles YOLOv5 classes.

    Each module's class is swapped for a code-free class registered, only while saving, under the YOLOv5 path
    (``models.common.Conv``, ``models.yolo.Detect``, ...), so the pickle names exactly the globals a real file names.
    ``model_class="Model"`` writes v6.1-and-older files; ``v5_0`` adds v5.0's ``anchor_grid`` buffer; ``extra``
    adds entries to the checkpoint dict.
    """
    mapping = dict(classic_names())
    mapping[next(k for k, v in mapping.items() if v == "models.yolo.DetectionModel")] = f"models.yolo.{model_class}"
    packages = {n: types.ModuleType(n) for n in ("models", "models.yolo", "models.common")}
    made = {}
    m = copy.deepcopy(model).half()
    head = m.model[-1]
    if v5_0:
        head._buffers["anchor_grid"] = (head.anchors * head.stride.view(-1, 1, 1)).view(head.nl, 1, -1, 1, 1, 2)
    m.yaml = {**yaml, "ch": 3}
    m.names = names if names is not None else [str(i) for i in range(head.nc)]
    for module in m.modules():
        target = mapping.get(type(module))
        if target is None:
            continue
        if target not in made:
            package, _, name = target.rpartition(".")
            made[target] = type(name, (nn.Module,), {"__module__": package})
            setattr(packages[package], name, made[target])
        module.__class__ = made[target]
    saved = dict(sys.modules)
    sys.modules.update(packages)
    try:
        torch.save(
            {"epoch": -1, "best_fitness": None, "model": m, "ema": None, "updates": None, "optimizer": None}
            | dict(extra or {}),
            path,
        )
    finally:
        for name in packages:
            if name in saved:
                sys.modules[name] = saved[name]
            else:
                sys.modules.pop(name, None)
    return path
