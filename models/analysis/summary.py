"""Model summaries: layers, parameters, GFLOPs, and where the attention layers sit (tools/model_info.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from ultralytics import YOLO
from ultralytics.utils import torch_utils

from ..integration.checkpoints import load_model
from ..integration.names import SCALED_FAMILIES, YOLOX_SIZE_NAMES, check_model_source, scaled_stem
from ..layers.registry import kind_names, row_attention_layers

# Stride of each pyramid level, for naming where a layer sits (P3/8 ... P5/32).
_P_LEVEL = {2: "P1", 4: "P2", 8: "P3", 16: "P4", 32: "P5", 64: "P6"}


def attention_placements(model: nn.Module, imgsz: int = 64) -> list[dict]:
    """List the attention layers of an Ultralytics model: row index, class, channels and pyramid level.

    A row that stacks several layers (``[-1, 3, CoordAtt, [256]]``) is one entry, its layer named with the count
    (``CoordAtt x3``).

    Args:
        model: An Ultralytics ``DetectionModel`` (or ``YOLO(...).model``).
        imgsz: Square input size for the probe forward pass that measures each layer's stride.

    Returns:
        One dict per attention row: ``{"row", "layer", "channels", "level", "repeats"}``.
    """
    rows = [(i, m) for i, m in enumerate(model.model) if row_attention_layers(m)]
    sizes: dict[int, int] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a, i=i: sizes.__setitem__(i, a[0].shape[-1])) for i, m in rows]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    out = []
    for i, m in rows:
        stride = imgsz // sizes[i] if sizes.get(i) else 0
        layers = row_attention_layers(m)
        first = layers[0]
        variant = getattr(first, "variant", None)  # None: the paper's form, which needs no label
        extra = f" {variant}" if variant else ""
        extra += f" x{len(layers)}" if len(layers) > 1 else ""
        out.append(
            {
                "row": i,
                "layer": type(first).__name__ + extra,
                "channels": first.channels,
                "level": _P_LEVEL.get(stride, "?"),
                "repeats": len(layers),
            }
        )
    return out


def open_model(name: str | Path, key: str = "model"):
    """An Ultralytics ``YOLO`` model from a model YAML or a checkpoint, with one-line errors naming ``key``.

    A checkpoint file is opened by :func:`attnyolo.integration.checkpoints.load_model` (read without running code
    from it; a damaged file or a model for another task is refused in one line); a YAML, or the name of an
    Ultralytics stock weight that is not on disk (Ultralytics downloads it), by ``YOLO``.

    Raises:
        FileNotFoundError: Nothing of that name, with close matches.
        CheckpointError: A checkpoint that cannot be read or is not a detection model.
    """
    check_model_source(name, key)  # errors name the file the user typed, not Ultralytics' fallback name
    if str(name).endswith(".pt") and Path(str(name)).is_file():
        return load_model(name, key)
    return YOLO(str(name))


def model_summary(model_name: str, imgsz: int = 640) -> dict:
    """Build a model from a YAML name or path and measure it.

    Args:
        model_name: Any shipped or Ultralytics model YAML (e.g. ``yolov8s-ELA-S.yaml``) or a checkpoint.
        imgsz: Input size for the GFLOPs count.

    Returns:
        ``{"model", "layers", "params", "gflops", "imgsz", "attention": attention_placements(...)}``.
    """
    model = open_model(model_name).model
    return {
        "model": model_name,
        "layers": len(list(model.modules())),
        "params": sum(p.numel() for p in model.parameters()),
        "gflops": torch_utils.get_flops(model, imgsz),  # through the module: the get_flops the seam patched
        "imgsz": imgsz,
        "attention": attention_placements(model),
    }


def zoo_names(families: Sequence[str] | None = None, scales: str = "nsmlx", yolox: bool = True) -> list[str]:
    """Every model name of the zoo: each family and scale, its stock baseline first, then every attention kind.

    Args:
        families: Families of :data:`attnyolo.integration.names.SCALED_FAMILIES` (default: all, in the zoo's order;
            "yolov5" is Ultralytics' anchor-free YOLOv5u, "yolov5-classic" the anchor-based original).
        scales: Scale letters.
        yolox: Also every YOLOX size, by YOLOX's own size names.
    """
    families = tuple(SCALED_FAMILIES) if families is None else families
    names = [
        f"{scaled_stem(family, scale)}{'-' + kind if kind else ''}.yaml"
        for family in families
        for scale in scales
        for kind in ("", *kind_names())
    ]
    if yolox:
        names += [
            f"yolox-{size}{'-' + kind if kind else ''}.yaml"
            for size in YOLOX_SIZE_NAMES
            for kind in ("", *kind_names())
        ]
    return names


def zoo_markdown(names: Sequence[str], imgsz: int = 640) -> Iterator[str]:
    """The zoo table as Markdown lines (header first), one row per model name, measured as it is built."""
    yield f"| model | params | GFLOPs@{imgsz} | attention rows |"
    yield "|---|---:|---:|---|"
    for name in names:
        s = model_summary(name, imgsz)
        rows = " ".join(f"{a['row']}:{a['level']}" for a in s["attention"]) or "-"
        yield f"| {name} | {s['params'] / 1e6:.3f}M | {s['gflops']:.2f} | {rows} |"
