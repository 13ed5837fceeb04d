"""How AttnYOLO's rows get built by Ultralytics' ``parse_model``: channel inference, attention kinds, multi-row heads.

Ultralytics' ``parse_model`` looks a YAML row's module name up in the globals of ``ultralytics.nn.tasks`` and gives
modules it does not know their YAML arguments verbatim (no input-channel count, no width scaling). The wrapper here
builds a model with our rows in two passes (the first with pass-through probes in their place: identical channel
bookkeeping, since unknown modules keep their input channels; a tiny forward then records the channels entering every
probe) and builds the network for real with those channels as each layer's first argument. This depends only on the
parser's public behaviour and costs one extra build.

More things happen here, each in its own function:

* the top-level ``activation:`` is parsed, never evaluated, and set as Ultralytics sets it
  (:mod:`attnyolo.integration.activation`);
* ``Attention`` rows take the layer the top-level ``attention:`` key names (:func:`_apply_attention_kind`);
* rows written for the YOLOv5/YOLOv7/YOLO11 forks build unchanged (:mod:`attnyolo.integration.parser_forks`): other
  projects' layer names (``CA``, ``CoordAttention``, ``EfficientLocalizationAttention``), CoordAtt's
  ``[inp, oup(, r)]`` arguments, and YOLOv5's anchor-based ``Detect, [nc, anchors]``, which becomes
  :class:`~attnyolo.yolov5.head.YOLOv5Detect`;
* the ``YOLOXDetect`` and ``YOLOv5Detect`` heads read several rows, which the parser allows only for its own heads:
  the head row is built with ``from: -1`` and the input channels found by the probe pass, then rewired to its real
  rows (:func:`_resolve_head_args`, :func:`_rewire_head`);
* a top-level ``depthwise:`` key makes the dense 3x3 convs depthwise-separable after the build, as YOLOX-Nano does
  (:func:`_wants_depthwise`, :func:`_apply_depthwise`);
* ``Bottleneck`` and ``BottleneckCSP`` rows of a classic YOLOv5 model build YOLOv5's blocks
  (:mod:`attnyolo.yolov5.blocks`, :func:`_classic_blocks`);
* an AttnYOLO layer whose constructor refuses its arguments fails naming the file and the row (:func:`_layer_error`).

Slightly over the project's ~400 lines on purpose: these steps share the two-pass build and its row bookkeeping; the
other projects' rows already live in ``parser_forks.py`` and the activation in ``activation.py``.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import importlib
import threading

import torch
from torch import nn

from ..errors import ModelConfigError, first_line
from ..layers.coord_attention import CoordAtt
from ..layers.registry import get_kind, get_spelling, kind_names, layer_classes, spelling_names
from ..yolov5.blocks import CLASSIC_BLOCKS
from ..yolov5.head import YOLOv5Detect
from ..yolox.blocks import make_depthwise_separable
from ..yolox.head import YOLOX_HEAD_WIDTH, YOLOXDetect
from .activation import default_activation, parse_activation  # noqa: F401  (parse_activation: public API here)
from .names import with_yolox_scale, yaml_label
from .parser_forks import RENAMED, coordatt_rest, is_number, resolve_classic_args, resolve_spelling, with_fork_rows

ATTENTION_ROW = "Attention"  # placeholder module name in placement YAMLs, replaced by the chosen kind

# YAML name -> detection heads that read several rows and get their input channels from the probe pass.
HEADS: dict[str, type[nn.Module]] = {"YOLOXDetect": YOLOXDetect, "YOLOv5Detect": YOLOv5Detect}

PROBE_NAME = "AttnYOLOChannelProbe"
_PROBE_IMGSZ = 64  # smallest square that survives stride 32 with a 2x2 map; rows beyond our last one are not run
# Deeper pyramids (YOLOv5's P6/P7 models, strides 64 and 128) meet 1x1 maps at 64 px, which an upsample-and-concat
# cannot join: the probe is retried at twice the size, up to this (a stride-512 pyramid).
_PROBE_MAX_IMGSZ = 1024


class ChannelProbe(nn.Module):
    """Pass-through stand-in for an attention row during the channel-discovery build; records its input channels."""

    def __init__(self, *args):
        super().__init__()
        self.c1 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Record the channel count of ``x`` and return it unchanged."""
        self.c1 = int(x.shape[1])
        return x


def _tasks():
    """Return the ``ultralytics.nn.tasks`` module, the namespace parse_model resolves YAML module names in."""
    return importlib.import_module("ultralytics.nn.tasks")


def _module_exists(name: str, tasks) -> bool:
    """Whether ``parse_model`` resolves ``name`` the way it looks names up, to a layer class.

    Only ``nn.Module`` subclasses: the parser calls what it finds with the row's arguments, and its namespace also
    holds functions (``torch_safe_load``, ``check_requirements``, ...) that a YAML row must not be able to call.
    """
    if name.startswith("nn."):
        found = getattr(torch.nn, name[3:], None)
    elif name.startswith("torchvision.ops."):
        found = getattr(importlib.import_module("torchvision").ops, name[16:], None)
    else:
        found = vars(tasks).get(name)
    return isinstance(found, type) and issubclass(found, nn.Module)


def known_module_names() -> list[str]:
    """All layer names a model YAML row may use: ours (and their aliases) plus every ``nn.Module`` the parser knows."""
    tasks = _tasks()
    names = {k for k, v in vars(tasks).items() if isinstance(v, type) and issubclass(v, nn.Module)}
    names.discard(PROBE_NAME)
    return sorted(names | set(layer_classes()) | set(spelling_names()))


# At most this many names in an unknown-layer hint: the message stays one line a person reads.
_MAX_HINTS = 5


def close_layer_names(name: str) -> list[str]:
    """Up to five layer names close to ``name`` (case-insensitive): AttnYOLO's layers and their spellings first.

    Then Ultralytics' layers (classes of ``ultralytics.nn.modules`` in the parser's namespace). Model classes the
    parser's namespace also holds (``BaseModel``, ``DetectionModel``, ``Ensemble``) are not layers and never offered.
    """
    tasks = _tasks()
    ours = list(dict.fromkeys([*spelling_names(), *layer_classes()]))
    theirs = sorted(
        k
        for k, v in vars(tasks).items()
        if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__.startswith("ultralytics.nn.modules")
    )
    found: list[str] = []
    for pool in (ours, [n for n in theirs if n not in ours]):
        if len(found) == _MAX_HINTS:
            break
        lower = {n.lower(): n for n in pool}
        matches = difflib.get_close_matches(str(name).lower(), lower, n=_MAX_HINTS - len(found), cutoff=0.6)
        found += [lower[m] for m in matches]
    return found[:_MAX_HINTS]


def _check_rows(d: dict) -> list[list]:
    """Validate the shape and module names of every row; return backbone + head rows."""
    label = yaml_label(d)
    rows = list(d.get("backbone") or []) + list(d.get("head") or [])
    if not rows:
        raise ModelConfigError(
            f"{label}: no 'backbone'/'head' rows found. A model YAML lists rows [from, n, module, args]."
        )
    tasks = _tasks()
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4 or not isinstance(row[3], (list, tuple)):
            raise ModelConfigError(
                f"{label}, row {i}: {row!r} is not [from, number, module, args]. Fix the row to have 4 fields, "
                f"args being a list, e.g. [-1, 1, CoordAtt, [256]]."
            )
        name = row[2]
        if name == ATTENTION_ROW:
            continue  # resolved from the top-level `attention:` key by _apply_attention_kind
        if not isinstance(name, str) or not (name in spelling_names() or _module_exists(name, tasks)):
            close = close_layer_names(name)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ModelConfigError(
                f"{label}, row {i}: unknown layer {name!r}.{hint} Fix: correct the row's layer name; docs/models.md "
                "lists the attention layer names AttnYOLO reads."
            )
    return rows


def _positive_number(value) -> bool:
    """A number > 0 (not a bool)."""
    return is_number(value) and value > 0


def _is_index(value) -> bool:
    """An int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


# Rows whose modules take text arguments: torch.nn's (nn.Upsample's mode), TorchVision's model and weights names.
_TEXT_ARG_MODULES = ("nn.", "torchvision.", "TorchVision")
# Our heads check their own arguments, with messages about what they mean (the classic head names a missing
# top-level `anchors:` key, for one).
_OWN_HEADS = ("YOLOv5Detect", "YOLOXDetect")


def _check_values(d: dict, rows: list[list]) -> None:
    """Check the values the parser computes with before it builds: ``nc``, multiples, scales, each row's fields.

    That is ``nc``, ``depth_multiple``/``width_multiple``, ``scales``, and each row's ``from``, ``number`` and text
    arguments. Ultralytics would fail on a wrong type deep inside the build (``'>' not supported between 'str' and
    'int'``, ``list indices must be integers``) or in the first forward pass (a 400-character ``conv2d()`` dump).

    Raises:
        ModelConfigError: One line naming the file, the key or row, the value and the fix.
    """
    label = yaml_label(d)
    nc = d.get("nc")
    if "nc" in d and not (_is_index(nc) and nc >= 1):
        raise ModelConfigError(
            f"{label}: nc: {nc!r} is not a number of classes. Fix: write a whole number, e.g. nc: 80."
        )
    for key in ("depth_multiple", "width_multiple"):
        if key in d and not _positive_number(d[key]):
            raise ModelConfigError(f"{label}: {key}: {d[key]!r} is not a positive number. Fix: e.g. {key}: 0.5.")
    scales = d.get("scales")
    if scales is not None and not isinstance(scales, dict):
        raise ModelConfigError(
            f"{label}: scales: {scales!r} is not a mapping. Fix: e.g. scales: {{n: [0.33, 0.25, 1024]}}."
        )
    for scale, values in (scales or {}).items():
        if not (isinstance(values, (list, tuple)) and len(values) == 3 and all(map(_positive_number, values))):
            raise ModelConfigError(
                f"{label}: scales: {scale}: {values!r} is not [depth, width, max_channels] (3 positive numbers). Fix: "
                f"e.g. {scale}: [0.33, 0.25, 1024]."
            )
    for i, (f, n, name, args) in enumerate(rows):
        if not (_is_index(f) or (isinstance(f, list) and f and all(map(_is_index, f)))):
            raise ModelConfigError(
                f"{label}, row {i} ({name}): from={f!r} is not a row index. Fix: write -1 (the previous row), a row "
                "number, or a list of them, e.g. [-1, 6]."
            )
        if not (_is_index(n) and n >= 1):
            raise ModelConfigError(
                f"{label}, row {i} ({name}): number={n!r} is not a repeat count. Fix: write a whole number, e.g. 3."
            )
        if str(name).startswith(_TEXT_ARG_MODULES) or name in (*layer_classes(), *spelling_names(), *_OWN_HEADS):
            continue  # text is an argument of theirs; our layers and heads check their own arguments
        for k, arg in enumerate(args):
            if isinstance(arg, str) and arg not in d and not _literal(arg):
                raise ModelConfigError(
                    f"{label}, row {i} ({name}): argument {k + 1}, {arg!r}, is text, not a value nor the name of a "
                    "top-level key the parser reads (such as nc). Fix: write the number or list it stands for."
                )


def _literal(text: str) -> bool:
    """Whether the parser reads ``text`` as a Python literal (it runs ast.literal_eval on text arguments)."""
    import ast

    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _apply_attention_kind(d: dict, rows: list[list]) -> list[list]:
    """Replace ``Attention`` placeholder rows by the layer the top-level ``attention:`` key names."""
    if not any(row[2] == ATTENTION_ROW for row in rows):
        return rows
    kind = d.get("attention")
    if kind not in kind_names():
        close = difflib.get_close_matches(str(kind), kind_names(), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelConfigError(
            f"{yaml_label(d)}: `attention: {kind}` is not an attention kind.{hint} The file has `Attention` rows, "
            f"so set the top-level key to one of: {', '.join(kind_names())}."
        )
    chosen = get_kind(kind)
    layer, kind_args = chosen.yaml_name, list(chosen.args)
    rows = copy.deepcopy(rows)
    for row in rows:
        if row[2] == ATTENTION_ROW:
            row[2], row[3] = layer, [*row[3], *kind_args]
    return rows


def _scale_params(d: dict) -> tuple[float, float]:
    """Return (width multiple, max_channels) the way parse_model chooses them for this dict."""
    scales, scale = d.get("scales"), d.get("scale")
    if scales:
        scale = scale if scale in scales else next(iter(scales))
        _, width, max_channels = scales[scale]
        return width, max_channels
    return d.get("width_multiple", 1.0), float("inf")


def _resolve_args(d: dict, i: int, row: list, c_in: int, own: bool = True, classic: bool = False) -> list:
    """Turn an attention row into ``[class name, constructor args [c1, *layer_args]]``.

    The first YAML arg, when it is a number, is the layer's channel count written as for ``Conv`` (unscaled); it is
    scaled and clipped exactly as the parser does for ``Conv`` and must agree with the inferred input channels, or be
    those channels as written (a fork whose parser passes attention rows their real channels). It may be omitted
    (``[]``) or ``null`` to rely on inference alone. Rows the ``attention:`` key filled (``own``) build the kind's
    paper form; other rows named as public code names a layer (:data:`~attnyolo.layers.registry.SPELLINGS`) build what
    that code builds (:func:`~attnyolo.integration.parser_forks.resolve_spelling`).
    """
    from ultralytics.utils.ops import make_divisible

    width, max_channels = _scale_params(d)

    def scales_to_c_in(given) -> bool:
        return make_divisible(min(given, max_channels) * width, 8) == c_in

    spelling = None if own or row[2] in RENAMED.values() else get_spelling(row[2], classic)
    if spelling is not None:
        return resolve_spelling(d, i, row, c_in, spelling, scales_to_c_in)
    args = list(row[3])
    if args and (args[0] is None or is_number(args[0])):
        given = args.pop(0)
        if given is not None:
            expected = make_divisible(min(given, max_channels) * width, 8)
            if expected != c_in and given != c_in:
                raise ModelConfigError(
                    f"{yaml_label(d)}, row {i} ({row[2]}): the YAML channel argument {given} scales to {expected} "
                    f"channels at this scale, but the layer feeding this row outputs {c_in} channels. Fix: write the "
                    f"same unscaled channel count as the row that feeds it, or write null (or omit it) to infer it."
                )
            if layer_classes().get(row[2]) is CoordAtt:
                args = coordatt_rest(d, i, row, given, args)
    return [row[2], [c_in, *args]]


def _probe_output_channels(seq: nn.Sequential, ch: int, last: int) -> list[int]:
    """Run a tiny forward pass through rows 0..``last``; return each row's output channels (probes record inputs).

    The pass starts at :data:`_PROBE_IMGSZ` pixels. When it fails after a row's map had shrunk to a single pixel (a
    pyramid deeper than stride 32, whose upsampled 1x1 map cannot join the next), it is run again at twice the size,
    up to :data:`_PROBE_MAX_IMGSZ`; any other failure is the model's own and is raised at once.
    """
    imgsz, was_training = _PROBE_IMGSZ, seq.training
    seq.eval()  # BatchNorm on a 1-image batch with 1x1 maps is only defined in eval mode
    try:
        while True:
            outputs = []
            try:
                _probe_forward(seq, ch, last, imgsz, outputs)
                break
            except RuntimeError:
                bottomed_out = any(isinstance(y, torch.Tensor) and min(y.shape[2:], default=2) == 1 for y in outputs)
                if not bottomed_out or imgsz >= _PROBE_MAX_IMGSZ:
                    raise
                imgsz *= 2
    finally:
        seq.train(was_training)
    return [int(y.shape[1]) if isinstance(y, torch.Tensor) else 0 for y in outputs]


def _probe_forward(seq: nn.Sequential, ch: int, last: int, imgsz: int, outputs: list) -> None:
    """Append the outputs of rows 0..``last`` for a zero image of ``imgsz`` pixels to ``outputs``."""
    x = torch.zeros(1, ch, imgsz, imgsz)
    with torch.no_grad():
        for m in seq[: last + 1]:
            if m.f != -1:  # route inputs the way BaseModel does: an int index or a list of indices (-1 = previous)
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x)


def _effective_scale(d: dict) -> str | None:
    """The scale parse_model builds for this dict: ``d['scale']`` if it is a key of ``scales``, else the first key."""
    scales, scale = d.get("scales"), d.get("scale")
    if not scales:
        return None
    return scale if scale in scales else next(iter(scales))


def _head_row(d: dict, rows: list[list]) -> int | None:
    """Index of the multi-row head (:data:`HEADS`), checked to be the single last row reading a list of rows.

    None without one. The heads are YOLOX's and classic YOLOv5's.
    """
    heads = [i for i, row in enumerate(rows) if row[2] in HEADS]
    if not heads:
        return None
    i, label = heads[0], yaml_label(d)
    name = rows[i][2]
    if heads != [len(rows) - 1]:
        raise ModelConfigError(
            f"{label}, row {i} ({name}): a {name} row must appear once, as the last row, because Ultralytics' "
            f"DetectionModel treats the last layer as the head. Fix: move it to the end of `head:`."
        )
    f, n = rows[i][0], rows[i][1]
    if not (isinstance(f, list) and f and all(isinstance(j, int) and not isinstance(j, bool) for j in f)) or n != 1:
        raise ModelConfigError(
            f"{label}, row {i} ({name}): got from={f!r}, number={n!r}. The head reads one row per pyramid level and "
            f"is not repeated. Fix: e.g. [[17, 20, 23], 1, {name}, {_HEAD_EXAMPLE_ARGS.get(name, '[nc]')}]."
        )
    return i


_HEAD_EXAMPLE_ARGS = {"YOLOXDetect": "[nc, 256]", "YOLOv5Detect": "[nc, anchors]"}


def _resolve_head_args(d: dict, i: int, row: list, channels: list[int]) -> list:
    """The constructor arguments of a multi-row head: :func:`_resolve_yolox_args` or :func:`resolve_classic_args`."""
    if row[2] == "YOLOv5Detect":
        return resolve_classic_args(d, i, row, channels)
    return _resolve_yolox_args(d, i, row, channels)


def _resolve_yolox_args(d: dict, i: int, row: list, channels: list[int]) -> list:
    """Turn a head row's YAML args ``[nc]`` or ``[nc, hidden]`` into ``[nc, scaled hidden, channels]``.

    ``hidden`` is written unscaled (YOLOX's 256) and scaled and clipped like a Conv row's channels, which equals
    YOLOX's ``int(256 * width)`` at every official width.
    """
    from ultralytics.utils.ops import make_divisible

    args = list(row[3])
    if not 1 <= len(args) <= 2:
        raise ModelConfigError(
            f"{yaml_label(d)}, row {i} ({row[2]}): args {args!r} should be [nc] or [nc, hidden width], e.g. [nc, 256]."
        )
    hidden = args[1] if len(args) == 2 else YOLOX_HEAD_WIDTH
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ModelConfigError(
            f"{yaml_label(d)}, row {i} ({row[2]}): hidden width {hidden!r} must be a positive integer, e.g. 256."
        )
    width, max_channels = _scale_params(d)
    return [args[0], make_divisible(min(hidden, max_channels) * width, 8), channels]


def _rewire_head(seq: nn.Sequential, save: list[int], i: int, f: list[int]) -> tuple[nn.Sequential, list[int]]:
    """Point the head built with ``from: -1`` back at its real input rows ``f`` and keep those rows' outputs.

    Ultralytics' forward routes each layer's input by its ``f`` attribute and keeps the outputs of the rows listed in
    ``save``: setting both is what the parser itself does for a multi-input head.
    """
    seq[i].f = f
    return seq, sorted(set(save) | {j % i for j in f if j != -1})


@contextlib.contextmanager
def _classic_blocks():
    """While parsing a classic YOLOv5 model, ``Bottleneck``/``BottleneckCSP`` rows resolve to YOLOv5's blocks.

    parse_model looks a row's module name up in the globals of ``ultralytics.nn.tasks`` and builds the sets of
    modules whose channels it scales (``base_modules``) and whose repeats it passes on (``repeat_modules``) from the
    same globals on every call. Naming YOLOv5's blocks there for the duration of one parse gives them exactly the
    parser's treatment of the blocks they subclass (channel scaling, ``n`` as an argument), which renaming the rows
    would not. The names are restored afterwards, as parse_model itself restores ``Conv.default_act``.
    """
    tasks = _tasks()
    saved = {name: vars(tasks)[name] for name in CLASSIC_BLOCKS}
    try:
        for name, block in CLASSIC_BLOCKS.items():
            setattr(tasks, name, block)
        yield
    finally:
        for name, block in saved.items():
            setattr(tasks, name, block)


def _with_classic_blocks(original):
    """``original`` (parse_model) run inside :func:`_classic_blocks`."""

    def parse(d, ch, verbose=True):
        with _classic_blocks():
            return original(d, ch, verbose)

    return parse


def _layer_error(d: dict, rows: list[list], ours: list[int]) -> ModelConfigError | None:
    """The first of our rows whose layer refuses its resolved arguments, as a one-line error; None if all build.

    Called only after a build failed: the layers' own messages (``ELA: unknown variant ...``) do not know the file or
    the row, so each of our rows is built once more on its own to find the one that failed.
    """
    for i in ours:
        name, args = rows[i][2], rows[i][3]
        try:
            layer_classes()[name](*args)
        except (ValueError, TypeError) as error:
            return ModelConfigError(
                f"{yaml_label(d)}, row {i} ({name}): {first_line(error)} Fix: correct the row's arguments "
                f"{args[1:]!r} (after the channel count); docs/layers.md lists each layer's."
            )
    return None


def _wants_depthwise(d: dict) -> bool:
    """Read the top-level ``depthwise:`` key: true/false, or the list of scales built depthwise (e.g. ``[n]``)."""
    value = d.get("depthwise", False)
    if isinstance(value, bool):
        return value
    scales = d.get("scales") or {}
    if isinstance(value, (list, tuple)) and all(v in scales for v in value):
        return _effective_scale(d) in value
    raise ModelConfigError(
        f"{yaml_label(d)}: `depthwise: {value!r}` should be true, false, or a list of scales from `scales:` "
        f"({', '.join(map(str, scales)) or 'none defined'}), e.g. `depthwise: [n]` for YOLOX-Nano."
    )


def _apply_depthwise(seq: nn.Sequential, verbose: bool) -> None:
    """Make the built network's dense 3x3 convs depthwise-separable (YOLOX-Nano) and refresh the rows' counts."""
    from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

    before = sum(p.numel() for p in seq.parameters())
    replaced = make_depthwise_separable(seq)
    for m in seq:
        m.np = sum(p.numel() for p in m.parameters())  # the parser's per-row count, now of the separable model
    if verbose:
        after = sum(p.numel() for p in seq.parameters())
        ULTRALYTICS_LOGGER.info(
            f"depthwise: {replaced} dense 3x3 convs made depthwise 3x3 + pointwise 1x1 (Focus stem kept), "
            f"{before:,} -> {after:,} parameters; the rows above show the dense convs"
        )


# One parse at a time: a parse may set process-wide names for its duration (Conv.default_act for `activation:`, the
# classic YOLOv5 blocks in ultralytics.nn.tasks), which a parse in another thread must neither see nor restore out of
# order. Re-entrant: a parse builds its rows in two passes through the same function.
_PARSE_LOCK = threading.RLock()


def wrap_parse_model(original):
    """Return a parse_model that gives our rows their inferred input channels, and checks every row's name."""

    @functools.wraps(original)
    def parse_model(d, ch, verbose=True):
        """Build a model dict like Ultralytics' parse_model, with AttnYOLO layers given their input channels."""
        with _PARSE_LOCK, default_activation(with_fork_rows(with_yolox_scale(d)), verbose) as d:
            return _parse_model(original, d, ch, verbose)

    parse_model._attnyolo_original = original
    return parse_model


def _parse_model(original, d: dict, ch: int, verbose: bool):
    """The body of the wrapped parse_model (:func:`wrap_parse_model`), for a dict whose activation is already set."""
    rows = _check_rows(d)
    _check_values(d, rows)
    own = {i for i, row in enumerate(rows) if row[2] == ATTENTION_ROW}  # the kinds' paper forms
    rows = _apply_attention_kind(d, rows)
    ours = [i for i, row in enumerate(rows) if row[2] in layer_classes() or row[2] in spelling_names()]
    head = _head_row(d, rows)
    depthwise = _wants_depthwise(d)
    if not ours and head is None and not depthwise:
        return original(d, ch, verbose)  # stock models: untouched

    n_backbone = len(d.get("backbone") or [])
    if head is not None and rows[head][2] == "YOLOv5Detect" and any(row[2] in CLASSIC_BLOCKS for row in rows):
        original = _with_classic_blocks(original)

    def with_rows(new_rows):
        """A copy of the model dict with ``new_rows`` as its backbone and head."""
        out = copy.deepcopy(d)
        out["backbone"], out["head"] = new_rows[:n_backbone], new_rows[n_backbone:]
        return out

    if ours or head is not None:
        probe_rows = copy.deepcopy(rows)
        for i in ours:
            probe_rows[i][2], probe_rows[i][3] = PROBE_NAME, []
        if head is not None:  # the parser cannot build an unknown module from several rows: probe the inputs
            probe_rows[head] = [-1, 1, PROBE_NAME, []]
        probe_seq, _ = original(with_rows(probe_rows), ch, False)
        c_out = _probe_output_channels(probe_seq, ch, max(ours + ([head - 1] if head is not None else [])))
        c_in = {i: (probe_seq[i][0] if isinstance(probe_seq[i], nn.Sequential) else probe_seq[i]).c1 for i in ours}
        del probe_seq
        classic = head is not None and rows[head][2] == "YOLOv5Detect"
        for i in ours:
            rows[i][2], rows[i][3] = _resolve_args(d, i, rows[i], c_in[i], i in own, classic)
    head_from = None
    if head is not None:
        head_from = rows[head][0]
        channels = [c_out[j % head] for j in head_from]
        rows[head] = [-1, 1, rows[head][2], _resolve_head_args(d, head, rows[head], channels)]

    try:
        seq, save = original(with_rows(rows), ch, verbose)
    except (ValueError, TypeError):
        culprit = _layer_error(d, rows, ours)
        if culprit is None:
            raise
        raise culprit from None
    if head is not None:
        seq, save = _rewire_head(seq, save, head, head_from)
        if verbose:
            from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

            ULTRALYTICS_LOGGER.info(f"{head:>3}{head_from!s:>20}  {rows[head][2]} reads these rows (-1 above)")
    if depthwise:
        _apply_depthwise(seq, verbose)
    return seq, save
