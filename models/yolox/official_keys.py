"""The key map from official YOLOX state dicts (github Megvii-BaseDetection/YOLOX) to AttnYOLO's YOLOX models.

Module names differ from this project's, which builds YOLOX from ``cfg/yolox/yolox.yaml`` through Ultralytics' parser.
The key map is derived from the module structure (facts from the official code at commit
6ddff4824372906469a7fae2dc3206c7aa4bbaee: ``yolox/models/darknet.py``, ``yolo_pafpn.py``, ``yolo_head.py``,
``network_blocks.py``):

* :data:`OFFICIAL_ROWS` lists YOLOX's modules in the order of the YAML rows, with the rows each multi-input row reads;
  a model's rows, attention rows set aside, must match it in type and wiring (checked, so an attention variant such as
  ``yolox-nano-ELA-S.yaml`` maps too: its attention rows receive nothing and keep their initialisation);
* inside a row, names follow the block: YOLOX's ``CSPLayer`` is Ultralytics' ``C3`` (``conv1/conv2/conv3`` =
  ``cv1/cv2/cv3``, bottleneck ``conv1/conv2`` = ``cv1/cv2``), ``SPPBottleneck`` is ``SPP`` (``conv1/conv2`` =
  ``cv1/cv2``); ``BaseConv``/``DWConv`` (``conv``, ``bn``, ``dconv``, ``pconv``), ``Focus`` and the head keep their
  names (:class:`~attnyolo.yolox.blocks.DWSepConv` and :class:`~attnyolo.yolox.head.YOLOXDetect` use YOLOX's).

The conversion and the size inference are :mod:`attnyolo.yolox.official_weights`, the reader of the files
:mod:`attnyolo.yolox.official`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn
from ultralytics.nn.modules import C3, SPP, Concat, Conv, Focus

from ..errors import CheckpointError
from ..layers.registry import row_attention_layers
from .blocks import DWSepConv
from .head import YOLOXDetect


@dataclass(frozen=True)
class OfficialRow:
    """One row of YOLOX's network in the order of ``cfg/yolox/yolox.yaml``.

    Attributes:
        role: The official module's state-dict prefix, or a label for the parameter-free rows.
        kind: ``Focus``, ``Conv``, ``CSP``, ``SPP``, ``Upsample``, ``Concat`` or ``Head``.
        inputs: For rows that read several rows: the roles they read, in order (YOLOX concatenates the resampled map
            first, the lateral one second). Other rows read the previous row.
    """

    role: str
    kind: str
    inputs: tuple[str, ...] = ()

    @property
    def has_weights(self) -> bool:
        """Whether the official model has tensors under :attr:`role`."""
        return self.kind not in {"Upsample", "Concat"}


BACKBONE_PREFIX, PAFPN_PREFIX = "backbone.backbone.", "backbone."  # CSPDarknet inside YOLOPAFPN; the PAFPN itself
_B, _N = BACKBONE_PREFIX, PAFPN_PREFIX
OFFICIAL_ROWS: tuple[OfficialRow, ...] = (
    OfficialRow(f"{_B}stem", "Focus"),
    OfficialRow(f"{_B}dark2.0", "Conv"),
    OfficialRow(f"{_B}dark2.1", "CSP"),
    OfficialRow(f"{_B}dark3.0", "Conv"),
    OfficialRow(f"{_B}dark3.1", "CSP"),  # output P3 (stride 8)
    OfficialRow(f"{_B}dark4.0", "Conv"),
    OfficialRow(f"{_B}dark4.1", "CSP"),  # output P4 (stride 16)
    OfficialRow(f"{_B}dark5.0", "Conv"),
    OfficialRow(f"{_B}dark5.1", "SPP"),
    OfficialRow(f"{_B}dark5.2", "CSP"),  # output P5 (stride 32)
    OfficialRow(f"{_N}lateral_conv0", "Conv"),
    OfficialRow("upsample to P4", "Upsample"),
    OfficialRow("concat P4", "Concat", ("upsample to P4", f"{_B}dark4.1")),
    OfficialRow(f"{_N}C3_p4", "CSP"),
    OfficialRow(f"{_N}reduce_conv1", "Conv"),
    OfficialRow("upsample to P3", "Upsample"),
    OfficialRow("concat P3", "Concat", ("upsample to P3", f"{_B}dark3.1")),
    OfficialRow(f"{_N}C3_p3", "CSP"),  # pan_out2 (stride 8)
    OfficialRow(f"{_N}bu_conv2", "Conv"),
    OfficialRow("concat N3", "Concat", (f"{_N}bu_conv2", f"{_N}reduce_conv1")),
    OfficialRow(f"{_N}C3_n3", "CSP"),  # pan_out1 (stride 16)
    OfficialRow(f"{_N}bu_conv1", "Conv"),
    OfficialRow("concat N4", "Concat", (f"{_N}bu_conv1", f"{_N}lateral_conv0")),
    OfficialRow(f"{_N}C3_n4", "CSP"),  # pan_out0 (stride 32)
    OfficialRow("head", "Head", (f"{_N}C3_p3", f"{_N}C3_n3", f"{_N}C3_n4")),
)

# Inside a row: AttnYOLO name -> official name, by block kind (Ultralytics C3 = YOLOX CSPLayer, SPP = SPPBottleneck).
_RENAMES: dict[str, tuple[tuple[re.Pattern, str], ...]] = {
    "CSP": ((re.compile(r"^(m\.\d+\.)?cv(\d)\."), r"\1conv\2."),),
    "SPP": ((re.compile(r"^cv(\d)\."), r"conv\1."),),
}


def _kind_of(module: nn.Module) -> str | None:
    """The :class:`OfficialRow` kind a built row is, or None (exact types: C3 subclasses are other blocks)."""
    kinds = {Focus: "Focus", Conv: "Conv", DWSepConv: "Conv", C3: "CSP", SPP: "SPP", nn.Upsample: "Upsample"}
    kinds.update({Concat: "Concat", YOLOXDetect: "Head"})
    return kinds.get(type(module))


# CSP blocks whose bottlenecks add their input (CSPDarknet's dark2..dark4); dark5 and the PAFPN's do not.
_SHORTCUT_CSP = {f"{_B}dark2.1", f"{_B}dark3.1", f"{_B}dark4.1"}
_SPP_KERNELS = (5, 9, 13)  # SPPBottleneck's max-pool sizes


def _behaviour_differs(module: nn.Module, row: OfficialRow) -> str | None:
    """What a row of the right type does differently from YOLOX's module (no weights show it), or None."""
    if row.kind == "CSP":
        adds = {bool(getattr(b, "add", False)) for b in module.m}
        if adds != {row.role in _SHORTCUT_CSP}:
            return f"its bottlenecks {'add' if True in adds else 'do not add'} their input, YOLOX's do the opposite"
    if row.kind == "SPP":
        kernels = tuple(getattr(pool, "kernel_size", None) for pool in module.m)
        if kernels != _SPP_KERNELS:
            return f"max-pool sizes {kernels}, YOLOX's are {_SPP_KERNELS}"
    if row.kind == "Upsample" and (module.scale_factor not in (2, 2.0) or module.mode != "nearest"):
        return f"upsampling x{module.scale_factor} '{module.mode}', YOLOX's is x2 'nearest'"
    return None


def _attention_rows(layers: nn.Sequential) -> set[int]:
    """Indices of rows that are attention layers (possibly repeated inside an nn.Sequential)."""
    return {i for i, m in enumerate(layers) if row_attention_layers(m)}


def official_rows(model: nn.Module, label: str = "model") -> dict[int, OfficialRow | None]:
    """Match every row of an AttnYOLO YOLOX model to :data:`OFFICIAL_ROWS`; attention rows map to None.

    The rows that remain once attention rows are set aside must have the official kinds in the official order, and
    every row must read the rows YOLOX's module reads (an attention row passes its input on).

    Args:
        model: A built ``DetectionModel`` (or anything with a ``model`` layer list).
        label: How to name the model in messages (e.g. ``model=yolox-s-ELA-S.yaml``).

    Returns:
        ``{row index: OfficialRow or None}`` for every row.

    Raises:
        CheckpointError: The model is not YOLOX's network; the message names the first row that differs.
    """
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential):
        raise CheckpointError(f"{label} is not an Ultralytics model with a layer list.")
    attention = _attention_rows(layers)
    skeleton = [i for i in range(len(layers)) if i not in attention]
    if len(skeleton) != len(OFFICIAL_ROWS):
        raise CheckpointError(
            f"{label} has {len(skeleton)} rows besides attention rows; YOLOX's network has {len(OFFICIAL_ROWS)} "
            "(cfg/yolox/yolox.yaml). Fix: pass a YOLOX model YAML, e.g. model=yolox-s.yaml or yolox-s-ELA-S.yaml."
        )
    rows: dict[int, OfficialRow | None] = dict.fromkeys(attention)
    rows.update(zip(skeleton, OFFICIAL_ROWS))

    def source(j: int) -> int:
        """The non-attention row whose output reaches row input ``j`` (attention rows pass their input on)."""
        while j in attention:
            f = layers[j].f
            j = j + f if f < 0 else f
        return j

    for k, (i, row) in enumerate(zip(skeleton, OFFICIAL_ROWS)):
        m = layers[i]
        kind = _kind_of(m)
        if kind != row.kind:
            raise CheckpointError(
                f"{label}, row {i}: a {type(m).__name__} where YOLOX has {row.kind} '{row.role}'. Fix: pass a YOLOX "
                "model YAML (yolox-<size>[-<kind>].yaml) or leave model= out to infer the size."
            )
        behaviour = _behaviour_differs(m, row)
        if behaviour:
            raise CheckpointError(f"{label}, row {i} ('{row.role}'): {behaviour}. Fix: pass a YOLOX model YAML.")
        if k == 0:
            continue  # the stem reads the image
        f = m.f if isinstance(m.f, list) else [m.f]
        got = [rows[source(i + j if j < 0 else j)].role for j in f]  # negative: relative, as Ultralytics routes
        want = list(row.inputs) if row.inputs else [OFFICIAL_ROWS[k - 1].role]
        if got != want:
            raise CheckpointError(
                f"{label}, row {i} ('{row.role}') reads {got}; in YOLOX it reads {want}. Fix: pass a YOLOX model YAML."
            )
    return rows


def official_key_map(model: nn.Module, label: str = "model") -> dict[str, str | None]:
    """The official YOLOX state-dict key of every state-dict entry of ``model`` (None for attention rows).

    Args:
        model: A built AttnYOLO YOLOX ``DetectionModel``.
        label: How to name the model in messages.

    Returns:
        ``{"model.4.m.2.cv2.conv.weight": "backbone.backbone.dark3.1.m.2.conv2.conv.weight", ...}``.

    Raises:
        CheckpointError: The model is not YOLOX's network (see :func:`official_rows`).
    """
    rows = official_rows(model, label)
    mapping: dict[str, str | None] = {}
    for key in model.state_dict():
        _, index, rel = key.split(".", 2)
        row = rows[int(index)]
        if row is None:
            mapping[key] = None
            continue
        for pattern, repl in _RENAMES.get(row.kind, ()):
            rel = pattern.sub(repl, rel)
        mapping[key] = f"{row.role}.{rel}"
    return mapping
