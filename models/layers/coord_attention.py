"""Coordinate Attention for Efficient Mobile Network Design (Hou, Zhou, Feng, CVPR 2021), arXiv 2103.02907.

Coordinate Attention factorises global pooling into two 1-D poolings, one along each spatial axis, so the gate keeps
positional information along the other axis. The layer follows the official houqb/CoordAttention block and keeps its
parameter names (conv1, bn1, act, conv_h, conv_w) so its weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.utils.torch_utils import fuse_conv_and_bn

from .fast.paths import apply_strip_gates, needs_module_path, stacked_strip_means
from .validation import positive_int

# Defaults of the official block (arXiv 2103.02907, Sec. 3.2 and houqb/CoordAttention coordatt.py):
# reduction ratio r = 32 and a floor of 8 channels in the shared 1x1 transform.
COORD_ATT_REDUCTION = 32
COORD_ATT_MIN_MIP = 8


class CoordAtt(nn.Module):
    """Coordinate Attention block: two direction-aware gates, one per spatial axis.

    The input is pooled along W (giving one descriptor per row) and along H (one per column); both descriptors are
    concatenated along the spatial axis and pass one shared 1x1 conv + BN + h-swish, then split and map back to C
    channels with separate 1x1 convs and sigmoids. The output is ``x * g_h * g_w``; there is no residual.

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        reduction (int): Reduction ratio r of the shared transform; mip = max(min_mip, C // r).
        min_mip (int): Lower bound on the hidden width mip.

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W), same as the input.

    Attributes:
        mip (int): Hidden width of the shared 1x1 transform.
        fused (bool): Whether ``bn1`` has been folded into ``conv1`` by :meth:`fuse`.

    Examples:
        >>> layer = CoordAtt(64)
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # The fused CPU ops (layers/fast/kernels.py) an eval-mode forward calls; empty for a layer without kernels.
    FUSED_KERNELS: frozenset[str] = frozenset({"strip_means", "apply_strip_gates"})

    def __init__(self, c1: int, reduction: int = COORD_ATT_REDUCTION, min_mip: int = COORD_ATT_MIN_MIP) -> None:
        super().__init__()
        c1 = positive_int("CoordAtt", "c1 (input channels)", c1)
        reduction = positive_int("CoordAtt", "reduction", reduction)
        min_mip = positive_int("CoordAtt", "min_mip", min_mip)
        self.channels = c1
        self.mip = max(min_mip, c1 // reduction)
        self.conv1 = nn.Conv2d(c1, self.mip, kernel_size=1, bias=True)
        self.bn1 = nn.BatchNorm2d(self.mip)
        self.act = nn.Hardswish()  # h-swish, x * ReLU6(x + 3) / 6, as in the paper
        self.conv_h = nn.Conv2d(self.mip, c1, kernel_size=1, bias=True)
        self.conv_w = nn.Conv2d(self.mip, c1, kernel_size=1, bias=True)

    @property
    def fused(self) -> bool:
        """Whether ``bn1`` has been folded into ``conv1``."""
        return isinstance(self.bn1, nn.Identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x`` (N, C, H, W) by its row and column attention; returns a tensor of the same shape.

        Two paths compute the same equations. Training, autograd, tracing/compiling (export) and anyone watching a
        submodule through a hook (FLOP counters, feature extractors) get the module-by-module path. Inference in eval
        mode takes a leaner path: the three 1x1 convs run as batched matmuls on the pooled (N, C, H + W) descriptor,
        activations work in place, and the strip means and ``x * g_h * g_w`` are one pass each over ``x`` (the fused
        CPU kernels of ``fast/kernels.py``; elsewhere ``x * g_h`` then an in-place ``*= g_w``, one x-sized allocation).
        Outputs agree within 1e-5 (tests/layers/test_layers.py, tests/layers/test_kernels.py).
        """
        n, c, h, w = x.shape
        if needs_module_path(self):
            # mean() instead of AdaptiveAvgPool2d((None, 1)): same numbers, but FLOP counters, dynamic-shape ONNX
            # export and CUDA deterministic backward all handle it.
            z_h = x.mean(3, keepdim=True)  # (N, C, H, 1)
            z_w = x.mean(2, keepdim=True).permute(0, 1, 3, 2)  # (N, C, W, 1), stacked under z_h: one conv serves both
            f = self.act(self.bn1(self.conv1(torch.cat((z_h, z_w), dim=2))))  # (N, mip, H + W, 1)
            f_h, f_w = torch.split(f, [h, w], dim=2)
            g_h = self.conv_h(f_h).sigmoid()  # (N, C, H, 1)
            g_w = self.conv_w(f_w.permute(0, 1, 3, 2)).sigmoid()  # (N, C, 1, W)
            return x * g_h * g_w

        z = stacked_strip_means(x)  # (N, C, H + W): row means, then column means
        f = torch.baddbmm(self.conv1.bias.view(1, -1, 1), self.conv1.weight.view(1, self.mip, c).expand(n, -1, -1), z)
        if not self.fused:
            bn = self.bn1
            f = nn.functional.batch_norm(f, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        nn.functional.hardswish(f, inplace=True)
        g_h = torch.baddbmm(
            self.conv_h.bias.view(1, -1, 1), self.conv_h.weight.view(1, c, self.mip).expand(n, -1, -1), f[:, :, :h]
        ).sigmoid_()
        g_w = torch.baddbmm(
            self.conv_w.bias.view(1, -1, 1), self.conv_w.weight.view(1, c, self.mip).expand(n, -1, -1), f[:, :, h:]
        ).sigmoid_()
        return apply_strip_gates(x, g_h, g_w)

    def fuse(self) -> None:
        """Fold ``bn1`` into ``conv1`` for inference and replace ``bn1`` with ``nn.Identity``; safe to call twice.

        Uses Ultralytics' ``fuse_conv_and_bn``, which delegates to ``torch.nn.utils.fusion.fuse_conv_bn_weights`` and
        so keeps conv1's own bias: b' = (b - running_mean) * gamma / sqrt(running_var + eps) + beta. The fold uses the
        running statistics, so it matches eval-mode outputs only; like Ultralytics' fused convs, ``conv1`` is frozen
        (requires_grad=False) afterwards.
        """
        if self.fused:
            return
        self.conv1 = fuse_conv_and_bn(self.conv1, self.bn1)
        self.bn1 = nn.Identity()
