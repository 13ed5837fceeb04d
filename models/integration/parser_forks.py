"""Rows other projects' model YAMLs write, read as those projects mean them (the YOLOv5/YOLOv7/YOLO11 forks).

* layer names of other projects (:data:`attnyolo.layers.spellings.SPELLINGS`: ``CA``, ``CoordAttention``, the ELA
  authors' ``EfficientLocalizationAttention``, ``SE``, ``eca_layer``, ``CBAMBlock``, ...) build the layer the class of
  that name builds, with its arguments read as that class takes them (:func:`resolve_spelling`); CoordAtt and ELA
  names become AttnYOLO's before the build (:func:`with_fork_rows`), and ELA rows under any name take a variant or the
  authors' kernel size (:func:`ela_args`);
* YOLOv5's anchor-based ``Detect, [nc, anchors]`` becomes :class:`~attnyolo.yolov5.head.YOLOv5Detect`, whose arguments
  are checked and resolved here (:func:`resolve_classic_args`);
* CoordAtt's ``[inp, oup(, reduction)]`` rows are told apart from ``[c, reduction]`` ones (:func:`coordatt_rest`).

:mod:`attnyolo.integration.parser` calls these while it builds a model.
"""

from __future__ import annotations

import inspect
import logging

from ..errors import ModelConfigError
from ..layers.coord_attention import CoordAtt
from ..layers.efficient_local_attention import ELA, ELA_VARIANTS
from ..layers.registry import own_kind_of
from ..layers.spellings import SPELLINGS, Spelling, get_spelling
from .names import yaml_label

LOGGER = logging.getLogger("attnyolo")


# The widely copied ``ELA(channel, kernel_size=7)`` and the ELA authors' ``EfficientLocalizationAttention`` (depthwise
# Conv1d, GroupNorm with 16 groups) are ELA-B at kernel 7; kernel 5 is nearest to ELA-T, whose GroupNorm has 32 groups
# (arXiv 2403.01123).
ELA_KERNEL_VARIANTS = {7: "B", 5: "T"}
# Names renamed to AttnYOLO's class before the build (their arguments are read by ela_args and coordatt_rest).
RENAMED: dict[str, str] = {s.name: s.layer.__name__ for s in SPELLINGS if s.layer in (CoordAtt, ELA)}
# The word that ends a row asking for the paper's form instead of the form the spelling implies.
PAPER = "paper"


def ela_args(d: dict, i: int, row: list) -> list:
    """The args of an ELA or ``EfficientLocalizationAttention`` row as ``[c, variant]`` (``c`` may be absent/null).

    Both names read the same arguments after the optional channel count: nothing (the name's default variant,
    :data:`ELA_DEFAULT_VARIANT`), a variant (phi: T, B, S or L, any case) or the ELA authors' kernel size (7 is ELA-B,
    5 ELA-T with a warning). Anything else is a :class:`ModelConfigError` naming the file and the row.
    """
    args, where = list(row[3]), f"{yaml_label(d)}, row {i} ({row[2]})"
    channel = [args.pop(0)] if args and (args[0] is None or is_number(args[0])) else []
    if not args:
        return [*(channel or [None]), get_spelling(row[2]).variant["variant"]]
    second, variants = args[0], ", ".join(ELA_VARIANTS)
    fix = f"Fix: [c, <variant>] with a variant of {variants}, or the ELA authors' kernel_size 7 (ELA-B) or 5 (ELA-T)."
    if len(args) > 1:
        raise ModelConfigError(f"{where}: args {row[3]!r} have {len(args) - 1} value(s) after the variant. {fix}")
    if isinstance(second, str):
        if second == PAPER:  # the ELA paper has four variants and no default: the kind ELA-T is AttnYOLO's first
            return [*(channel or [None]), own_kind_of(ELA).args[0]]
        if second.upper() not in ELA_VARIANTS:
            raise ModelConfigError(f"{where}: unknown ELA variant {second!r}. {fix}")
        return [*(channel or [None]), second.upper()]
    if isinstance(second, bool) or second not in ELA_KERNEL_VARIANTS:
        raise ModelConfigError(f"{where}: kernel_size {second!r} has no ELA variant. {fix}")
    variant = ELA_KERNEL_VARIANTS[second]
    if variant != "B":  # NOTE: not in the ELA authors' code, whose kernel-5 layer keeps GroupNorm(16)
        LOGGER.warning(
            f"{where}: kernel_size {second} is built as ELA-{variant} (kernel 5, GroupNorm with 32 groups); the "
            "authors' EfficientLocalizationAttention with kernel 5 uses 16 groups."
        )
    return [*(channel or [None]), variant]


def _classic_head_row(d: dict, i: int, row: list) -> list:
    """A YOLOv5 ``Detect, [nc, anchors]`` row as a ``YOLOv5Detect`` row; other rows unchanged."""
    name, args = row[2], row[3]
    if not isinstance(args, (list, tuple)) or len(args) < 2:
        return row
    if name == "Detect":
        return [row[0], row[1], "YOLOv5Detect", list(args)]
    if name == "Segment" and len(args) == 4 and (args[1] == "anchors" or isinstance(args[1], list)):
        raise ModelConfigError(
            f"{yaml_label(d)}, row {i} (Segment): a YOLOv5 segmentation head with anchors is not supported; AttnYOLO "
            "builds classic YOLOv5 detection models. Fix: use Detect, [nc, anchors], or Ultralytics' yolov5-seg."
        )
    return row


def with_fork_rows(d: dict) -> dict:
    """The model dict with other projects' CoordAtt and ELA names (:data:`RENAMED`) and classic YOLOv5 heads renamed.

    Rows the YOLOv5/YOLOv7/YOLO11 forks write: ``CA``/``CoordAttention``/``CoordinateAttention`` for CoordAtt, the
    ELA authors' ``EfficientLocalizationAttention`` and YOLOv5's ``Detect, [nc, anchors]``, which becomes
    :class:`~attnyolo.yolov5.head.YOLOv5Detect` (Ultralytics' own ``Detect`` is anchor-free). ELA rows, under either
    name, get ``[c, variant]`` args (:func:`ela_args`), so a bad variant or kernel size fails naming the file and row.
    """
    changed, out = False, {**d}
    for part in ("backbone", "head"):
        rows = []
        for j, row in enumerate(d.get(part) or []):
            i = j + (len(d.get("backbone") or []) if part == "head" else 0)
            if isinstance(row, (list, tuple)) and len(row) == 4 and isinstance(row[3], (list, tuple)):
                new = list(row)
                if row[2] in RENAMED:
                    new = [row[0], row[1], RENAMED[row[2]], list(row[3])]
                if RENAMED.get(row[2]) == "ELA":
                    new[3] = ela_args(d, i, row)
                new = _classic_head_row(d, i, new)
                changed |= new != list(row)
                row = new
            rows.append(row)
        out[part] = rows
    return out if changed else d


def is_number(value) -> bool:
    """An int or float YAML value (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coordatt_rest(d: dict, i: int, row: list, given: float, rest: list) -> list:
    """Read a CoordAtt row's numbers after the channel count as the forks mean them; return ``[reduction, ...]``.

    * ``[c]``, ``[c, r]`` (``r < c``) and ``[c, r, min_mip]``: channels, reduction ratio: this project's convention
      and the YOLOv5 forks' (their parse_model scales ``c`` like Conv and passes ``CoordAtt(c1, c, r)``);
    * ``[c, c]`` and ``[c, c, r]``: ``[inp, oup(, reduction)]``, the signature ``CoordAtt(inp, oup, reduction=32)``
      that YOLOv7/YOLO11 fork files write out. Ambiguous, so it warns: a YOLOv5 fork that scales CoordAtt like Conv
      reads the second number as the reduction ratio;
    * a second number larger than the first: ``oup != inp``, which attention cannot do (its output keeps the input's
      channels): an error naming both numbers.
    """
    if not rest or not is_number(rest[0]):
        return rest
    second, label = rest[0], yaml_label(d)
    if second == given:
        LOGGER.warning(
            f"{label}, row {i} ({row[2]}): {row[3]!r} is read as [inp, oup{', reduction' if len(rest) > 1 else ''}] "
            f"(CoordAtt(inp, oup, reduction=32) of the YOLOv7/YOLO11 forks), so the layer keeps {given} channels "
            f"(scaled) with reduction {rest[1] if len(rest) > 1 else 32}. A YOLOv5 fork that scales CoordAtt like Conv "
            f"would read {second} as the reduction ratio; write [{given}, <reduction>] if that is what you mean."
        )
        return rest[1:]
    if second > given:
        raise ModelConfigError(
            f"{label}, row {i} ({row[2]}): {row[3]!r} reads as [inp={given}, oup={second}], but attention keeps its "
            f"input channels, so oup must equal inp ({given} != {second}). Fix: [{given}, {given}] or just [{given}]; "
            f"a reduction ratio must be smaller than the channel count."
        )
    return rest


def resolve_classic_args(d: dict, i: int, row: list, channels: list[int]) -> list:
    """Turn a classic head's YAML args ``[nc, anchors]`` into ``[nc, anchors, channels]``.

    ``nc`` and ``anchors`` may name the top-level keys (as YOLOv5 YAMLs write them) or give the values. Anchors are a
    list per level of ``w, h`` pixel pairs, or an int: that many anchors per level, fitted by AutoAnchor before
    training (YOLOv5's convention).
    """
    label, name = yaml_label(d), row[2]
    args = list(row[3])
    if len(args) != 2:
        raise ModelConfigError(
            f"{label}, row {i} ({name}): args {args!r} should be [nc, anchors], as YOLOv5 writes its Detect row."
        )
    nc = d.get("nc") if args[0] == "nc" else args[0]
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 1:
        raise ModelConfigError(f"{label}, row {i} ({name}): the class count {nc!r} must be a positive integer.")
    anchors = d.get("anchors") if args[1] == "anchors" else args[1]
    example = "[[10,13, 16,30, 33,23], [30,61, 62,45, 59,119], [116,90, 156,198, 373,326]]"
    if anchors is None:
        raise ModelConfigError(
            f"{label}, row {i} ({name}): [nc, anchors] names the top-level `anchors:` key, which the file does not "
            f"have. Fix: add e.g. `anchors: {example}` (YOLOv5's P3-P5 anchors, pixels) or `anchors: 3` (3 per level, "
            "fitted by AutoAnchor)."
        )
    if isinstance(anchors, int) and not isinstance(anchors, bool):
        if anchors < 1:
            raise ModelConfigError(f"{label}, row {i} ({name}): anchors: {anchors} must be a positive anchor count.")
        return [nc, anchors, channels]
    ok = isinstance(anchors, (list, tuple)) and all(
        isinstance(level, (list, tuple))
        and level
        and len(level) % 2 == 0
        and all(is_number(v) and v > 0 for v in level)
        for level in anchors
    )
    if not ok or len({len(level) for level in anchors}) != 1:
        raise ModelConfigError(
            f"{label}, row {i} ({name}): anchors {anchors!r} should be one list of w,h pixel pairs per level, the "
            f"same number on every level, e.g. {example}."
        )
    if len(anchors) != len(channels):
        raise ModelConfigError(
            f"{label}, row {i} ({name}): {len(anchors)} anchor levels but the head reads {len(channels)} rows "
            f"{row[0]!r}. Fix: one anchor list per input row."
        )
    return [nc, [list(level) for level in anchors], channels]


def _plausible(argument: str, value, layer: type, c_in: int) -> bool:
    """Whether a lone YAML number can be ``argument`` (a reduction ratio or a kernel size) of ``layer`` at ``c_in``.

    Reductions in the public YAMLs are 2 to 64, kernel sizes small and odd (Ultralytics' CBAM takes 3 or 7); channel
    counts are multiples of 8 from 16 up, so only 16, 32 and 64 could be either, and those are decided by the row's
    real input channels first.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    if argument == "reduction":
        return 1 <= value <= 64 and value <= c_in
    if argument == "kernel_size":
        return value in (3, 7) if layer.__name__ == "UltralyticsCBAM" else value % 2 == 1 and 1 <= value <= 15
    return False


def _positional(layer: type, c_in: int, kwargs: dict) -> list:
    """``[c_in, ...]``: the constructor's arguments in its own order (parse_model calls ``layer(*args)``)."""
    bound = inspect.signature(layer).bind(c_in, **kwargs)
    bound.apply_defaults()
    return list(bound.args)


def resolve_spelling(d: dict, i: int, row: list, c_in: int, spelling: Spelling, given_ok) -> list:
    """Turn a row written under ``spelling`` into ``[class name, constructor args]`` as that spelling's class reads it.

    The first number is the channel count when it equals the row's real input channels ``c_in`` (at any scale) or
    when ``given_ok(value)`` says it scales to them (a Conv-style unscaled count); else, when the spelling reads a lone
    number as another argument (``SEAttention, [16]`` is reduction 16) and the value fits it, it is that argument,
    with one warning line; else the row is refused naming both readings. When the channel reading is taken but the
    other would build a different layer, a warning says how to write the other. The numbers after the channel count
    fill ``spelling.args`` in order; a final ``paper`` builds the paper's form instead of the spelling's variant.

    Raises:
        ModelConfigError: A channel count that fits neither reading, or more numbers than the spelling takes.
    """
    label, name, layer = yaml_label(d), row[2], spelling.layer
    where = f"{label}, row {i} ({name})"
    args = list(row[3])
    variant = dict(spelling.variant)
    if args and args[-1] == PAPER:
        args.pop()
        kind = own_kind_of(layer)
        layer = kind.layer
        variant = dict(zip(list(inspect.signature(layer).parameters)[1:], kind.args))
    first = args[0] if args else None
    if args and first is None:
        args.pop(0)
    elif args and isinstance(first, (int, float)) and not isinstance(first, bool):
        lone = spelling.lone
        if first == c_in or given_ok(first):
            args.pop(0)
            if lone and len(args) == 0 and _plausible(lone, first, layer, c_in):
                other = _positional(layer, c_in, {**variant, lone: first})
                if other != _positional(layer, c_in, variant):
                    LOGGER.warning(
                        f"{where}: {row[3]!r} is read as the channel count ({c_in} channels enter this row). To mean "
                        f"{lone} {first}, write [null, {first}]."
                    )
        elif lone and _plausible(lone, first, layer, c_in):
            LOGGER.warning(
                f"{where}: {row[3]!r} is read as {lone} {first} of {spelling.signature}, not as channels ({c_in} "
                f"enter this row). To give channels, write [{c_in}, ...] or [null, ...]."
            )
        else:
            also = f", nor a {lone} {name} takes" if lone else ""
            raise ModelConfigError(
                f"{where}: {first} is not the {c_in} channels entering this row (as written, or width-scaled like "
                f"Conv){also}. Fix: write {c_in}, the unscaled count of the row that feeds it, or null to infer it."
            )
    if len(args) > len(spelling.args):
        raise ModelConfigError(
            f"{where}: args {row[3]!r} have {len(args)} value(s) after the channel count; {name} takes "
            f"{len(spelling.args)} ({', '.join(spelling.args)}). Fix: e.g. [{c_in}, "
            f"{', '.join(f'<{a}>' for a in spelling.args)}]."
        )
    kwargs = {**variant, **dict(zip(spelling.args, args))}
    try:
        return [layer.__name__, _positional(layer, c_in, kwargs)]
    except TypeError as error:  # an argument the class does not take: the table's fault, named plainly
        raise ModelConfigError(f"{where}: {error}") from None
