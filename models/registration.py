"""The one seam between AttnYOLO and Ultralytics' internals.

Everything else in the package uses public Ultralytics API (``YOLO``, trainers, validators, callbacks). This module
alone knows that:

* ``ultralytics.nn.tasks.parse_model`` looks a YAML row's module name up in the globals of ``ultralytics.nn.tasks``
  and gives modules it does not know their YAML arguments verbatim (no input-channel count, no width scaling);
* ``ultralytics.nn.tasks.yaml_model_load`` resolves a bare YAML name through ``check_yaml`` in the same namespace;
* ``BaseModel.fuse`` folds only Ultralytics' own conv/BN pairs.

:func:`register` (run on ``import attnyolo``) adds our layers to that namespace, wraps ``parse_model`` so our rows
receive their real input channels, lets ``check_yaml`` find the YAMLs shipped in ``cfg/``, and extends ``fuse`` to our
layers. It is idempotent and checks that the installed Ultralytics is inside the range this seam was tested against.

How a model with our rows is built (DESIGN.md, option 1): Ultralytics first builds the network with our rows replaced
by a pass-through probe (identical channel bookkeeping, since unknown modules keep their input channels), a tiny
forward pass records the channels entering every probe, and the network is then built for real with those channels
as each layer's first argument. This depends only on public behaviour of the parser and costs one extra build.

YOLOX (:mod:`attnyolo.yolox`) adds four seams, each in its own function below:

* the ``YOLOXDetect`` head reads several rows, which the parser allows only for its own heads: the head row is built
  with ``from: -1`` and the input channels found by the probe pass, then rewired to its real rows
  (:func:`_resolve_head_args`, :func:`_rewire_head`);
* a top-level ``depthwise:`` key makes the dense 3x3 convs depthwise-separable after the build, as YOLOX-Nano does
  (:func:`_wants_depthwise`, :func:`_apply_depthwise`);
* ``yolox-<size>[-<kind>].yaml`` names resolve to ``cfg/yolox/`` and choose their scale (Ultralytics' scale guess
  needs a digit in the name) (:func:`_yolox_name`, :func:`_with_yolox_scale`);
* ``DetectionModel.init_criterion`` returns :class:`~attnyolo.yolox.loss.YOLOXLoss` for a YOLOX head
  (:func:`_wrap_init_criterion`).

and one repair: Ultralytics' ``get_flops`` sizes its probe image by the first parameter's input channels, which are 12
for a Focus stem (YOLOX), so it returned 0 GFLOPs; :func:`_wrap_get_flops` tells it the model's real input channels.

One safeguard: the trainer's ``final_eval`` strips the optimizer from ``last.pt``/``best.pt`` by saving over them,
and :func:`_wrap_strip_optimizer` makes that write go through a temporary file renamed into place.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

from .cbam import CBAMAttention
from .coord_attention import CoordAtt
from .eca import ECAAttention
from .efficient_local_attention import ELA
from .squeeze_excite import SEAttention
from .yolox.blocks import make_depthwise_separable
from .yolox.head import YOLOX_HEAD_WIDTH, YOLOXDetect
from .yolox.loss import YOLOXLoss

LOGGER = logging.getLogger("attnyolo")

# The Ultralytics releases this seam was tested against (tests/test_registration.py pins the same range). Ultralytics
# changes parse_model often; outside this range we refuse to build rather than risk a silently wrong model.
ULTRALYTICS_MIN = "8.4.180"
ULTRALYTICS_MAX = "8.4.190"

# YAML name -> layer class. These names are what users write in model YAML rows.
LAYERS: dict[str, type[nn.Module]] = {
    "CoordAtt": CoordAtt,
    "ELA": ELA,
    "SEAttention": SEAttention,
    "CBAMAttention": CBAMAttention,
    "ECAAttention": ECAAttention,
}

# Attention kinds a YAML's top-level `attention:` key (or a model name like yolov8n-ELA-S.yaml) may choose for its
# `Attention` rows: kind -> (layer name, layer args after the channel count).
KINDS: dict[str, tuple[str, list]] = {
    "CoordAtt": ("CoordAtt", []),
    "ELA-T": ("ELA", ["T"]),
    "ELA-B": ("ELA", ["B"]),
    "ELA-S": ("ELA", ["S"]),
    "ELA-L": ("ELA", ["L"]),
    "SE": ("SEAttention", []),
    "CBAM": ("CBAMAttention", []),
    "ECA": ("ECAAttention", []),
}
ATTENTION_ROW = "Attention"  # placeholder module name in placement YAMLs, replaced by the chosen kind

# Names users know from YOLOv5 forks -> (placement file stem, kind).
ALIASES: dict[str, tuple[str, str]] = {"yolov5_Coordinate_attention": ("yolov5-attention", "CoordAtt")}

# YAML name -> detection heads that read several rows and get their input channels from the probe pass.
HEADS: dict[str, type[nn.Module]] = {"YOLOXDetect": YOLOXDetect}

# YOLOX model names: yolox-<size>.yaml and yolox-<size>-<attention kind>.yaml (also with '_', as YOLOX's exps spell
# them). YOLOX's own size names map to the scale keys of cfg/yolox/yolox.yaml.
YOLOX_SIZES = {"nano": "n", "tiny": "t", "n": "n", "t": "t", "s": "s", "m": "m", "l": "l", "x": "x"}
_YOLOX_NAME = re.compile(r"^yolox[-_](?P<size>nano|tiny|[ntsmlx])(?:[-_](?P<kind>.+))?$")

CFG_DIR = Path(__file__).resolve().parent.parent / "cfg"
_PROBE_NAME = "AttnYOLOChannelProbe"
_PROBE_IMGSZ = 64  # smallest square that survives stride 32 with a 2x2 map; rows beyond our last one are not run


class ModelConfigError(ValueError):
    """A model YAML that cannot be built as written; the message names the file, the row and the fix."""


class UnsupportedUltralyticsError(RuntimeError):
    """The installed Ultralytics is outside the range this seam was tested against."""


class _ChannelProbe(nn.Module):
    """Pass-through stand-in for an attention row during the channel-discovery build; records its input channels."""

    def __init__(self, *args):
        super().__init__()
        self.c1 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Record the channel count of ``x`` and return it unchanged."""
        self.c1 = int(x.shape[1])
        return x


def _version_tuple(version: str) -> tuple[int, ...]:
    """Turn '8.4.190' (or '8.4.190.dev0') into (8, 4, 190) for ordering."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_ultralytics_version(version: str | None = None) -> str:
    """Fail loudly when Ultralytics is outside the tested range.

    Args:
        version: Version string to check; defaults to the installed ``ultralytics.__version__``.

    Returns:
        The checked version string.

    Raises:
        UnsupportedUltralyticsError: Naming the installed and the supported versions, and the fix.
    """
    if version is None:
        import ultralytics

        version = ultralytics.__version__
    if not _version_tuple(ULTRALYTICS_MIN) <= _version_tuple(version) <= _version_tuple(ULTRALYTICS_MAX):
        raise UnsupportedUltralyticsError(
            f"attnyolo supports ultralytics {ULTRALYTICS_MIN} to {ULTRALYTICS_MAX}, but ultralytics {version} is "
            f"installed. Its model parser may differ and build wrong models. Fix: "
            f"pip install 'ultralytics>={ULTRALYTICS_MIN},<={ULTRALYTICS_MAX}' (or pip install -r requirements.txt)."
        )
    return version


def _tasks():
    """Return the ``ultralytics.nn.tasks`` module, the namespace parse_model resolves YAML module names in."""
    return importlib.import_module("ultralytics.nn.tasks")


def _yaml_label(d: dict) -> str:
    """Name a model dict for error messages: its YAML file when Ultralytics recorded one."""
    return str(d.get("yaml_file") or "<model dict>")


def _module_exists(name: str, tasks) -> bool:
    """Whether ``parse_model`` can resolve ``name`` the way it looks names up."""
    if name.startswith("nn."):
        return hasattr(torch.nn, name[3:])
    if name.startswith("torchvision.ops."):
        return hasattr(importlib.import_module("torchvision").ops, name[16:])
    return name in vars(tasks)


def known_module_names() -> list[str]:
    """All layer names a model YAML row may use: ours plus every ``nn.Module`` Ultralytics' parser knows."""
    tasks = _tasks()
    names = {k for k, v in vars(tasks).items() if isinstance(v, type) and issubclass(v, nn.Module)}
    names.discard(_PROBE_NAME)
    return sorted(names | set(LAYERS))


def _check_rows(d: dict) -> list[list]:
    """Validate the shape and module names of every row; return backbone + head rows."""
    label = _yaml_label(d)
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
        if not isinstance(name, str) or not _module_exists(name, tasks):
            known = known_module_names()
            close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ModelConfigError(
                f"{label}, row {i}: unknown layer {name!r}.{hint} Known layers: {', '.join(known)}. "
                "AttnYOLO layers are available after `import attnyolo`."
            )
    return rows


def _apply_attention_kind(d: dict, rows: list[list]) -> list[list]:
    """Replace ``Attention`` placeholder rows by the layer the top-level ``attention:`` key names."""
    if not any(row[2] == ATTENTION_ROW for row in rows):
        return rows
    kind = d.get("attention")
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), list(KINDS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelConfigError(
            f"{_yaml_label(d)}: `attention: {kind}` is not an attention kind.{hint} The file has `Attention` rows, "
            f"so set the top-level key to one of: {', '.join(KINDS)}."
        )
    layer, kind_args = KINDS[kind]
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


def _resolve_args(d: dict, i: int, row: list, c_in: int) -> list:
    """Turn an attention row's YAML args into constructor args ``[c1, *layer_args]``.

    The first YAML arg, when it is a number, is the layer's channel count written as for ``Conv`` (unscaled); it is
    scaled and clipped exactly as the parser does for ``Conv`` and must agree with the inferred input channels. It
    may be omitted (``[]``) or ``null`` to rely on inference alone.
    """
    from ultralytics.utils.ops import make_divisible

    args = list(row[3])
    if args and (args[0] is None or (isinstance(args[0], (int, float)) and not isinstance(args[0], bool))):
        given = args.pop(0)
        if given is not None:
            width, max_channels = _scale_params(d)
            expected = make_divisible(min(given, max_channels) * width, 8)
            if expected != c_in:
                raise ModelConfigError(
                    f"{_yaml_label(d)}, row {i} ({row[2]}): the YAML channel argument {given} scales to {expected} "
                    f"channels at this scale, but the layer feeding this row outputs {c_in} channels. Fix: write the "
                    f"same unscaled channel count as the row that feeds it, or write null (or omit it) to infer it."
                )
    return [c_in, *args]


def _probe_output_channels(seq: nn.Sequential, ch: int, last: int) -> list[int]:
    """Run a tiny forward pass through rows 0..``last``; return each row's output channels (probes record inputs)."""
    outputs, x = [], torch.zeros(1, ch, _PROBE_IMGSZ, _PROBE_IMGSZ)
    was_training = seq.training
    seq.eval()  # BatchNorm on a 1-image batch with 1x1 maps is only defined in eval mode
    with torch.no_grad():
        for m in seq[: last + 1]:
            if m.f != -1:  # route inputs the way BaseModel does: an int index or a list of indices (-1 = previous)
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x)
    seq.train(was_training)
    return [int(y.shape[1]) if isinstance(y, torch.Tensor) else 0 for y in outputs]


def _effective_scale(d: dict) -> str | None:
    """The scale parse_model builds for this dict: ``d['scale']`` if it is a key of ``scales``, else the first key."""
    scales, scale = d.get("scales"), d.get("scale")
    if not scales:
        return None
    return scale if scale in scales else next(iter(scales))


def _yolox_head_row(d: dict, rows: list[list]) -> int | None:
    """Index of the YOLOX head row, checked to be the single last row with a list of input rows; None without one."""
    heads = [i for i, row in enumerate(rows) if row[2] in HEADS]
    if not heads:
        return None
    i, label = heads[0], _yaml_label(d)
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
            f"is not repeated. Fix: e.g. [[17, 20, 23], 1, {name}, [nc, 256]]."
        )
    return i


def _resolve_head_args(d: dict, i: int, row: list, channels: list[int]) -> list:
    """Turn a head row's YAML args ``[nc]`` or ``[nc, hidden]`` into ``[nc, scaled hidden, channels]``.

    ``hidden`` is written unscaled (YOLOX's 256) and scaled and clipped like a Conv row's channels, which equals
    YOLOX's ``int(256 * width)`` at every official width.
    """
    from ultralytics.utils.ops import make_divisible

    args = list(row[3])
    if not 1 <= len(args) <= 2:
        raise ModelConfigError(
            f"{_yaml_label(d)}, row {i} ({row[2]}): args {args!r} should be [nc] or [nc, hidden width], e.g. [nc, 256]."
        )
    hidden = args[1] if len(args) == 2 else YOLOX_HEAD_WIDTH
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ModelConfigError(
            f"{_yaml_label(d)}, row {i} ({row[2]}): hidden width {hidden!r} must be a positive integer, e.g. 256."
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


def _wants_depthwise(d: dict) -> bool:
    """Read the top-level ``depthwise:`` key: true/false, or the list of scales built depthwise (e.g. ``[n]``)."""
    value = d.get("depthwise", False)
    if isinstance(value, bool):
        return value
    scales = d.get("scales") or {}
    if isinstance(value, (list, tuple)) and all(v in scales for v in value):
        return _effective_scale(d) in value
    raise ModelConfigError(
        f"{_yaml_label(d)}: `depthwise: {value!r}` should be true, false, or a list of scales from `scales:` "
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


def _wrap_parse_model(original):
    """Return a parse_model that gives our rows their inferred input channels, and checks every row's name."""

    @functools.wraps(original)
    def parse_model(d, ch, verbose=True):
        """Build a model dict like Ultralytics' parse_model, with AttnYOLO layers given their input channels."""
        d = _with_yolox_scale(d)
        rows = _apply_attention_kind(d, _check_rows(d))
        ours = [i for i, row in enumerate(rows) if row[2] in LAYERS]
        head = _yolox_head_row(d, rows)
        depthwise = _wants_depthwise(d)
        if not ours and head is None and not depthwise:
            return original(d, ch, verbose)  # stock models: untouched

        n_backbone = len(d.get("backbone") or [])

        def with_rows(new_rows):
            out = copy.deepcopy(d)
            out["backbone"], out["head"] = new_rows[:n_backbone], new_rows[n_backbone:]
            return out

        if ours or head is not None:
            probe_rows = copy.deepcopy(rows)
            for i in ours:
                probe_rows[i][2], probe_rows[i][3] = _PROBE_NAME, []
            if head is not None:  # the parser cannot build an unknown module from several rows: probe the inputs
                probe_rows[head] = [-1, 1, _PROBE_NAME, []]
            probe_seq, _ = original(with_rows(probe_rows), ch, False)
            c_out = _probe_output_channels(probe_seq, ch, max(ours + ([head - 1] if head is not None else [])))
            c_in = {i: (probe_seq[i][0] if isinstance(probe_seq[i], nn.Sequential) else probe_seq[i]).c1 for i in ours}
            del probe_seq
            for i in ours:
                rows[i][3] = _resolve_args(d, i, rows[i], c_in[i])
        head_from = None
        if head is not None:
            head_from = rows[head][0]
            channels = [c_out[j % head] for j in head_from]
            rows[head] = [-1, 1, rows[head][2], _resolve_head_args(d, head, rows[head], channels)]

        seq, save = original(with_rows(rows), ch, verbose)
        if head is not None:
            seq, save = _rewire_head(seq, save, head, head_from)
            if verbose:
                from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

                ULTRALYTICS_LOGGER.info(f"{head:>3}{head_from!s:>20}  {rows[head][2]} reads these rows (-1 above)")
        if depthwise:
            _apply_depthwise(seq, verbose)
        return seq, save

    parse_model._attnyolo_original = original
    return parse_model


def _yolox_name(name: str | Path) -> tuple[str, str | None] | None:
    """Parse a YOLOX model name: 'yolox-nano-ELA-S.yaml' -> ('n', 'ELA-S'), 'yolox_s.yaml' -> ('s', None)."""
    m = _YOLOX_NAME.match(Path(str(name)).stem)
    return (YOLOX_SIZES[m["size"]], m["kind"]) if m else None


def _with_yolox_scale(d: dict) -> dict:
    """Set the scale of a YOLOX model dict from its file name (yolox-s.yaml -> 's') when Ultralytics found none.

    Ultralytics guesses the scale only from names like yolov8s (a digit before the letter), so 'yolox-s' would fall
    back to the first scale with a warning.
    """
    if d.get("scale") or not d.get("scales"):
        return d
    parsed = _yolox_name(d.get("yaml_file") or "")
    if parsed is None or parsed[0] not in d["scales"]:
        return d
    return {**d, "scale": parsed[0]}


def _yolox_base(name: str) -> list[Path]:
    """cfg/yolox/yolox.yaml for a plain YOLOX size name (yolox-s.yaml); [] for anything else."""
    parsed = _yolox_name(name)
    base = CFG_DIR / "yolox" / "yolox.yaml"
    return [base] if parsed and parsed[1] is None and base.is_file() else []


def _variant_source(name: str) -> tuple[Path, str] | None:
    """Map a variant file name to (placement YAML, kind).

    'yolov8-ELA-S.yaml' -> (cfg/yolov8/yolov8-attention.yaml, 'ELA-S'); aliases such as
    'yolov5_Coordinate_attention.yaml' likewise. Scaled names (yolov8n-...) are left to Ultralytics, which retries
    with the unscaled name.
    """
    stem = Path(name).stem
    yolox = _yolox_name(stem)
    if stem in ALIASES:
        family_stem, kind = ALIASES[stem]
    elif yolox and yolox[1]:
        family_stem, kind = "yolox-attention", yolox[1]
        if kind not in KINDS:
            close = difflib.get_close_matches(kind, list(KINDS), n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ModelConfigError(
                f"{name}: {kind!r} is not an attention kind.{hint} YOLOX variants are named "
                f"yolox-<nano|tiny|s|m|l|x>-<kind>.yaml with kind one of: {', '.join(KINDS)}."
            )
    else:
        family, sep, kind = stem.partition("-")
        if not sep or kind not in KINDS:
            return None
        family_stem = f"{family}-attention"
    found = sorted(CFG_DIR.rglob(f"{family_stem}.yaml"))
    return (found[0], kind) if found else None


def _materialize_variant(name: str) -> list[Path]:
    """Write the placement YAML with its ``attention:`` key set to the requested kind.

    The model dict Ultralytics loads (and saves into checkpoints) then names its own layer kind. Written atomically:
    DDP ranks may race here.
    """
    source = _variant_source(name)
    if source is None:
        return []
    from ultralytics.utils import USER_CONFIG_DIR

    placement, kind = source
    text, n = re.subn(r"(?m)^attention:[^\n#]*", f"attention: {kind} ", placement.read_text(encoding="utf-8"), count=1)
    if n != 1:
        raise ModelConfigError(f"{placement}: placement YAML has no top-level `attention:` key to set to {kind}.")
    out = Path(USER_CONFIG_DIR) / "attnyolo-cfg" / Path(name).name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(f"# Generated by attnyolo from {placement.name} with attention: {kind}\n{text}", encoding="utf-8")
    os.replace(tmp, out)
    return [out]


def _wrap_check_yaml(original):
    """Return a check_yaml that also finds the model YAMLs shipped in this repository's cfg/ by bare file name."""

    @functools.wraps(original)
    def check_yaml(file, suffix=(".yaml", ".yml"), hard=True):
        """Resolve ``file`` locally first, then in AttnYOLO's cfg/, then the way Ultralytics does."""
        path = Path(str(file))
        if not path.exists() and path.parent == Path(".") and CFG_DIR.is_dir():
            found = sorted(CFG_DIR.rglob(path.name)) or _yolox_base(path.name) or _materialize_variant(path.name)
            if found:
                return str(found[0])
        return original(file, suffix=suffix, hard=hard)

    check_yaml._attnyolo_original = original
    return check_yaml


def _model_names() -> list[str]:
    """Every model name this project resolves: the cfg/ files, and <family><scale>[-<kind>].yaml for each family."""
    names = {p.name for p in CFG_DIR.rglob("*.yaml")}
    scaled = [f"{family}{s}" for family in ("yolov5", "yolov8", "yolo11") for s in "nsmlx"]
    scaled += [f"yolox-{s}" for s in ("nano", "tiny", "s", "m", "l", "x")]
    names.update(f"{stem}{'-' + k if k else ''}.yaml" for stem in scaled for k in ("", *KINDS))
    return sorted(names)


def check_model_source(model: str | Path, key: str = "model", build: bool = False) -> None:
    """Fail with one line, before any work starts, if ``model`` names no checkpoint or model YAML that exists.

    A ``.pt`` must be an existing file or a stock Ultralytics weight name (downloaded by Ultralytics); anything else
    must load as a model YAML the way Ultralytics loads it (a path, a stock Ultralytics name, or one of this
    project's names such as ``yolo11s-ELA-S.yaml``).

    Args:
        model: The model argument as the user gave it.
        key: The argument's name, for the message (``model``, ``models``).
        build: Also build a YAML model once, so a bad row fails now (a tool that trains several models in a row
            checks them all before the first one trains).

    Raises:
        FileNotFoundError: Naming the value, close matches and the fix.
        ModelConfigError: With ``build``, a row that cannot be built.
    """
    text = str(model)
    if text.endswith(".pt"):
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

        # Stock weights (yolov8n.pt, ...) are Ultralytics' to download; the download path stays open for users online.
        if not Path(text).is_file() and text not in GITHUB_ASSETS_NAMES:
            raise FileNotFoundError(f"{key}: checkpoint {text} does not exist. Fix: pass an existing .pt file.")
        return
    try:
        _tasks().yaml_model_load(text)
        if build:
            _tasks().DetectionModel(text, verbose=False)  # a bad row raises ModelConfigError naming file and row
    except FileNotFoundError:
        close = difflib.get_close_matches(Path(text).name, _model_names(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FileNotFoundError(
            f"{key}: {text} is neither a file nor a model name Ultralytics or this project knows.{hint} Fix: pass a "
            "model YAML path or a name such as yolov8n.yaml or yolov8n-CoordAtt.yaml (<family><scale>-<kind>.yaml)."
        ) from None


def _wrap_fuse(original):
    """Return a BaseModel.fuse that also folds the BatchNorm of our layers that have one (CoordAtt)."""

    @functools.wraps(original)
    def fuse(self, *args, **kwargs):
        """Fold our layers' BatchNorms, then run Ultralytics' own fusion."""
        for m in self.modules():
            if isinstance(m, CoordAtt):
                m.fuse()
        return original(self, *args, **kwargs)

    fuse._attnyolo_original = original
    return fuse


class _FlopsInput(nn.Module):
    """A transparent wrapper whose first parameter has the model's input channel count, for ``get_flops``."""

    def __init__(self, model: nn.Module, ch: int, like: torch.Tensor):
        super().__init__()
        self.channels = nn.Parameter(like.new_empty(1, ch), requires_grad=False)  # registered first on purpose
        self.model = model
        self.stride = getattr(model, "stride", None)

    def forward(self, x: torch.Tensor):
        """Run the wrapped model."""
        return self.model(x)


def _wrap_get_flops(original):
    """Return a get_flops that profiles Focus-stem models (YOLOX) with their real input channels.

    Ultralytics builds its probe image with ``next(model.parameters()).shape[1]`` channels: right for a conv stem,
    but 4x too many for a Focus stem, whose first conv sees the space-to-depth output; the forward then fails and
    get_flops reports 0. Such models are passed on inside :class:`_FlopsInput`, so Ultralytics' own code measures them.
    """

    @functools.wraps(original)
    def get_flops(model, imgsz=640):
        """GFLOPs as Ultralytics measures them, with the probe image given the model's input channels."""
        from ultralytics.utils.torch_utils import unwrap_model

        inner = unwrap_model(model)
        ch = (getattr(inner, "yaml", None) or {}).get("channels") if isinstance(inner, nn.Module) else None
        first = next(inner.parameters(), None) if isinstance(inner, nn.Module) else None
        if not isinstance(ch, int) or first is None or first.ndim < 2 or first.shape[1] == ch:
            return original(model, imgsz)
        return original(_FlopsInput(inner, ch, first), imgsz)

    get_flops._attnyolo_original = original
    return get_flops


def _wrap_init_criterion(original):
    """Return a DetectionModel.init_criterion that gives models with a YOLOX head the YOLOX loss."""

    @functools.wraps(original)
    def init_criterion(self):
        """:class:`~attnyolo.yolox.loss.YOLOXLoss` for a YOLOX head, Ultralytics' own criterion otherwise."""
        if isinstance(self.model[-1], YOLOXDetect):
            return YOLOXLoss(self)
        return original(self)

    init_criterion._attnyolo_original = original
    return init_criterion


def _wrap_strip_optimizer(original):
    """Return a strip_optimizer that writes through a temporary file renamed into place.

    Ultralytics' ``final_eval`` strips the optimizer from ``last.pt`` and ``best.pt`` by loading each and saving it
    over itself; a crash during that save would leave a truncated checkpoint where a complete one was.
    """

    @functools.wraps(original)
    def strip_optimizer(f="best.pt", s="", updates=None):
        """Strip as Ultralytics does, into a temporary file that replaces ``s or f`` only once fully written."""
        target = Path(s or f)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.strip.tmp")
        try:
            result = original(f, s=str(tmp), updates=updates)
            if tmp.exists():  # Ultralytics writes nothing for a file that is not a checkpoint
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return result

    strip_optimizer._attnyolo_original = original
    return strip_optimizer


def register() -> None:
    """Make AttnYOLO's layers usable by name in Ultralytics model YAMLs. Idempotent; run by ``import attnyolo``.

    Raises:
        UnsupportedUltralyticsError: If the installed Ultralytics is outside the tested range.
        RuntimeError: If a layer name is already taken in Ultralytics by a different class.

    Examples:
        >>> import attnyolo  # registers
        >>> from ultralytics import YOLO
        >>> model = YOLO("yolov5s_Coordinate_attention.yaml")
    """
    check_ultralytics_version()
    tasks = _tasks()
    for name, cls in {**LAYERS, **HEADS, _PROBE_NAME: _ChannelProbe}.items():
        existing = vars(tasks).get(name)
        if existing is not None and existing is not cls:
            raise RuntimeError(
                f"Cannot register {name}: ultralytics.nn.tasks already defines {existing!r}. Rename the AttnYOLO layer."
            )
        setattr(tasks, name, cls)
    if not hasattr(tasks.parse_model, "_attnyolo_original"):
        tasks.parse_model = _wrap_parse_model(tasks.parse_model)
    if not hasattr(tasks.check_yaml, "_attnyolo_original"):
        tasks.check_yaml = _wrap_check_yaml(tasks.check_yaml)
    if not hasattr(tasks.BaseModel.fuse, "_attnyolo_original"):
        tasks.BaseModel.fuse = _wrap_fuse(tasks.BaseModel.fuse)
    torch_utils = importlib.import_module("ultralytics.utils.torch_utils")
    if not hasattr(torch_utils.get_flops, "_attnyolo_original"):
        torch_utils.get_flops = _wrap_get_flops(torch_utils.get_flops)
    if not hasattr(tasks.DetectionModel.init_criterion, "_attnyolo_original"):
        tasks.DetectionModel.init_criterion = _wrap_init_criterion(tasks.DetectionModel.init_criterion)
    engine = importlib.import_module("ultralytics.engine.trainer")  # final_eval calls it by this module's name
    if not hasattr(engine.strip_optimizer, "_attnyolo_original"):
        engine.strip_optimizer = _wrap_strip_optimizer(engine.strip_optimizer)


def is_registered() -> bool:
    """Whether :func:`register` has run in this process."""
    tasks = _tasks()
    return hasattr(tasks.parse_model, "_attnyolo_original") and all(
        vars(tasks).get(n) is c for n, c in {**LAYERS, **HEADS}.items()
    )
