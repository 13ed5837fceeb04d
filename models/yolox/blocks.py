"""Depthwise-separable convolution of YOLOX-Nano (YOLOX: Exceeding YOLO Series in 2021, arXiv 2107.08430).

Source: github Megvii-BaseDetection/YOLOX, ``yolox/models/network_blocks.py``, class ``DWConv``.

YOLOX-Nano replaces every 3x3 convolution of the backbone, PAFPN and head, except the Focus stem's, by a depthwise
k x k convolution (Conv + BN + SiLU, one group per channel) followed by a pointwise 1x1 convolution (Conv + BN + SiLU).
The 1x1 convolutions (CSP branches, SPP, PAFPN's lateral_conv0 and reduce_conv1, head stems) stay as they are.

Both halves are Ultralytics ``Conv`` modules, so ``BaseModel.fuse`` folds their BatchNorms like any other Conv.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules import Conv, Focus


class DWSepConv(nn.Module):
    """Depthwise k x k Conv+BN+act, then pointwise 1x1 Conv+BN+act (YOLOX ``DWConv``).

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        k (int): Kernel size of the depthwise convolution.
        s (int): Stride of the depthwise convolution.
        act (bool | nn.Module): Activation of both halves; ``True`` means Ultralytics' default (SiLU).

    Shape:
        - Input: (N, c1, H, W).
        - Output: (N, c2, H / s, W / s).

    Attributes:
        dconv (Conv): The depthwise half (``groups = c1``); named as in YOLOX so its weights load by key.
        pconv (Conv): The pointwise half.

    Examples:
        >>> m = DWSepConv(16, 32, 3, 2)
        >>> m(torch.randn(1, 16, 32, 32)).shape
        torch.Size([1, 32, 16, 16])
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, act: bool | nn.Module = True) -> None:
        super().__init__()
        self.dconv = Conv(c1, c1, k, s, g=c1, act=act)
        self.pconv = Conv(c1, c2, 1, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the depthwise then the pointwise convolution."""
        return self.pconv(self.dconv(x))


def _is_full_3x3(m: nn.Module) -> bool:
    """Whether ``m`` is an Ultralytics Conv with a dense (groups = 1) square kernel larger than 1."""
    if type(m) is not Conv:  # exact type: DWConv, RepConv and other Conv subclasses keep their own structure
        return False
    conv = m.conv
    return conv.groups == 1 and conv.kernel_size[0] == conv.kernel_size[1] > 1


def make_depthwise_separable(module: nn.Module) -> int:
    """Replace, in place, every dense k x k Ultralytics ``Conv`` under ``module`` by a :class:`DWSepConv`.

    The Focus stem keeps its dense convolution, as in YOLOX-Nano (its ``Focus`` always uses ``BaseConv``). Kernel
    size, stride and activation carry over; 1x1 convolutions are untouched. Call it on a freshly built model: the new
    layers are freshly initialised.

    Args:
        module: A network (typically the ``nn.Sequential`` built by Ultralytics' parser).

    Returns:
        The number of convolutions replaced.

    Examples:
        >>> seq = nn.Sequential(Conv(8, 16, 3, 2), Conv(16, 16, 1))
        >>> make_depthwise_separable(seq)
        1
        >>> type(seq[0]).__name__
        'DWSepConv'
    """
    replaced = 0
    for name, child in module.named_children():
        if isinstance(child, Focus):
            continue
        if _is_full_3x3(child):
            conv = child.conv
            new = DWSepConv(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], act=child.act)
            # Ultralytics' parser tags each row with i/f/type/np; a replaced row must keep its routing tags. Only tags
            # the parser set: every module has a `type` method, and storing that bound method would pickle the whole
            # replaced dense conv into checkpoints (through `getattr`).
            for tag in ("i", "f", "type", "np"):
                if tag in vars(child):
                    setattr(new, tag, vars(child)[tag])
            setattr(module, name, new)
            replaced += 1
        else:
            replaced += make_depthwise_separable(child)
    return replaced
