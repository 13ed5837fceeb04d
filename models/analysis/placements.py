"""Where the attention layers go: named placements, turned into model YAMLs from an attention-free base YAML.

``ablate base=yolov8n.yaml kinds=CoordAtt,ELA-S placements=backbone,neck,all`` compares one attention kind at several
positions without the user writing YAMLs. Each placement is a rule on the base model's rows, so one name means the same
thing in every family (YOLOv5u, YOLOv8, YOLO11, classic YOLOv5, YOLOX) and at every scale:

``backbone``
    One layer after the last block of each backbone stage at stride 8, 16 and 32 (P3, P4, P5), not counting the
    pooling or self-attention blocks that close a backbone (SPPF, SPP, C2PSA). For YOLOv5u, YOLOv8, YOLO11 and classic
    YOLOv5 this is exactly the shipped ``<family>-attention.yaml`` placement (after the P3/P4/P5 C3/C2f/C3k2 stages,
    before SPPF), where the YOLOv5 Coordinate-Attention forks put CoordAtt; for YOLOX it is the ELA authors' three
    backbone positions (dark3, dark4, dark5 outputs; github Xuwei86/ELA_Code, YOLOX/nets/yolo.py).
``neck``
    One layer after each of the three neck rows the detection head reads (the P3, P4 and P5 outputs), i.e. just
    before the head.
``all``
    ``backbone`` and ``neck`` together: six layers.

Every inserted row is ``[-1, 1, Attention, [c]]`` with ``c`` the unscaled channel count of the row it follows (as the
shipped placement YAMLs write it; the parser scales it with the model and checks it against the channels entering
the row), and the model's top-level ``attention:`` key names the kind. Every reference to a row that gets a layer
(the next row's ``-1``, a Concat, the Detect row) reads the layer's output instead, as in the shipped YAMLs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelConfigError
from ..integration.parser import ATTENTION_ROW
from ..layers.registry import get_kind

PLACEMENTS: dict[str, str] = {
    "backbone": "after the last block of each backbone stage at stride 8, 16, 32 (P3, P4, P5), before SPPF/SPP/C2PSA",
    "neck": "after each of the three neck rows the detection head reads (P3, P4, P5 outputs)",
    "all": "backbone and neck: six layers",
}
# Backbone blocks whose stride is not 1, by module name -> where the stride is (argument index, default).
_STRIDED = {"Conv": (2, 1), "Focus": (None, 2)}
# Blocks that keep the resolution; any other module in a backbone is refused (its stride is unknown here).
_SAME_SIZE = {"C2f", "C3", "C3k2", "C2PSA", "SPPF", "SPP", "C3TR", "C3Ghost", "C2", "C1", "Bottleneck", "BottleneckCSP"}
# Blocks that close a backbone and are not a stage's own last block.
_CLOSING = {"SPPF", "SPP", "C2PSA"}
# Row modules whose first argument is their output channel count (unscaled), so a layer after them takes that count.
_CHANNELS_FIRST = _SAME_SIZE | {"Conv"}


def _tasks():
    """``ultralytics.nn.tasks``, where AttnYOLO's model-name resolution is installed (yaml_model_load)."""
    return importlib.import_module("ultralytics.nn.tasks")


def check_placements(value: Any, key: str = "placements") -> list[str]:
    """A ``placements=`` value (``backbone,neck`` or a list) checked against :data:`PLACEMENTS`.

    Raises:
        ValueError: An unknown name or an empty list, naming the value and the known names.
    """
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = [str(p).strip() for p in items if str(p).strip()]
    if not names:
        raise ValueError(f"{key}= is empty. Fix: give one or more of {', '.join(PLACEMENTS)}.")
    for name in names:
        if name not in PLACEMENTS:
            raise ValueError(f"{key}: {name!r} is not a placement. Fix: use one or more of {', '.join(PLACEMENTS)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"{key}={','.join(names)} names a placement twice. Fix: list each once.")
    return names


def _absolute(i: int, f: Any) -> Any:
    """Row ``i``'s ``from`` with relative indices (-1) made absolute."""
    if isinstance(f, list):
        return [_absolute(i, x) for x in f]
    return i + f if f < 0 else f


def _rows(d: dict) -> list[list]:
    """The base model's rows, backbone then head, ``from`` made absolute."""
    return [[_absolute(i, r[0]), *r[1:]] for i, r in enumerate([*d["backbone"], *d["head"]])]


def backbone_rows(d: dict) -> list[int]:
    """The rows ``backbone`` puts a layer after: the last block of each stride-8/16/32 backbone stage.

    Raises:
        ModelConfigError: A backbone row whose stride this rule cannot tell, or a backbone without those strides.
    """
    stride, last = 1, {}
    label = d.get("yaml_file") or "the base YAML"
    for i, (_, _, module, args) in enumerate(d["backbone"]):
        if module in _STRIDED:
            where, default = _STRIDED[module]
            stride *= int(args[where]) if where is not None and len(args) > where else default
        elif module not in _SAME_SIZE:
            raise ModelConfigError(
                f"{label}, row {i} ({module}): placements know the backbones of YOLOv5u, YOLOv8, YOLO11, classic "
                "YOLOv5 and YOLOX, not this block. Fix: write the placement YAML yourself and pass it in models=."
            )
        if module not in _CLOSING:
            last[stride] = i
    missing = [s for s in (8, 16, 32) if s not in last]
    if missing:
        raise ModelConfigError(f"{label}: the backbone has no stage at stride {missing}; placements need P3, P4, P5.")
    return [last[8], last[16], last[32]]


def neck_rows(d: dict) -> list[int]:
    """The rows ``neck`` puts a layer after: the rows the last (detection) row reads."""
    rows = _rows(d)
    head = rows[-1][0]
    if not isinstance(head, list) or len(head) != 3:
        label = d.get("yaml_file") or "the base YAML"
        raise ModelConfigError(f"{label}: the last row reads {head}, not three levels; placements need P3, P4, P5.")
    return list(head)


def placement_rows(d: dict, placement: str) -> list[int]:
    """The base rows (indices in the base YAML) that ``placement`` puts an attention layer after."""
    if placement == "backbone":
        return backbone_rows(d)
    if placement == "neck":
        return neck_rows(d)
    if placement == "all":
        return sorted(set(backbone_rows(d)) | set(neck_rows(d)))
    raise ValueError(f"placement {placement!r} is not one of {', '.join(PLACEMENTS)}.")


def _renumbered(f: Any, written: Any, new_index: dict[int, int]) -> Any:
    """A row's ``from`` after insertion: relative entries (-1, the model input) stay as written, absolute ones move."""
    if isinstance(f, list):
        return [_renumbered(x, w, new_index) for x, w in zip(f, written)]
    return written if written < 0 else new_index[f]


def insert_attention(d: dict, after: Sequence[int]) -> tuple[list[list], list[list], list[int]]:
    """The base rows with an ``Attention`` row after each row in ``after``; references follow the layer.

    Returns:
        ``(backbone, head, inserted)``: the new rows (``from`` relative (-1) where it reads the previous row, absolute
        elsewhere) and the new indices of the inserted rows.

    Raises:
        ModelConfigError: A row in ``after`` whose output channel count is not its first argument.
    """
    rows, after = _rows(d), sorted(set(after))
    written = [r[0] for r in [*d["backbone"], *d["head"]]]
    n_backbone = len(d["backbone"])
    new_index, out, raw, inserted = {}, [], [], []
    for i, row in enumerate(rows):
        new_index[i] = len(out)
        out.append(list(row))
        raw.append(written[i])
        if i in after:
            module, args = row[2], row[3]
            if module not in _CHANNELS_FIRST or not args:
                label = d.get("yaml_file") or "the base YAML"
                raise ModelConfigError(f"{label}, row {i} ({module}): cannot tell its channels for an attention row.")
            new_index[i] = len(out)  # every later reference to row i reads the attention layer's output
            inserted.append(len(out))
            out.append([i, 1, ATTENTION_ROW, [args[0]]])
            raw.append(-1)

    result = []
    for k, row in enumerate(out):
        if row[2] == ATTENTION_ROW:
            result.append([-1, *row[1:]])
            continue
        result.append([_renumbered(row[0], raw[k], new_index), *row[1:]])
    split = new_index[n_backbone - 1] + 1
    return result[:split], result[split:], inserted


def placement_yaml(base: str | Path, kind: str, placement: str) -> tuple[str, str, list[int]]:
    """The model YAML of ``base`` with ``kind`` layers at ``placement``.

    Args:
        base: An attention-free model name or YAML (``yolov8n.yaml``, ``yolov5n-classic.yaml``, ``yolox-nano.yaml``).
        kind: An attention kind (``CoordAtt``, ``ELA-S``, ...).
        placement: A name of :data:`PLACEMENTS`.

    Returns:
        ``(file name, YAML text, inserted row indices)``; the file name is ``<base stem>-<placement>-<kind>.yaml``,
        which keeps the scale letter where Ultralytics (and, for YOLOX, this project) reads it.

    Raises:
        ValueError: An unknown kind or placement.
        ModelConfigError: A base that already has attention rows, or whose rows the placement rules do not cover.
    """
    get_kind(kind)
    d = _tasks().yaml_model_load(str(base))
    stem = Path(str(base)).stem
    if any(r[2] == ATTENTION_ROW for r in [*d["backbone"], *d["head"]]) or "attention" in d:
        raise ModelConfigError(
            f"base={base} already has attention rows. Fix: give the attention-free model (e.g. yolov8n.yaml)."
        )
    after = placement_rows(d, placement)
    backbone, head, inserted = insert_attention(d, after)
    top = {k: v for k, v in d.items() if k not in {"backbone", "head", "scale", "yaml_file", "ch"}}
    top["attention"] = kind
    lines = [
        f"# Generated by attnyolo ablate from {Path(str(d.get('yaml_file') or base)).name} ({stem}): placement "
        f"'{placement}' = {PLACEMENTS[placement]};",
        f"# {kind} layers at rows {', '.join(map(str, inserted))} (after base rows {', '.join(map(str, after))}).",
        yaml.safe_dump(top, sort_keys=False, default_flow_style=None, width=1000).rstrip(),
        "backbone:",
        *(f"  - {_flow(r)} # {i}" for i, r in enumerate(backbone)),
        "head:",
        *(f"  - {_flow(r)} # {i + len(backbone)}" for i, r in enumerate(head)),
    ]
    return f"{stem}-{placement}-{kind}.yaml", "\n".join(lines) + "\n", inserted


def _flow(row: list) -> str:
    """One YAML row in flow style: ``[-1, 1, Conv, [64, 3, 2]]``."""
    return yaml.safe_dump(row, default_flow_style=True, width=1000).strip()


def placement_models(base: str | Path, kinds: Sequence[str], placements: Sequence[str]) -> list[dict[str, Any]]:
    """The ablation's model entries for ``base`` x ``kinds`` x ``placements``: the base first, then each variant.

    Returns:
        Dicts with ``label``, ``model`` (the generated file name), ``kind``, ``placement``, ``yaml`` (its text), as
        :func:`attnyolo.analysis.ablation_runs.expand_grid` takes them; the base is ``{"label", "model"}``.
    """
    entries = [{"label": Path(str(base)).stem, "model": str(base), "kind": "baseline"}]
    for kind in kinds:
        for placement in placements:
            name, text, _ = placement_yaml(base, kind, placement)
            entries.append(
                {"label": Path(name).stem, "model": name, "kind": kind, "placement": placement, "yaml": text}
            )
    return entries
