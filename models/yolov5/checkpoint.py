"""Checkpoints that ultralytics/yolov5 (or a fork of it) wrote, read safely and rebuilt as AttnYOLO models.

Such a file is a ``torch.save`` of a dict whose ``model``/``ema`` entries pickle whole YOLOv5 models: the classes
``models.yolo.DetectionModel`` (``models.yolo.Model`` up to v6.1), ``models.yolo.Detect`` and ``models.common.*``
(plus the fork's own classes, e.g. ``models.common.CoordAtt``). Unpickling them normally imports a top-level package
``models`` and runs its code; Ultralytics refuses such files ("NOT forwards compatible").

Here nothing from the file runs:

1. The pickle's GLOBAL references are listed without unpickling
   (:func:`~attnyolo.integration.checkpoints.referenced_globals`, the listing every checkpoint reader uses); a file
   that references anything outside :func:`allowed_globals` is refused with one line naming it.
2. ``torch.load(weights_only=True)`` rebuilds the file with *stand-in* classes registered under the YOLOv5 names
   (plain ``nn.Module`` subclasses without code), so ``nn.Module``'s own ``__setstate__`` restores the module tree, its
   attributes (``yaml``, ``names``, ``stride``) and tensors.
3. The model is rebuilt from its stored ``yaml`` with AttnYOLO's classes (Ultralytics' Conv/C3/SPPF/..., which use
   YOLOv5's submodule names; YOLOv5's Bottleneck/BottleneckCSP, :mod:`attnyolo.yolov5.blocks`;
   :class:`~attnyolo.yolov5.head.YOLOv5Detect`; AttnYOLO's CoordAtt and ELA), the state dict is loaded strictly (every
   tensor must land), and the class names (list or dict), strides and anchors are kept
   (:func:`attnyolo.yolov5.rebuild.rebuild`).

:data:`FORMAT` (registered by :mod:`attnyolo.yolov5.registration`) plugs this into ``attnyolo import_weights``,
``pretrained=`` and, through :func:`attnyolo.integration.checkpoints.read_checkpoint` (which refuses the file's
``models.*`` classes and then asks the foreign formats), into ``YOLO(path)`` and every tool.

Facts about the format (ultralytics/yolov5 v5.0 to v7.0; v7.0 is commit 915bbf294bb74c859f0b41f1c23bc395014ea679):
train.py saves ``epoch``, ``best_fitness``, ``model`` and ``ema`` (fp16), ``updates``, ``optimizer``, ``opt``,
``git``, ``date``; ``strip_optimizer`` keeps the EMA as ``model`` and sets the others to None; the Detect ``anchors``
buffer is in grid units; v5.0 also stores an ``anchor_grid`` buffer; names are a list up to v6.2 and a dict from v7.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, first_line
from ..integration.checkpoints import (
    allow_globals,
    checkpoint_label_of,
    checkpoints_trusted,
    data_globals,
    load_trusted,
    load_weights_only,
    referenced_globals,
    refusal,
    scoped_globals,
    zip_pickle_record,
)
from ..integration.checkpoints.formats import native_checkpoint
from ..integration.plugins import ForeignFormat
from ..layers.coord_attention import CoordAtt
from ..layers.efficient_local_attention import ELA
from ..layers.registry import layer_classes
from ..layers.spellings import SPELLINGS
from .rebuild import rebuild

# Attention classes the forks add to models/common.py, by the names their YAML rows use: every spelling of CoordAtt
# (CoordAtt, CA, CoordAttention, CoordinateAttention) and of ELA (ELA, the ELA authors' EfficientLocalizationAttention),
# whose public classes name their tensors as AttnYOLO's layers do (conv1/bn1/conv_h/conv_w; conv/gn). Derived from the
# table of spellings. The forks' SE, CBAM and ECA classes name theirs differently (fc.0, l1, channel_attention.f1).
FORK_ATTENTION_CLASSES: tuple[str, ...] = tuple(
    f"models.common.{s.name}" for s in SPELLINGS if s.layer in (CoordAtt, ELA)
)

# Classes a YOLOv5 checkpoint pickles under the `models` package, and which AttnYOLO rebuilds: the official ones of
# ultralytics/yolov5 v1.0 to v7.0 (models/yolo.py, models/common.py, models/experimental.py), the forks' attention
# classes above and Coordinate Attention's h_swish/h_sigmoid activations.
CLASSIC_CLASSES: tuple[str, ...] = (
    "models.yolo.DetectionModel",
    "models.yolo.Model",
    "models.yolo.Detect",
    "models.common.Conv",
    "models.common.DWConv",
    "models.common.Bottleneck",
    "models.common.BottleneckCSP",
    "models.common.C3",
    "models.common.C3x",
    "models.common.C3TR",
    "models.common.C3Ghost",
    "models.common.GhostConv",
    "models.common.GhostBottleneck",
    "models.common.TransformerBlock",
    "models.common.TransformerLayer",
    "models.common.SPP",
    "models.common.SPPF",
    "models.common.Focus",
    "models.common.Concat",
    *FORK_ATTENTION_CLASSES,
    "models.common.h_swish",
    "models.common.h_sigmoid",
)

# torch.nn classes those models contain (official configurations and versions, and the CA forks).
TORCH_CLASSES: tuple[type, ...] = (
    nn.Conv2d,
    nn.Conv1d,  # ELA's
    nn.BatchNorm2d,
    nn.GroupNorm,  # ELA's
    nn.ModuleList,
    nn.Sequential,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Upsample,
    nn.SiLU,
    nn.LeakyReLU,
    nn.Hardswish,
    nn.ReLU,
    nn.ReLU6,
    nn.Sigmoid,
    nn.Identity,
    nn.Linear,
    nn.MultiheadAttention,
    nn.modules.linear.NonDynamicallyQuantizableLinear,
)


class ClassicStandIn(nn.Module):
    """Base of the code-free stand-ins unpickling creates for YOLOv5's classes; only their state is read."""

    def forward(self, *args):
        """Stand-ins hold weights only; the model that runs is rebuilt from the stored YAML."""
        raise RuntimeError(
            "a stand-in for a YOLOv5 class cannot run; rebuild the model with attnyolo.yolov5.checkpoint"
        )


_STAND_INS: dict[str, type] = {}


def _stand_in(name: str) -> type:
    """The stand-in class for the YOLOv5 class ``name`` (one per name, created on first use)."""
    if name not in _STAND_INS:
        _STAND_INS[name] = type(name.rpartition(".")[2], (ClassicStandIn,), {"__module__": __name__})
    return _STAND_INS[name]


def allowed_globals() -> dict[str, Any]:
    """Every pickle GLOBAL a classic checkpoint may reference, mapped to what unpickling builds for it.

    YOLOv5 classes map to stand-ins, torch.nn classes to themselves, data types (numpy scalars and arrays, paths) as
    every checkpoint reader of the package maps them (:func:`~attnyolo.integration.checkpoints.data_globals`).
    torch's own tensor-rebuilding globals (``torch._utils._rebuild_tensor_v2``, storages, ``collections.OrderedDict``,
    ``builtins.set``, ``_codecs.encode``) are allowed by ``weights_only`` itself.
    """
    entries = {name: _stand_in(name) for name in CLASSIC_CLASSES}
    entries.update({f"{c.__module__}.{c.__qualname__}": c for c in TORCH_CLASSES})
    entries.update(data_globals())
    return entries


def is_classic_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a ``torch.save`` file that pickles a YOLOv5 model (``models.yolo.*``); nothing is run."""
    path = Path(path)
    if not path.is_file():
        return False
    data = zip_pickle_record(path)
    if data is None or b"models.yolo" not in data:  # cheap test first: every .pt Ultralytics opens passes here
        return False
    return any(g.startswith("models.yolo.") for g in referenced_globals(path)[0])


def read_classic(path: str | Path) -> dict:
    """Unpickle a classic YOLOv5 checkpoint with stand-ins for its classes (see the module docstring).

    The torch.nn and data globals it references are registered for the process as every checkpoint reader registers
    them (:func:`~attnyolo.integration.checkpoints.allow_globals`); the stand-ins only for this load
    (:func:`~attnyolo.integration.checkpoints.scoped_globals`), so other readers keep refusing ``models.*`` classes.

    Args:
        path: The checkpoint.

    Returns:
        The checkpoint dict; its ``model``/``ema`` entries are stand-in module trees.

    Raises:
        CheckpointError: The file references a class or function outside :func:`allowed_globals` (named in the
            message, with the opt-in: with ``trust_checkpoint=True`` such a file is unpickled in full, YOLOv5's own
            classes still as stand-ins), is damaged, or torch is too old for allow-listed loading.
    """
    path = Path(path)
    if zip_pickle_record(path) is None:
        raise CheckpointError(f"{path}: not a torch.save zip checkpoint, so not a YOLOv5 checkpoint AttnYOLO reads.")
    if not hasattr(torch.serialization, "safe_globals"):
        raise CheckpointError(
            f"{path}: reading YOLOv5 checkpoints safely needs torch>=2.6 (installed: {torch.__version__}). "
            "Fix: pip install -U torch."
        )
    names, _ = referenced_globals(path, checkpoint_label_of(path))
    allowed = allowed_globals()
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        ours = [g for g in unknown if g.startswith("models.")]
        if ours:
            raise CheckpointError(
                f"{path}: the checkpoint contains {', '.join(ours)}, a class of the YOLOv5 fork that wrote it that "
                f"AttnYOLO cannot rebuild (it reads the official YOLOv5 classes and the forks' "
                f"{', '.join(name.rpartition('.')[2] for name in FORK_ATTENTION_CLASSES)}). Fix: rebuild the model "
                f"from its YAML with an AttnYOLO layer in that row "
                f"({', '.join(layer_classes())}) and train it, or, in the fork, save the weights as a plain "
                f"state_dict and load them into the AttnYOLO model."
            )
        if not checkpoints_trusted():
            unknown = [name for name in names if name in unknown]  # in order of first use, as every refusal names them
            raise refusal(checkpoint_label_of(path), unknown, "YOLOv5")
    stand_ins = {name: allowed[name] for name in names if name in CLASSIC_CLASSES}
    try:
        if unknown:  # only with the user's opt-in (trust_checkpoint=True): full unpickling
            ckpt = load_trusted(path, stand_ins)  # YOLOv5's `models` package must not be imported: stand-ins
        else:
            allow_globals([name for name in names if name not in stand_ins], str(path))
            with scoped_globals(stand_ins):
                ckpt = load_weights_only(path)
    except Exception as error:
        raise CheckpointError(f"{path}: the YOLOv5 checkpoint cannot be read ({first_line(error)}).") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        raise CheckpointError(f"{path}: no model in the checkpoint (expected a dict with 'model' or 'ema').")
    return ckpt


def load(path: str | Path, model: str | None = None, nc: int | None = None) -> tuple[dict, dict]:
    """Read a classic YOLOv5 checkpoint as an Ultralytics checkpoint dict (``ForeignFormat.load``).

    The EMA weights are used when the file has them (train.py's ``last.pt``/``best.pt`` before stripping), else
    ``model``, as YOLOv5's own loader does.

    Returns:
        ``(checkpoint, report)``: the dict Ultralytics' ``Model.save`` writes, with the rebuilt model, and the report.
    """
    path = Path(path)
    ckpt = read_classic(path)
    src = ckpt.get("ema") or ckpt.get("model")
    dst, report = rebuild(src, path, model, nc)
    report = {"entry": "ema" if ckpt.get("ema") is not None else "model", "epoch": ckpt.get("epoch"), **report}
    return native_checkpoint(dst), report


def _format():
    """The :class:`~attnyolo.integration.plugins.ForeignFormat` of classic YOLOv5 checkpoints."""
    return ForeignFormat(
        name="yolov5-classic",
        description="checkpoints of ultralytics/yolov5 v5.0-v7.0 and its forks (models.yolo.DetectionModel)",
        detect=is_classic_checkpoint,
        load=load,
    )


FORMAT = _format()
