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
  ``[inp, oup(, r)]`` arguments, and YOLOv5's anchor-based ``Detect, [nc, anchors]``, which becomes the classic
  ``YOLOv5Detect`` head;
* the heads families register (:data:`attnyolo.integration.plugins.HEADS`: YOLOX's and classic YOLOv5's) read several
  rows, which the parser allows only for its own heads: the head row is built with ``from: -1`` and the input
  channels found by the probe pass, then rewired to its real rows (:func:`_head_row`, :func:`_rewire_head`);
* a registered top-level key (:data:`~attnyolo.integration.plugins.MODEL_KEYS`, e.g. YOLOX-Nano's ``depthwise:``)
  changes the network after the build (:func:`_wanted_keys`, :func:`_apply_model_key`);
* rows of a model with a head that names its own blocks (classic YOLOv5's ``Bottleneck``/``BottleneckCSP``) build
  those blocks (:func:`_head_blocks`);
* an AttnYOLO layer whose constructor refuses its arguments fails naming the file and the row (:func:`_layer_error`).

The row checks before the build live in :mod:`.parser_checks`, other projects' rows in :mod:`.parser_forks` and the
activation in :mod:`.activation`.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import threading

import torch
from torch import nn
from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER
from ultralytics.utils.ops import make_divisible

from ..errors import ModelConfigError, first_line
from ..layers.coord_attention import CoordAtt
from ..layers.registry import get_kind, kind_names, layer_classes
from ..layers.spellings import get_spelling, spelling_names
from .activation import default_activation, parse_activation  # noqa: F401  (parse_activation: public API here)
from .names import with_yolox_scale, yaml_label
from .parser_checks import ATTENTION_ROW, PROBE_NAME, _tasks, check_rows, check_values
from .parser_forks import RENAMED, coordatt_rest, is_number, resolve_spelling, with_fork_rows
from .plugins import HEADS, MODEL_KEYS, Head

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


def scale_params(d: dict) -> tuple[float, float]:
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
    paper form; other rows named as public code names a layer (:data:`~attnyolo.layers.spellings.SPELLINGS`) build what
    that code builds (:func:`~attnyolo.integration.parser_forks.resolve_spelling`).
    """
    width, max_channels = scale_params(d)

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
    """Index of the multi-row head (a registered :data:`~attnyolo.integration.plugins.HEADS` entry), checked.

    It must be the single last row, reading a list of rows. None without one.
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
            f"is not repeated. Fix: e.g. [[17, 20, 23], 1, {name}, {HEADS[name].example_args}]."
        )
    return i


def _rewire_head(seq: nn.Sequential, save: list[int], i: int, f: list[int]) -> tuple[nn.Sequential, list[int]]:
    """Point the head built with ``from: -1`` back at its real input rows ``f`` and keep those rows' outputs.

    Ultralytics' forward routes each layer's input by its ``f`` attribute and keeps the outputs of the rows listed in
    ``save``: setting both is what the parser itself does for a multi-input head.
    """
    seq[i].f = f
    return seq, sorted(set(save) | {j % i for j in f if j != -1})


@contextlib.contextmanager
def _head_blocks(blocks: dict[str, type[nn.Module]]):
    """While one parse runs, the YAML module names in ``blocks`` resolve to the head's family's blocks.

    parse_model looks a row's module name up in the globals of ``ultralytics.nn.tasks`` and builds the sets of
    modules whose channels it scales (``base_modules``) and whose repeats it passes on (``repeat_modules``) from the
    same globals on every call. Naming a family's blocks there for the duration of one parse (classic YOLOv5's
    ``Bottleneck``/``BottleneckCSP``) gives them exactly the parser's treatment of the blocks they subclass (channel
    scaling, ``n`` as an argument), which renaming the rows would not. The names are restored afterwards, as
    parse_model itself restores ``Conv.default_act``.
    """
    tasks = _tasks()
    saved = {name: vars(tasks)[name] for name in blocks}
    try:
        for name, block in blocks.items():
            setattr(tasks, name, block)
        yield
    finally:
        for name, block in saved.items():
            setattr(tasks, name, block)


def _with_head_blocks(original, blocks: dict[str, type[nn.Module]]):
    """``original`` (parse_model) run inside :func:`_head_blocks`."""

    def parse(d, ch, verbose=True):
        with _head_blocks(blocks):
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


def _wants(d: dict, key: str, example: str) -> bool:
    """Read a registered top-level key (``depthwise:``): true/false, or the list of scales it applies to (``[n]``)."""
    value = d.get(key, False)
    if isinstance(value, bool):
        return value
    scales = d.get("scales") or {}
    if isinstance(value, (list, tuple)) and all(v in scales for v in value):
        return _effective_scale(d) in value
    raise ModelConfigError(
        f"{yaml_label(d)}: `{key}: {value!r}` should be true, false, or a list of scales from `scales:` "
        f"({', '.join(map(str, scales)) or 'none defined'}), e.g. {example}."
    )


def _wanted_keys(d: dict) -> list:
    """The registered model keys (:data:`~attnyolo.integration.plugins.MODEL_KEYS`) this model dict asks for."""
    return [entry for key, entry in MODEL_KEYS.items() if _wants(d, key, entry.example)]


def _apply_model_key(seq: nn.Sequential, entry, verbose: bool) -> None:
    """Apply a registered model key to the built network and refresh the rows' parameter counts."""
    before = sum(p.numel() for p in seq.parameters())
    changed = entry.apply(seq)
    for m in seq:
        m.np = sum(p.numel() for p in m.parameters())  # the parser's per-row count, now of the changed model
    if verbose:
        after = sum(p.numel() for p in seq.parameters())
        ULTRALYTICS_LOGGER.info(f"{entry.key}: {entry.done.format(changed=changed, before=before, after=after)}")


# One parse at a time: a parse may set process-wide names for its duration (Conv.default_act for `activation:`, a
# head's family blocks in ultralytics.nn.tasks), which a parse in another thread must neither see nor restore out of
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
    rows = check_rows(d)
    check_values(d, rows)
    own = {i for i, row in enumerate(rows) if row[2] == ATTENTION_ROW}  # the kinds' paper forms
    rows = _apply_attention_kind(d, rows)
    ours = [i for i, row in enumerate(rows) if row[2] in layer_classes() or row[2] in spelling_names()]
    head = _head_row(d, rows)
    keys = _wanted_keys(d)
    if not ours and head is None and not keys:
        return original(d, ch, verbose)  # stock models: untouched

    n_backbone = len(d.get("backbone") or [])
    family: Head | None = HEADS[rows[head][2]] if head is not None else None
    if family is not None and family.blocks and any(row[2] in family.blocks for row in rows):
        original = _with_head_blocks(original, family.blocks)

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
        classic = head is not None and rows[head][2] == "YOLOv5Detect"  # the classic forks' spellings (by name)
        for i in ours:
            rows[i][2], rows[i][3] = _resolve_args(d, i, rows[i], c_in[i], i in own, classic)
    head_from = None
    if head is not None:
        head_from = rows[head][0]
        channels = [c_out[j % head] for j in head_from]
        rows[head] = [-1, 1, rows[head][2], family.resolve_args(d, head, rows[head], channels)]

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
            ULTRALYTICS_LOGGER.info(f"{head:>3}{head_from!s:>20}  {rows[head][2]} reads these rows (-1 above)")
    for entry in keys:
        _apply_model_key(seq, entry, verbose)
    return seq, save
