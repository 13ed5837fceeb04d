"""Methods Ultralytics calls on a built model, extended to AttnYOLO's layers and heads.

* ``BaseModel.fuse`` folds only Ultralytics' own conv/BN pairs; :func:`wrap_fuse` also folds CoordAtt's BatchNorm.
* ``DetectionModel.init_criterion`` knows only Ultralytics' losses; :func:`wrap_init_criterion` gives a model ending
  in a registered head (:data:`attnyolo.integration.plugins.HEADS`: YOLOX's, classic YOLOv5's) that head's loss.
* ``ultralytics.utils.torch_utils.get_flops`` sizes its probe image by the first parameter's input channels, which are
  12 for a Focus stem (YOLOX), so it returned 0 GFLOPs; :func:`wrap_get_flops` tells it the model's real input channels.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from ultralytics.utils.torch_utils import unwrap_model

from ..layers.coord_attention import CoordAtt
from .plugins import head_of


def wrap_fuse(original):
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


def wrap_get_flops(original):
    """Return a get_flops that profiles Focus-stem models (YOLOX) with their real input channels.

    Ultralytics builds its probe image with ``next(model.parameters()).shape[1]`` channels: right for a conv stem,
    but 4x too many for a Focus stem, whose first conv sees the space-to-depth output; the forward then fails and
    get_flops reports 0. Such models are passed on inside :class:`_FlopsInput`, so Ultralytics' own code measures them.
    """

    @functools.wraps(original)
    def get_flops(model, imgsz=640):
        """GFLOPs as Ultralytics measures them, with the probe image given the model's input channels."""
        inner = unwrap_model(model)
        ch = (getattr(inner, "yaml", None) or {}).get("channels") if isinstance(inner, nn.Module) else None
        first = next(inner.parameters(), None) if isinstance(inner, nn.Module) else None
        if not isinstance(ch, int) or first is None or first.ndim < 2 or first.shape[1] == ch:
            return original(model, imgsz)
        return original(_FlopsInput(inner, ch, first), imgsz)

    get_flops._attnyolo_original = original
    return get_flops


def wrap_init_criterion(original):
    """Return a DetectionModel.init_criterion that gives a model ending in a registered head that head's loss."""

    @functools.wraps(original)
    def init_criterion(self):
        """The registered head's loss (YOLOXLoss, YOLOv5Loss), Ultralytics' own criterion for its own heads."""
        head = head_of(self)
        return head.loss(self) if head is not None else original(self)

    init_criterion._attnyolo_original = original
    return init_criterion
