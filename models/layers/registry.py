"""THE table of attention kinds: every other list of kinds in AttnYOLO is derived from :data:`KINDS`.

A *kind* is what a user chooses by name: in a model name (``yolov8n-ELA-S.yaml``), in a placement YAML's
``attention:`` key, on the command line (``kinds=`` of ``attnyolo benchmark`` and ``attnyolo ablate``). Each row
gives the layer class (its class name is the name a YAML row uses, e.g. ``[-1, 1, ELA, [256, S]]``), the
constructor arguments after the channel count, the reference equations (:mod:`attnyolo.layers.reference`) and the
paper.

Derived from this table: the YAML layer names registered into Ultralytics' parser (:func:`layer_classes`), the kinds
accepted in names and ``attention:`` keys (:func:`kind_names`), the benchmark rows, the ablation's default models,
the documentation's layer and zoo tables, and the parametrised tests. The layer names of other projects that build
these layers are in :mod:`attnyolo.layers.spellings`.

Adding a kind: write ``layers/<name>.py`` (channels first, output shape = input shape), add its reference equations
to ``reference.py``, add one row here, and its tests (CONTRIBUTING.md walks through it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import reference
from .cbam import CBAMAttention, UltralyticsCBAM
from .coord_attention import CoordAtt
from .eca import ECAAttention
from .efficient_local_attention import ELA
from .spellings import SPELLINGS, get_spelling
from .squeeze_excite import SEAttention


@dataclass(frozen=True)
class AttentionKind:
    """One row of the table of kinds.

    Attributes:
        name: The kind's name in model names, ``attention:`` keys and command lines (e.g. ``ELA-S``).
        layer: The layer class; its ``__name__`` is the YAML row name.
        args: Constructor arguments after the channel count.
        reference: ``f(layer, x) -> y``, the paper's equations (:mod:`attnyolo.layers.reference`).
        paper: Short citation.
    """

    name: str
    layer: type[nn.Module]
    args: tuple
    reference: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    paper: str

    @property
    def yaml_name(self) -> str:
        """The module name a model YAML row uses for this kind's layer."""
        return self.layer.__name__

    def build(self, channels: int) -> nn.Module:
        """The layer for ``channels`` input channels, with this kind's arguments."""
        return self.layer(channels, *self.args)


_CA = "Hou et al., CVPR 2021, arXiv 2103.02907"
_ELA = "Xu & Wan 2024, arXiv 2403.01123"
KINDS: tuple[AttentionKind, ...] = (
    AttentionKind("CoordAtt", CoordAtt, (), reference.coord_att, _CA),
    AttentionKind("ELA-T", ELA, ("T",), reference.ela, _ELA),
    AttentionKind("ELA-B", ELA, ("B",), reference.ela, _ELA),
    AttentionKind("ELA-S", ELA, ("S",), reference.ela, _ELA),
    AttentionKind("ELA-L", ELA, ("L",), reference.ela, _ELA),
    AttentionKind("SE", SEAttention, (), reference.squeeze_excite, "Hu et al., CVPR 2018, arXiv 1709.01507"),
    AttentionKind("CBAM", CBAMAttention, (), reference.cbam, "Woo et al., ECCV 2018, arXiv 1807.06521"),
    AttentionKind("ECA", ECAAttention, (), reference.eca, "Wang et al., CVPR 2020, arXiv 1910.03151"),
)


def own_kind_of(layer: type[nn.Module]) -> AttentionKind:
    """The kind whose paper form a row of a ``layer`` spelling ending in ``paper`` builds.

    The first kind built by ``layer``; for Ultralytics' CBAM, which is no kind, the paper's CBAM (``CBAM``).
    """
    if layer is UltralyticsCBAM:
        return get_kind("CBAM")
    return next(k for k in KINDS if k.layer is layer)


# Feature maps of a 640x640 input in a width-0.25..0.5 YOLO backbone: (channels, side) at strides 4, 8, 16, 32.
# The layer benchmark times every kind on these.
BENCHMARK_SHAPES: tuple[tuple[int, int], ...] = ((64, 160), (128, 80), (256, 40), (512, 20))


def kind_names() -> list[str]:
    """Every kind's name, in table order."""
    return [k.name for k in KINDS]


def get_kind(name: str) -> AttentionKind:
    """The row named ``name``.

    Raises:
        ValueError: Unknown name; the message gives the closest names and all known ones.
    """
    for kind in KINDS:
        if kind.name == name:
            return kind
    close = difflib.get_close_matches(str(name), kind_names(), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown attention kind {name!r}.{hint} Known kinds: {', '.join(kind_names())}.")


def kinds_arg(value, key: str = "kinds") -> list[str] | None:
    """A ``kinds=`` value (``ELA-S,CoordAtt`` or a list) checked against the table of kinds; None means all.

    Raises:
        ValueError: An unknown kind, naming the value, the closest kinds and all known ones.
    """
    if value is None or value == "all":
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    kinds = [str(k).strip() for k in items if str(k).strip()]
    for kind in kinds:
        try:
            get_kind(kind)
        except ValueError as error:
            raise ValueError(f"{key}={value}: {error}") from None
    return kinds


def build_layer(kind: str, channels: int) -> nn.Module:
    """Build the layer of kind ``kind`` (e.g. ``"ELA-S"``) for ``channels`` input channels."""
    return get_kind(kind).build(channels)


def layer_classes() -> dict[str, type[nn.Module]]:
    """Class name -> class, one entry per distinct layer class the kinds and the spellings build, in table order."""
    classes = {k.yaml_name: k.layer for k in KINDS}
    classes.update({s.layer.__name__: s.layer for s in SPELLINGS})
    return classes


def row_attention_layers(row: nn.Module) -> list[nn.Module]:
    """The attention layers a model row is: ``[row]`` for one layer, its members for a stack of them, else ``[]``.

    A YAML row with a repeat count (``[-1, 3, CoordAtt, [256]]``) is built by Ultralytics' parser as an
    ``nn.Sequential`` of that many layers; tools that list or picture attention rows count it as one attention row.
    """
    kinds = tuple(layer_classes().values())
    if isinstance(row, kinds):
        return [row]
    if isinstance(row, nn.Sequential) and len(row) and all(isinstance(m, kinds) for m in row):
        return list(row)
    return []


def one_kind_per_layer() -> list[AttentionKind]:
    """The first row of each distinct layer class, in table order (e.g. ELA-T stands for ELA-T/B/S/L)."""
    first: dict[type[nn.Module], AttentionKind] = {}
    for kind in KINDS:
        first.setdefault(kind.layer, kind)
    return list(first.values())


def reference_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations for ``layer`` (any of our attention layers) applied to ``x``.

    Raises:
        TypeError: ``layer`` is not one of the table's layer classes.
    """
    for kind in KINDS:
        if type(layer) is kind.layer:
            return kind.reference(layer, x)
    raise TypeError(f"no reference equations for {type(layer).__name__}; known layers: {', '.join(layer_classes())}.")


def kinds_markdown() -> str:
    """The table of kinds as Markdown (docs/layers.md): kind, YAML row, parameters at C = 256, paper."""
    lines = ["| kind | YAML row | parameters at C = 256 | paper |", "|---|---|---:|---|"]
    for kind in KINDS:
        spelling = get_spelling(kind.yaml_name)
        # a raw row under a name the forks also use builds their form unless it ends in `paper`
        args = kind.args or (("paper",) if spelling is not None and spelling.variant else ())
        row = f"`[-1, 1, {kind.yaml_name}, [256{''.join(', ' + str(a) for a in args)}]]`"
        params = sum(p.numel() for p in kind.build(256).parameters())
        lines.append(f"| {kind.name} | {row} | {params:,} | {kind.paper} |")
    return "\n".join(lines)
