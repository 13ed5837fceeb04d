"""THE table of layer names of other projects: every YAML row name AttnYOLO builds, and what it builds.

A *spelling* is the module name a model YAML row writes (``SEAttention``, ``eca_layer``, ``CA``): the names public
YOLO forks and attention repositories give their classes, read as that public code reads them, besides AttnYOLO's own
class names. The parser (:mod:`attnyolo.integration.parser_forks`), the classic-checkpoint reader and docs/models.md
(:func:`spellings_markdown`) are derived from :data:`SPELLINGS`; the kinds themselves are in
:mod:`attnyolo.layers.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .cbam import CBAMAttention, UltralyticsCBAM
from .coord_attention import CoordAtt
from .eca import ECAAttention
from .efficient_local_attention import ELA
from .squeeze_excite import SEAttention


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
