"""YOLOv5's own ``Bottleneck`` and ``BottleneckCSP``, which differ from Ultralytics' blocks of the same names.

Facts restated from github.com/ultralytics/yolov5 (``models/common.py``, tag v7.0, commit
915bbf294bb74c859f0b41f1c23bc395014ea679; the same layout since v1.0):

* ``Bottleneck(c1, c2, shortcut=True, g=1, e=0.5)``: ``cv1`` a 1x1 Conv to ``int(c2 * e)`` channels, ``cv2`` a 3x3
  Conv (groups ``g``) to ``c2``, a residual add when ``shortcut`` and ``c1 == c2``. Ultralytics' ``Bottleneck`` makes
  both convs 3x3 (``k=(3, 3)``) and takes ``k`` as its fifth argument, where YOLOv5 takes ``e``.
* ``BottleneckCSP(c1, c2, n=1, shortcut=True, g=1, e=0.5)``: Ultralytics' layout (``cv1``..``cv4``, ``bn``, ``act``,
  ``m``) with ``n`` of the Bottlenecks above (``e=1.0``) in ``m``.

The classes subclass Ultralytics' and keep every submodule name, so YOLOv5 state dicts load key for key.
:mod:`attnyolo.integration.parser` builds them for the ``Bottleneck`` and ``BottleneckCSP`` rows of classic
(anchor-based) YOLOv5 models; other models keep Ultralytics' blocks. The class paths are part of the checkpoint format.
"""

from __future__ import annotations

from torch import nn
from ultralytics.nn.modules import Bottleneck, BottleneckCSP

# Kernel sizes of YOLOv5's Bottleneck: cv1 1x1, cv2 3x3.
YOLOV5_BOTTLENECK_KERNELS = (1, 3)


class YOLOv5Bottleneck(Bottleneck):
    """YOLOv5's Bottleneck: a 1x1 Conv to ``int(c2 * e)`` channels, a 3x3 Conv to ``c2``, a residual add.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        shortcut (bool): Add the input when ``c1 == c2``.
        g (int): Groups of the 3x3 conv.
        e (float): Hidden channels as a fraction of ``c2``.

    Examples:
        >>> block = YOLOv5Bottleneck(64, 64)
        >>> block.cv1.conv.kernel_size, block.cv2.conv.kernel_size
        ((1, 1), (3, 3))
    """

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5) -> None:
        super().__init__(c1, c2, shortcut, g, k=YOLOV5_BOTTLENECK_KERNELS, e=e)


class YOLOv5BottleneckCSP(BottleneckCSP):
    """YOLOv5's BottleneckCSP: Ultralytics' CSP layout around ``n`` :class:`YOLOv5Bottleneck` blocks.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of Bottleneck blocks.
        shortcut (bool): Residual adds inside the blocks.
        g (int): Groups of the blocks' 3x3 convs.
        e (float): Hidden channels as a fraction of ``c2``.

    Examples:
        >>> csp = YOLOv5BottleneckCSP(64, 64, n=2)
        >>> sum(p.numel() for p in csp.parameters())
        19200
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5) -> None:
        super().__init__(c1, c2, 0, shortcut, g, e)  # n=0: the blocks are YOLOv5's, made below
        c_ = self.cv1.conv.out_channels
        # reassigning `m` keeps its place among the submodules, so the state dict's key order is YOLOv5's too
        self.m = nn.Sequential(*(YOLOv5Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))


# YAML row name -> the block a classic YOLOv5 model builds for it.
CLASSIC_BLOCKS: dict[str, type[nn.Module]] = {"Bottleneck": YOLOv5Bottleneck, "BottleneckCSP": YOLOv5BottleneckCSP}
