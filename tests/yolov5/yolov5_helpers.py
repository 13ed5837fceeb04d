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
    from attnyolo.yolov5.rebuild import rebuild

    path = FIXTURES / name
    raw = checkpoint.read_classic(path)
    src = raw[entry] if entry else (raw.get("ema") or raw.get("model"))
    return rebuild(src, path)


def classic_names():
    """Our classes -> the YOLOv5 class paths their pickles use."""
    from ultralytics.nn.modules import C3, SPP, SPPF, Bottleneck, BottleneckCSP, Concat, Conv, Focus
    from ultralytics.nn.tasks import DetectionModel

    from attnyolo.layers.coord_attention import CoordAtt
    from attnyolo.yolov5.blocks import YOLOv5Bottleneck, YOLOv5BottleneckCSP
    from attnyolo.yolov5.head import YOLOv5Detect

    return {
        DetectionModel: "models.yolo.DetectionModel",
        YOLOv5Detect: "models.yolo.Detect",
        Conv: "models.common.Conv",
        C3: "models.common.C3",
        Bottleneck: "models.common.Bottleneck",  # inside C3, whose blocks are YOLOv5's (1x1 then 3x3)
        YOLOv5Bottleneck: "models.common.Bottleneck",
        YOLOv5BottleneckCSP: "models.common.BottleneckCSP",
        BottleneckCSP: "models.common.BottleneckCSP",
        SPPF: "models.common.SPPF",
        SPP: "models.common.SPP",
        Focus: "models.common.Focus",
        Concat: "models.common.Concat",
        CoordAtt: "models.common.CoordAtt",
    }


def write_classic_checkpoint(
    model, path: Path, yaml: dict, names=None, model_class="DetectionModel", v5_0=False, classes=None, extra=None
):
    """Save ``model`` the way YOLOv5's train.py + strip_optimizer do: a dict whose ``model`` pickles YOLOv5 classes.

    Each module's class is swapped for a code-free class registered, only while saving, under the YOLOv5 path
    (``models.common.Conv``, ``models.yolo.Detect``, ...), so the pickle names exactly the globals a real file names.
    ``model_class="Model"`` writes v6.1-and-older files; ``v5_0`` adds v5.0's ``anchor_grid`` buffer; ``classes``
    adds or overrides class -> path pairs (a fork's own class names); ``extra`` adds entries to the checkpoint dict.
    """
    mapping = {**classic_names(), **(classes or {})}
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


YOLOV5_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


def darknet53_yolov3(depth: float = 1.0, width: float = 1.0, nc: int = 80) -> dict:
    """The YOLOv3 layout of YOLOv5's models/hub/yolov3.yaml, written out here: a Darknet-53 backbone (residual stages
    of 1, 2, 8, 8, 4 Bottlenecks after stride-2 convs) and YOLOv3's three-level head, whose Bottleneck rows have no
    shortcut. Rows of Bottleneck blocks only: the layout that shows which Bottleneck a parser builds."""
    backbone = [[-1, 1, "Conv", [32, 3, 1]]]
    for channels, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        backbone += [[-1, 1, "Conv", [channels, 3, 2]], [-1, blocks, "Bottleneck", [channels]]]
    head = [[-1, 1, "Bottleneck", [1024, False]]]
    head += [[-1, 1, "Conv", [c, k, 1]] for c, k in ((512, 1), (1024, 3), (512, 1), (1024, 3))]  # 15: P5 out
    head += [[-2, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 8], 1, "Concat", [1]]]
    head += [[-1, 1, "Bottleneck", [512, False]]] * 2 + [[-1, 1, "Conv", [256, 1, 1]], [-1, 1, "Conv", [512, 3, 1]]]
    head += [[-2, 1, "Conv", [128, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 6], 1, "Concat", [1]]]
    head += [[-1, 1, "Bottleneck", [256, False]], [-1, 2, "Bottleneck", [256, False]]]  # 27: P3 out
    head += [[[27, 22, 15], 1, "Detect", ["nc", "anchors"]]]
    return {
        "nc": nc,
        "depth_multiple": depth,
        "width_multiple": width,
        "anchors": YOLOV5_ANCHORS,
        "backbone": backbone,
        "head": head,
    }


def tiny_p7() -> dict:
    """A small classic model whose pyramid reaches stride 128 (P7), with an upsample-and-concat at P6 and P5, like
    YOLOv5's models/hub/yolov5-p7.yaml (written for these tests; the real code's parameter count is a fixture)."""
    backbone = [[-1, 1, "Conv", [c, 3, 2]] for c in (16, 16, 32, 32, 64, 64, 128)] + [[-1, 1, "SPPF", [128, 5]]]
    head = [
        [-1, 1, "Conv", [64, 1, 1]],
        [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
        [[-1, 5], 1, "Concat", [1]],  # P6
        [-1, 3, "C3", [64, False]],  # 11
        [-1, 1, "Conv", [32, 1, 1]],
        [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]],  # P5
        [-1, 3, "C3", [32, False]],  # 15
        [[15, 11, 7], 1, "Detect", ["nc", "anchors"]],
    ]
    return {"nc": 3, "depth_multiple": 0.33, "width_multiple": 1.0, "anchors": 3, "backbone": backbone, "head": head}
