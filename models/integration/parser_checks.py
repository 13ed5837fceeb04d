"""The checks a model dict passes before Ultralytics' ``parse_model`` builds it: row shapes, module names, values.

Ultralytics would fail on a wrong value deep inside the build (``'>' not supported between 'str' and 'int'``, ``list
indices must be integers``) or in the first forward pass (a 400-character ``conv2d()`` dump); these checks fail
first, with one line naming the file, the row, the value and the fix. :mod:`attnyolo.integration.parser` runs them.
"""

from __future__ import annotations

import ast
import difflib
import importlib

import torch
from torch import nn

from ..errors import ModelConfigError
from ..layers.registry import layer_classes
from ..layers.spellings import spelling_names
from .names import yaml_label
from .parser_forks import is_number
from .plugins import HEADS

ATTENTION_ROW = "Attention"  # placeholder module name in placement YAMLs, replaced by the chosen kind
PROBE_NAME = "AttnYOLOChannelProbe"


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


def check_rows(d: dict) -> list[list]:
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


def check_values(d: dict, rows: list[list]) -> None:
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
        if str(name).startswith(_TEXT_ARG_MODULES) or name in (*layer_classes(), *spelling_names(), *HEADS):
            continue  # text is an argument of theirs; our layers and the registered heads check their own arguments
        for k, arg in enumerate(args):
            if isinstance(arg, str) and arg not in d and not _literal(arg):
                raise ModelConfigError(
                    f"{label}, row {i} ({name}): argument {k + 1}, {arg!r}, is text, not a value nor the name of a "
                    "top-level key the parser reads (such as nc). Fix: write the number or list it stands for."
                )


def _literal(text: str) -> bool:
    """Whether the parser reads ``text`` as a Python literal (it runs ast.literal_eval on text arguments)."""
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True
