"""The registration points through which a model family plugs into the seam.

The seam (:mod:`attnyolo.integration`) knows Ultralytics and the attention layers, never a family: a family (classic
YOLOv5 in :mod:`attnyolo.yolov5`, YOLOX in :mod:`attnyolo.yolox`, any later one) imports this module and registers
what it adds, once, when its package is imported (``import attnyolo`` imports every family before it patches
Ultralytics):

* :func:`register_head`: a detection head that reads several YAML rows, with its constructor arguments, its loss and
  the YAML blocks that rows of its models resolve to (:class:`Head`);
* :func:`register_model_key`: a top-level model YAML key applied to the built network (YOLOX-Nano's ``depthwise:``);
* :func:`register_format`: a checkpoint format another project writes (:class:`ForeignFormat`);
* :func:`register_self_check`: a behavioural check of the Ultralytics internals the family's rows rely on, run with
  the seam's own outside the tested Ultralytics range.

Each registry is a plain dict (or list) read by the seam at the moment it needs it; registering the same name twice
with a different object is refused, so two families cannot silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn


@dataclass(frozen=True)
class Head:
    """A detection head that reads several rows of a model YAML (``[[17, 20, 23], 1, YOLOXDetect, [nc]]``).

    Attributes:
        cls: The head's module class; its name is the YAML row's module name.
        family: The family's name in messages (``YOLOX``, ``classic YOLOv5``).
        resolve_args: ``resolve_args(d, i, row, channels) -> args``: the constructor arguments for the model dict
            ``d``, row index ``i``, the YAML ``row`` and the input channels of the rows it reads (found by the probe
            pass of :mod:`attnyolo.integration.parser`).
        example_args: The YAML arguments shown in messages (``[nc, 256]``).
        loss: ``loss(model) -> criterion``: what ``DetectionModel.init_criterion`` returns for a model with this head.
        blocks: YAML module names that resolve to the family's own blocks while a model with this head is parsed
            (classic YOLOv5's ``Bottleneck``/``BottleneckCSP``); empty for none.
    """

    cls: type[nn.Module]
    family: str
    resolve_args: Callable[[dict, int, list, list[int]], list]
    example_args: str
    loss: Callable[[nn.Module], Any]
    blocks: dict[str, type[nn.Module]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelKey:
    """A top-level model YAML key whose function changes the built network (``depthwise: [n]``).

    Attributes:
        key: The YAML key; its value is true/false or the list of ``scales`` it applies to.
        apply: ``apply(seq) -> count``: change the parsed ``nn.Sequential`` in place; return how many modules changed.
        done: What ``apply`` did, for the build log: a ``str.format`` template of ``changed`` (the count ``apply``
            returned) and the parameter counts ``before`` and ``after``.
        example: A correct use, for messages (```depthwise: [n]` for YOLOX-Nano``).
    """

    key: str
    apply: Callable[[nn.Sequential], int]
    done: str
    example: str


@dataclass(frozen=True)
class ForeignFormat:
    """A checkpoint format written by another project, and how to map it.

    Attributes:
        name: Short name, used in messages and reports (``classic-yolov5``, ``yolox-official``).
        description: What wrote such files (project, repository, version).
        detect: ``detect(path) -> bool``; must not unpickle anything that could run code.
        load: ``load(path, model=None, nc=None) -> (checkpoint dict, report dict)``. The checkpoint dict is in
            Ultralytics' format (``{"model": DetectionModel, ...}``); the report says what was mapped.
    """

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[..., tuple[dict[str, Any], dict[str, Any]]]


HEADS: dict[str, Head] = {}  # YAML module name -> head
MODEL_KEYS: dict[str, ModelKey] = {}  # top-level YAML key -> what it does to the built network
FORMATS: dict[str, ForeignFormat] = {}  # format name -> format, tried in registration order
SELF_CHECKS: dict[str, tuple[str, Callable[[], None]]] = {}  # check name -> (the internal it proves, check)


def _add(registry: dict, name: str, entry: Any, what: str) -> None:
    """Put ``entry`` under ``name``; refuse another entry already there (re-registering the same one is a no-op)."""
    existing = registry.get(name)
    if existing is not None and existing != entry:
        raise RuntimeError(f"Cannot register the {what} {name}: another one is registered under that name.")
    registry[name] = entry


def register_head(head: Head) -> None:
    """Make ``head`` buildable from a model YAML row named ``head.cls.__name__``, with its loss."""
    _add(HEADS, head.cls.__name__, head, "head")


def register_model_key(model_key: ModelKey) -> None:
    """Make the top-level YAML key ``model_key.key`` apply ``model_key.apply`` to the networks it is set for."""
    _add(MODEL_KEYS, model_key.key, model_key, "model key")


def register_format(fmt: ForeignFormat) -> None:
    """Make checkpoints in ``fmt`` readable by every tool and importable with ``attnyolo import_weights``."""
    _add(FORMATS, fmt.name, fmt, "checkpoint format")


def register_self_check(name: str, internal: str, check: Callable[[], None]) -> None:
    """Run ``check`` (which raises when ``internal`` behaves differently) with the seam's self-checks."""
    _add(SELF_CHECKS, name, (internal, check), "self-check")


def head_of(model: nn.Module) -> Head | None:
    """The registered head a built ``DetectionModel`` ends in, or None (Ultralytics' own head, or no model)."""
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential) or not len(layers):
        return None
    return next((head for head in HEADS.values() if isinstance(layers[-1], head.cls)), None)
