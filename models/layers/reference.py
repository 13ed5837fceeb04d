"""Reference implementations of every attention layer's equations, written as the papers state them.

Each function takes a layer (for its weights only) and an input, and computes the output with torch's functional
operators in the papers' order: pool, transform, gate, multiply. They share no code with the layers' ``forward``
(neither the module path nor the inference fast path nor the fused kernels), so tests hold every path of every layer
to them, the benchmark times the layers against them, and the visualiser reads the CA/ELA gates from them.

Sources: Coordinate Attention, Hou et al. CVPR 2021 (arXiv 2103.02907, Sec. 3.2; github houqb/CoordAttention
coordatt.py); ELA, Xu & Wan 2024 (arXiv 2403.01123, Sec. 3 and Fig. 4); SE, Hu et al. 2018 (arXiv 1709.01507);
CBAM, Woo et al. 2018 (arXiv 1807.06521); ECA, Wang et al. 2020 (arXiv 1910.03151).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _batch_norm(f: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """Apply ``bn`` functionally: batch statistics in training mode, running statistics otherwise; Identity as is."""
    if not isinstance(bn, nn.BatchNorm2d):  # folded into conv1 by fuse()
        return f
    # momentum 0: the reference never moves the layer's running statistics, even in training mode
    return F.batch_norm(f, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.training, 0.0, bn.eps)


def coord_att_gates(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinate Attention's gates ``g^h`` (N, C, H, 1) and ``g^w`` (N, C, 1, W).

    ``z^h`` = mean over W, ``z^w`` = mean over H; ``f = h_swish(BN(F1([z^h; z^w])))`` with F1 a 1x1 conv C -> mip;
    ``g^h = sigmoid(F_h(f^h))``, ``g^w = sigmoid(F_w(f^w))`` with F_h, F_w 1x1 convs mip -> C.
    """
    h, w = x.shape[2], x.shape[3]
    z = torch.cat((x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)), dim=2)  # (N, C, H + W, 1)
    f = F.hardswish(_batch_norm(F.conv2d(z, layer.conv1.weight, layer.conv1.bias), layer.bn1))
    f_h, f_w = f.split([h, w], dim=2)
    g_h = F.conv2d(f_h, layer.conv_h.weight, layer.conv_h.bias).sigmoid()
    g_w = F.conv2d(f_w, layer.conv_w.weight, layer.conv_w.bias).sigmoid().transpose(2, 3)
    return g_h, g_w


def coord_att(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Coordinate Attention: ``Y = X * g^h * g^w`` (no residual)."""
    g_h, g_w = coord_att_gates(layer, x)
    return x * g_h * g_w


def ela_gates(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ELA's gates ``a_h`` (N, C, H, 1) and ``a_w`` (N, C, 1, W): ONE Conv1d and ONE GroupNorm shared by both."""

    def gate(z: torch.Tensor) -> torch.Tensor:
        conv, gn = layer.conv, layer.gn
        y = F.conv1d(z, conv.weight, None, padding=conv.kernel_size[0] // 2, groups=conv.groups)
        return F.group_norm(y, gn.num_groups, gn.weight, gn.bias, gn.eps).sigmoid()

    return gate(x.mean(3)).unsqueeze(3), gate(x.mean(2)).unsqueeze(2)


def ela(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Efficient Local Attention: ``Y = X * a_h * a_w`` (no channel reduction, no BatchNorm, no residual)."""
    a_h, a_w = ela_gates(layer, x)
    return x * a_h * a_w


def _mlp(layer: nn.Module, s: torch.Tensor) -> torch.Tensor:
    """The two-layer bottleneck C -> C/r -> C with ReLU shared by SE and CBAM (1x1 convs on (N, C, 1, 1))."""
    return F.conv2d(F.relu(F.conv2d(s, layer.fc1.weight, layer.fc1.bias)), layer.fc2.weight, layer.fc2.bias)


def squeeze_excite(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SE: global average pool -> FC C -> C/r -> ReLU -> FC -> sigmoid -> scale."""
    return x * _mlp(layer, x.mean((2, 3), keepdim=True)).sigmoid()


def cbam(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CBAM: channel gate (shared MLP on mean and max pools, summed, sigmoid), then spatial gate.

    The spatial gate convolves the stacked channel-wise [mean; max] maps of the channel-gated input with a k x k conv.
    """
    x0 = x
    x = x * (_mlp(layer, x.mean((2, 3), keepdim=True)) + _mlp(layer, x.amax((2, 3), keepdim=True))).sigmoid()
    maps = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)  # (N, 2, H, W)
    sp = layer.spatial
    y = x * F.conv2d(maps, sp.weight, sp.bias, padding=sp.kernel_size[0] // 2).sigmoid()
    return x0 + y if getattr(layer, "residual", False) else y  # External-Attention-pytorch's CBAMBlock adds x


def eca(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ECA: global average pool -> Conv1d across channels (a fork's ECAAttention adds a bias) -> sigmoid -> scale."""
    s = x.mean((2, 3)).unsqueeze(1)  # (N, 1, C)
    k = layer.conv.kernel_size[0]
    gate = F.conv1d(s, layer.conv.weight, layer.conv.bias, padding=k // 2).sigmoid()
    return x * gate.view(x.shape[0], x.shape[1], 1, 1)


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm statistic random non-trivial values, so no gate term hides as 0 or 1.

    Weights get a standard deviation of 1/sqrt(fan-in), as trained layers roughly have; with a fixed scale a
    512-channel layer's pre-activations grow to hundreds, its sigmoids saturate (hiding the very terms a test should
    see) and float32 rounding alone exceeds 1e-5. Biases and other vectors get N(0, 0.5^2).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            scale = 0.5 if p.dim() < 2 else p[0].numel() ** -0.5  # p[0]: one output's weights = fan-in
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module
