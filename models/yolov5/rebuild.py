"""A YOLOv5 model read from a checkpoint (stand-ins holding its weights) rebuilt as an AttnYOLO model.

:func:`attnyolo.yolov5.checkpoint.read_classic` unpickles a classic checkpoint with code-free stand-ins for YOLOv5's
classes; :func:`rebuild` builds the model again from its stored ``yaml`` with AttnYOLO's classes (Ultralytics'
Conv/C3/SPPF/..., which use YOLOv5's submodule names; YOLOv5's Bottleneck/BottleneckCSP, :mod:`attnyolo.yolov5.blocks`;
:class:`~attnyolo.yolov5.head.YOLOv5Detect`; AttnYOLO's CoordAtt and ELA), loads the state dict strictly (every tensor
must land), and keeps the class names (list or dict), strides and anchors. What the YAML does not say is taken from
the file: activations that YOLOv5 before v6.0 built into Conv, and the ELA variant and CoordAtt hidden width the
fork's tensors show.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from ultralytics.nn import tasks
from ultralytics.nn.tasks import DetectionModel

from ..errors import CheckpointError, ModelConfigError
from ..integration.plugins import head_of
from ..layers.coord_attention import CoordAtt
from ..layers.efficient_local_attention import ELA, ELA_VARIANTS
from .head import YOLOv5Detect

_ACTIVATIONS = (nn.SiLU, nn.LeakyReLU, nn.Hardswish, nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Identity)


def _build_dict(src: nn.Module, path: Path, model: str | None) -> dict:
    """The model dict to rebuild from: the checkpoint's stored ``yaml`` (or the YAML ``model`` names)."""
    if model is not None:
        return tasks.yaml_model_load(model)  # through the module: the wrapped one, read after the seam patched it
    yaml = getattr(src, "yaml", None)
    if not isinstance(yaml, dict) or not yaml.get("backbone"):
        raise CheckpointError(
            f"{path}: the checkpoint stores no model YAML (its model has no 'yaml' dict). Fix: pass the YAML it was "
            "trained from, e.g. attnyolo import_weights source=best.pt out=imported.pt model=yolov5s.yaml."
        )
    d = copy.deepcopy(yaml)
    d.pop("ch", None)
    d["yaml_file"] = str(getattr(src, "yaml_file", None) or yaml.get("yaml_file") or f"{path.name} (stored yaml)")
    return d


def _copy_activations(src: nn.Module, dst: nn.Module) -> int:
    """Give each of ``dst``'s activations the type the checkpoint's module at the same path has; return the count.

    YOLOv5 before v6.0 built LeakyReLU or Hardswish into Conv without naming it in the YAML; the stand-in tree still
    holds the real activation modules (torch classes), so they are reused.
    """
    # remove_duplicate=False: Ultralytics' convs share one activation instance (Conv.default_act), met at every path
    changed, dst_modules = 0, dict(dst.named_modules(remove_duplicate=False))
    for name, m in src.named_modules(remove_duplicate=False):
        if not isinstance(m, _ACTIVATIONS) or name not in dst_modules:
            continue
        mine = dst_modules[name]
        if type(mine) is not type(m) or getattr(mine, "negative_slope", None) != getattr(m, "negative_slope", None):
            parent, _, attr = name.rpartition(".")
            setattr(dst.get_submodule(parent) if parent else dst, attr, m)
            changed += 1
    return changed


def _ela_variant(weight: torch.Tensor) -> str | None:
    """The ELA variant whose shared Conv1d has this weight's shape (C, C / groups, k); None if no variant's does."""
    per_group, k = int(weight.shape[1]), int(weight.shape[2])
    for name, spec in ELA_VARIANTS.items():
        if spec.kernel_size == k and (spec.channels_per_group or 1) == per_group:
            return name
    return None


def _fit_ela(dst: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Rebuild ELA layers whose variant differs from the one the checkpoint's tensors show; return how many.

    A bare ``ELA`` row builds ELA-B, the form of the widely copied ``ELA(channel, kernel_size=7)``; a fork that built
    another kernel or grouping left tensors of that shape, and the tensors decide.
    """
    fitted = 0
    for name, m in list(dst.named_modules()):
        key = f"{name}.conv.weight"
        if not isinstance(m, ELA) or key not in state or state[key].shape == m.conv.weight.shape:
            continue
        variant = _ela_variant(state[key])
        if variant is None:
            continue  # the strict load names the tensor
        layer = ELA(m.channels, variant)
        for attr in ("i", "f", "type", "np"):
            if hasattr(m, attr):
                setattr(layer, attr, getattr(m, attr))
        parent, _, attr = name.rpartition(".")
        setattr(dst.get_submodule(parent) if parent else dst, attr, layer)
        fitted += 1
    return fitted


def _fit_coordatt(dst: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Rebuild CoordAtt layers whose hidden width differs from the checkpoint's; return how many.

    The hidden width ``mip = max(8, C // reduction)`` depends on how the fork read its row (a ``[c, c]`` row is a
    reduction ratio of c in a fork that scales CoordAtt like Conv): the weights say what was built.
    """
    fitted = 0
    for name, m in list(dst.named_modules()):
        key = f"{name}.conv1.weight"
        if not isinstance(m, CoordAtt) or key not in state or state[key].shape[0] == m.mip:
            continue
        c, mip = m.channels, int(state[key].shape[0])
        reduction = c // mip if mip >= 8 and c // (c // mip) == mip else c + 1  # else: min_mip alone sets the width
        layer = CoordAtt(c, reduction, min(mip, 8) if reduction <= c else mip)
        for attr in ("i", "f", "type", "np"):
            if hasattr(m, attr):
                setattr(layer, attr, getattr(m, attr))
        parent, _, attr = name.rpartition(".")
        setattr(dst.get_submodule(parent) if parent else dst, attr, layer)
        fitted += 1
    return fitted


def _names(src: nn.Module, nc: int) -> dict[int, str]:
    """Class names as Ultralytics keeps them ({index: name}); YOLOv5 up to v6.2 and most forks store a list."""
    names = getattr(src, "names", None)
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, (list, tuple)):
        return dict(enumerate(map(str, names)))
    return {i: str(i) for i in range(nc)}


def rebuild(src: nn.Module, path: Path, model: str | None = None, nc: int | None = None):
    """Build the AttnYOLO ``DetectionModel`` of a stand-in YOLOv5 model and load its weights strictly.

    Args:
        src: The ``model`` or ``ema`` entry :func:`~attnyolo.yolov5.checkpoint.read_classic` returned.
        path: The file, for messages.
        model: A model YAML to build instead of the stored one.
        nc: Expected number of classes (must match the checkpoint's).

    Returns:
        ``(model, report)``: the float32 model in eval mode and a dict of what was mapped.

    Raises:
        CheckpointError: The rebuilt model does not take every tensor of the checkpoint, or ``nc`` differs.
    """
    d = _build_dict(src, path, model)
    src_nc = int(getattr(src, "nc", None) or d.get("nc") or 0)
    if nc is not None and src_nc and int(nc) != src_nc:
        raise CheckpointError(
            f"nc={nc}: {path} was trained for {src_nc} classes; its head cannot be mapped to {nc}. Fix: leave nc out "
            "(fine-tune on your data afterwards with attnyolo train pretrained=...)."
        )
    d["nc"] = src_nc or d.get("nc")
    try:
        dst = DetectionModel(d, ch=int(getattr(src, "yaml", {}).get("ch", 3) or 3), verbose=False)
    except (ModelConfigError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"{path}: the model stored in the checkpoint cannot be rebuilt: {error}") from None
    if not isinstance(dst.model[-1], YOLOv5Detect) and model is not None:
        # the file is a classic YOLOv5 checkpoint (read_classic found its classes); the YAML named by model= is not
        head, registered = dst.model[-1], head_of(dst)
        family = registered.family if registered is not None else f"{type(head).__name__}-headed (anchor-free)"
        raise CheckpointError(
            f"{path} is a classic YOLOv5 checkpoint, but model={model} names a {family} model, not a classic YOLOv5 "
            "one (anchor-based Detect). Fix: leave model= out (the YAML stored in the file is used) or pass a classic "
            "YOLOv5 YAML such as yolov5s-classic.yaml."
        )
    if not isinstance(dst.model[-1], YOLOv5Detect):
        raise CheckpointError(f"{path}: the stored YAML's last row is not an anchor-based Detect; not a YOLOv5 model.")
    state = {k: v.float() if v.is_floating_point() else v for k, v in src.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith(".anchor_grid")}  # a v5.0 buffer, recomputed at run time
    activations = _copy_activations(src, dst)
    coordatt = _fit_coordatt(dst, state)
    ela = _fit_ela(dst, state)
    mine = dst.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    shapes = [k for k, v in state.items() if k in mine and mine[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [
            f"{n} {label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for label, keys, n in (
                ("missing", missing, len(missing)),
                ("unexpected", unexpected, len(unexpected)),
                ("of another shape", shapes, len(shapes)),
            )
            if keys
        ]
        raise CheckpointError(
            f"{path}: the weights do not fit the model its YAML builds ({'; '.join(parts)}). Fix: pass the YAML the "
            "model was trained from with model=..."
        )
    dst.load_state_dict(state, strict=True)
    head = dst.model[-1]
    stride = getattr(src, "stride", None)
    if isinstance(stride, torch.Tensor) and stride.numel() == head.nl:
        dst.stride = stride.float().clone()
        head.stride = stride.float().clone()
    dst.names = _names(src, head.nc)
    dst.eval()
    report = {
        "classes": head.nc,
        "names": ", ".join(list(dst.names.values())[:5]) + (" ..." if len(dst.names) > 5 else ""),
        "tensors": len(state),
        "parameters": sum(p.numel() for p in dst.parameters()),
        "yaml": d["yaml_file"],
    }
    if activations:
        report["activations"] = f"{activations} taken from the checkpoint"
    if coordatt:
        report["coordatt"] = f"{coordatt} layers rebuilt with the checkpoint's hidden width"
    if ela:
        report["ela"] = f"{ela} layers rebuilt as the variant the checkpoint's tensors show"
    return dst, report
