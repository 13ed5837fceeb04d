"""THE table of attention kinds: every other list of kinds in AttnYOLO is derived from :data:`KINDS`.

A *kind* is what a user chooses by name: in a model name (``yolov8n-ELA-S.yaml``), in a placement YAML's
``attention:`` key, on the command line (``kinds=`` of ``attnyolo benchmark`` and ``attnyolo ablate``). Each row
gives the layer class (its class name is the name a YAML row uses, e.g. ``[-1, 1, ELA, [256, S]]``), the
constructor arguments after the channel count, the reference equations (:mod:`attnyolo.layers.reference`) and the
paper.

Derived from this table: the YAML layer names registered into Ultralytics' parser (:func:`layer_classes`), the kinds
accepted in names and ``attention:`` keys (:func:`kind_names`), the benchmark rows, the ablation's default models,
the documentation's layer and zoo tables, and the parametrised tests.

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


@dataclass(frozen=True)
class Spelling:
    """One YAML row name for one of the layers, as the public code that defines a class of that name reads it.

    Attributes:
        name: The module name a YAML row writes (``SEAttention``, ``eca_layer``, ``CA``).
        layer: The class built.
        args: Constructor arguments that the YAML's numbers after the channel count fill, in order (the copied
            class's own order, e.g. ``reduction`` of ``SEAttention(channel, reduction=16)``).
        variant: Constructor arguments the spelling implies: the form that public code builds, where it departs from
            the paper (``{"bias": False}``); YAML numbers override the entries they fill. A row ending in the word
            ``paper`` drops these and builds the paper's form.
        label: Short name of that form, printed in docs/models.md ("bias-free", "k=3", "ELA-B").
        lone: The argument a lone number that is not the row's channel count is read as (``[16]`` for reduction
            16), or None when a lone number is always the channel count.
        family: ``"classic"`` (anchor-based YOLOv5 YAMLs) or ``"ultralytics"`` when the same name means different
            classes in the two kinds of repository (``CBAM``); None for every model.
        sources: Where the definition was read (repository and path).
        signature: The public class's constructor as its source writes it (docs/models.md, warnings).
    """

    name: str
    layer: type[nn.Module]
    args: tuple[str, ...]
    variant: dict
    label: str
    lone: str | None
    family: str | None
    sources: str
    signature: str = ""


_EXTERNAL = "github xmu-xiaoma666/External-Attention-pytorch"
_YOLOAIR = "github iscyy/yoloair"
_HOU = "github houqb/CoordAttention coordatt.py CoordAtt(inp, oup, reduction=32)"
_ELA_COPIED = "ELA(channel, kernel_size=7): depthwise Conv1d, GroupNorm(16), the class YOLO forks copy"
# Every YAML row name AttnYOLO builds, the project's own class names included. Sources were read for each definition;
# where the public classes of one name differ, the row follows the most widely copied one and docs/models.md says so.
SPELLINGS: tuple[Spelling, ...] = (
    Spelling(
        "SEAttention",
        SEAttention,
        ("reduction",),
        {"bias": False},
        "bias-free",
        "reduction",
        None,
        f"{_EXTERNAL} model/attention/SEAttention.py SEAttention(channel=512, reduction=16); {_YOLOAIR} "
        "models/Models/Attention/SEAttention.py (same class; its parser passes [c1, *args[1:]])",
        signature="SEAttention(channel=512, reduction=16)",
    ),
    Spelling(
        "SE",
        SEAttention,
        ("reduction",),
        {"bias": False},
        "bias-free",
        "reduction",
        None,
        "YOLOv5/YOLOv8 forks' models/common.py SE(c1, c2, ratio=16) and SE(c1, ratio=16) "
        "(nn.Linear bias=False); YAMLs write [c2], [c2, ratio] or [ratio]",
        signature="SE(c1, c2, ratio=16)",
    ),
    Spelling(
        "SELayer",
        SEAttention,
        ("reduction",),
        {"bias": False},
        "bias-free",
        "reduction",
        None,
        "github moskomule/senet.pytorch senet/se_module.py SELayer(channel, reduction=16) (nn.Linear bias=False)",
        signature="SELayer(channel, reduction=16)",
    ),
    Spelling(
        "SEBlock",
        SEAttention,
        ("reduction",),
        {},
        "paper (biased FC)",
        "reduction",
        None,
        "SEBlock classes are biased: github DingXiaoH/RepVGG SEBlock(input_channels, internal_neurons), "
        "github eladhoffer/convNet.pytorch models/modules/se.py SEBlock(in_channels, out_channels, ratio=16)",
        signature="SEBlock(channels, reduction=16)",
    ),
    Spelling(
        "CBAMAttention",
        CBAMAttention,
        ("reduction", "kernel_size"),
        {},
        "paper",
        None,
        None,
        "AttnYOLO's own class (Woo et al. 2018, arXiv 1807.06521); no public YOLO fork defines this name",
        signature="CBAMAttention(c1, reduction=16, kernel_size=7)",
    ),
    Spelling(
        "CBAM",
        CBAMAttention,
        ("reduction", "kernel_size"),
        {"bias": False},
        "bias-free",
        None,
        "classic",
        "YOLOv5 forks' models/common.py CBAM(c1, c2, ratio=16, kernel_size=7) (bias-free 1x1-conv MLP and "
        f"spatial conv; e.g. {_YOLOAIR} models/Models/muitlbackbone.py); YAMLs write [c2]",
        signature="CBAM(c1, c2, ratio=16, kernel_size=7)",
    ),
    Spelling(
        "CBAM",
        UltralyticsCBAM,
        ("kernel_size",),
        {},
        "Ultralytics",
        "kernel_size",
        "ultralytics",
        "ultralytics/nn/modules/conv.py CBAM(c1, kernel_size=7): the class a YOLOv8/YOLO11 fork's parse_model "
        "registers; YAMLs write [kernel_size] or [c, kernel_size]",
        signature="CBAM(c1, kernel_size=7)",
    ),
    Spelling(
        "CBAMBlock",
        CBAMAttention,
        ("reduction", "kernel_size"),
        {"kernel_size": 49, "bias": False, "spatial_bias": True, "residual": True},
        "CBAMBlock",
        "reduction",
        None,
        f"{_EXTERNAL} model/attention/CBAM.py CBAMBlock(channel=512, reduction=16, kernel_size=49)",
        signature="CBAMBlock(channel=512, reduction=16, kernel_size=49)",
    ),
    Spelling(
        "ECAAttention",
        ECAAttention,
        ("kernel_size",),
        {"kernel_size": 3, "bias": True},
        "k=3, bias",
        "kernel_size",
        None,
        f"{_EXTERNAL} model/attention/ECAAttention.py ECAAttention(kernel_size=3) (Conv1d with torch's default bias)",
        signature="ECAAttention(kernel_size=3)",
    ),
    Spelling(
        "ECA",
        ECAAttention,
        ("kernel_size",),
        {"kernel_size": 3},
        "k=3",
        "kernel_size",
        None,
        "YOLO forks' ECA(c1, c2, k_size=3) and ECA(channel, k_size=3) (Conv1d bias=False); some forks' ECA "
        "adapts k (write `paper`)",
        signature="ECA(c1, c2, k_size=3)",
    ),
    Spelling(
        "eca_layer",
        ECAAttention,
        ("kernel_size",),
        {"kernel_size": 3},
        "k=3",
        "kernel_size",
        None,
        "github BangguWu/ECANet models/eca_module.py eca_layer(channel, k_size=3) (Conv1d bias=False)",
        signature="eca_layer(channel, k_size=3)",
    ),
    Spelling(
        "ECALayer",
        ECAAttention,
        ("kernel_size",),
        {"kernel_size": 3},
        "k=3",
        "kernel_size",
        None,
        "ECALayer(channel, k_size=3) copies of eca_layer (Conv1d bias=False); some adapt k (write `paper`)",
        signature="ECALayer(channel, k_size=3)",
    ),
    Spelling(
        "CoordAtt",
        CoordAtt,
        ("reduction",),
        {},
        "official",
        None,
        None,
        f"{_HOU}; {_EXTERNAL} model/attention/CoordAttention.py (same class)",
        signature="CoordAtt(inp, oup, reduction=32)",
    ),
    Spelling(
        "CA",
        CoordAtt,
        ("reduction",),
        {},
        "official",
        None,
        None,
        f"{_YOLOAIR} models/Models/research.py CA(inp, oup, reduction=32) (houqb's class renamed)",
        signature="CA(inp, oup, reduction=32)",
    ),
    Spelling(
        "CoordAttention",
        CoordAtt,
        ("reduction",),
        {},
        "official",
        None,
        None,
        f"YOLOv5/YOLOv8 CA forks (houqb's class); {_EXTERNAL} names its file CoordAttention.py",
        signature="CoordAttention(inp, oup, reduction=32)",
    ),
    Spelling(
        "CoordinateAttention",
        CoordAtt,
        ("reduction",),
        {},
        "official",
        None,
        None,
        "CoordinateAttention(channel, reduction=32) copies of houqb's block (mip = max(8, C // r), h-swish)",
        signature="CoordinateAttention(channel, reduction=32)",
    ),
    Spelling(
        "ELA",
        ELA,
        ("variant",),
        {"variant": "B"},
        "ELA-B",
        None,
        None,
        f"{_ELA_COPIED}; a variant letter T/B/S/L (AttnYOLO, and forks' ELA(channel, phi)) is honoured",
        signature="ELA(channel, kernel_size=7)",
    ),
    Spelling(
        "EfficientLocalizationAttention",
        ELA,
        ("variant",),
        {"variant": "B"},
        "ELA-B",
        None,
        None,
        f"{_ELA_COPIED}, under the ELA authors' name (github Xuwei86/ELA_Code)",
        signature="EfficientLocalizationAttention(channel, kernel_size=7)",
    ),
)


def spelling_names() -> list[str]:
    """Every YAML row name the table reads, once each, in table order."""
    return list(dict.fromkeys(s.name for s in SPELLINGS))


def get_spelling(name: str, classic: bool = False) -> Spelling | None:
    """The table row for YAML name ``name`` in a classic (anchor-based YOLOv5) or an Ultralytics model; None if none."""
    family = "classic" if classic else "ultralytics"
    for spelling in SPELLINGS:
        if spelling.name == name and spelling.family in (None, family):
            return spelling
    return None


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


def yaml_convention(spelling: Spelling) -> str:
    """How a row under ``spelling`` writes its arguments, for docs/models.md (``c``: the channel count)."""
    if spelling.layer is CoordAtt:
        return "`[c]`, `[c, r]`, `[inp, oup]`, `[inp, oup, r]`"
    if spelling.layer is ELA:
        return "`[c]`, `[c, kernel 7 or 5]`, `[c, T/B/S/L]`"
    text = f"`[c, {', '.join(spelling.args)}]`"
    return text + (f"; a lone number other than c: {spelling.lone}" if spelling.lone else "")


def spelling_layer(spelling: Spelling, channels: int) -> nn.Module:
    """The layer a row under ``spelling`` with only a channel count builds, for ``channels`` input channels."""
    return spelling.layer(channels, **spelling.variant)


def spellings_markdown() -> str:
    """Every YAML row name and what it builds, as Markdown (docs/models.md), from :data:`SPELLINGS`."""
    lines = [
        "| YAML name | models | public class | YAML arguments | builds | parameters at C = 256 |",
        "|---|---|---|---|---|---:|",
    ]
    for spelling in SPELLINGS:
        models = {"classic": "classic YOLOv5", "ultralytics": "Ultralytics"}.get(spelling.family, "all")
        built = f"{spelling.layer.__name__}, {spelling.label}"
        params = sum(p.numel() for p in spelling_layer(spelling, 256).parameters())
        lines.append(
            f"| `{spelling.name}` | {models} | `{spelling.signature}` | {yaml_convention(spelling)} | {built} | "
            f"{params:,} |"
        )
    return "\n".join(lines)
