"""CBAM: Convolutional Block Attention Module (Woo, Park, Lee, Kweon, ECCV 2018), arXiv 1807.06521.

CBAM applies a channel gate and then a spatial gate. The channel gate feeds the average- and max-pooled descriptors
through one shared MLP; the spatial gate convolves the channel-wise mean and max maps. The class is named
CBAMAttention so it does not collide with the ``CBAM`` that Ultralytics already ships, which has a different channel
branch. It is one of the baselines that the Coordinate Attention and ELA papers compare against.
"""

from __future__ import annotations

import torch
from torch import nn

from .fast.kernels import fused_ops, usable
from .fast.paths import needs_module_path
from .validation import positive_int

# Reduction ratio r = 16 and a 7x7 spatial kernel, the paper's defaults (arXiv 1807.06521).
CBAM_REDUCTION = 16
CBAM_KERNEL_SIZE = 7


class CBAMAttention(nn.Module):
    """Convolutional Block Attention Module: channel gate, then spatial gate.

    Channel gate: ``M_c = sigmoid(MLP(mean_hw(x)) + MLP(max_hw(x)))`` with one shared MLP C -> C/r -> C (ReLU between),
    ``x' = x * M_c``. Spatial gate: ``M_s = sigmoid(conv_kxk([mean_c(x'); max_c(x')]))``, output ``x' * M_s``.

    Bias choices: the MLP layers have biases, as the paper's fully connected layers and the official code's
    ``nn.Linear`` do (they are 1x1 convs here, the same computation on (N, C, 1, 1)). The spatial conv follows the
    paper's equation, a bare convolution, and keeps its bias. # NOTE: not in paper: the official code adds a BatchNorm
    (and drops the bias) after the spatial conv and stacks the maps as [max; mean]; this layer uses the paper's
    [mean; max] order without BatchNorm, so those weights do not load one-to-one.

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        reduction (int): Reduction ratio r; the hidden width is max(1, C // r).
        kernel_size (int): Odd kernel size k of the spatial conv (the paper uses 7, and compares with 3).

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W), same as the input.

    Attributes:
        hidden (int): Width of the shared MLP's hidden layer.
        kernel_size (int): Kernel size of the spatial conv.

    Examples:
        >>> layer = CBAMAttention(64)
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # The fused CPU ops (layers/fast/kernels.py) an eval-mode forward calls; empty for a layer without kernels.
    FUSED_KERNELS: frozenset[str] = frozenset(
        {"mean_max_pool", "gated_channel_mean_max", "spatial_conv", "apply_channel_spatial"}
    )

    def __init__(self, c1: int, reduction: int = CBAM_REDUCTION, kernel_size: int = CBAM_KERNEL_SIZE) -> None:
        super().__init__()
        self.channels = positive_int("CBAMAttention", "c1 (input channels)", c1)
        positive_int("CBAMAttention", "reduction", reduction)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            # An even kernel with padding k // 2 would change the output size; Ultralytics' width scaling has also
            # been seen to turn a 7 into an even "channel count" (ultralytics #19733).
            raise ValueError(
                f"CBAMAttention: kernel_size must be a positive odd int such as 3 or 7, got {kernel_size!r}."
            )
        # NOTE: not in paper: the floor of 1 keeps the MLP buildable when C < r (thin width-scaled layers).
        self.hidden = max(1, c1 // reduction)
        self.kernel_size = kernel_size
        self.fc1 = nn.Conv2d(c1, self.hidden, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(self.hidden, c1, kernel_size=1, bias=True)
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=True)

    def _mlp(self, s: torch.Tensor) -> torch.Tensor:
        """Shared MLP on a pooled descriptor (N, C, 1, 1)."""
        return self.fc2(self.act(self.fc1(s)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x`` (N, C, H, W) by channel, then by position; returns a tensor of the same shape.

        Training, autograd, tracing/compiling and hooked submodules (FLOP counters) take the module-by-module path;
        inference in eval mode runs the shared MLP once on the stacked mean and max vectors (two matrix products
        instead of four conv calls). On a CPU float32 map the fused kernels (``fast/kernels.py``) then read ``x`` three
        times in all (pools; channel mean/max of the gated map, which is never written; both gates applied in one
        read and one write); elsewhere the spatial gate is applied in place on the channel-gated tensor, one x-sized
        allocation. Outputs agree within 1e-5 (tests/layers/test_layers.py, tests/layers/test_kernels.py).
        """
        if needs_module_path(self):
            m_c = (self._mlp(x.mean((2, 3), keepdim=True)) + self._mlp(x.amax((2, 3), keepdim=True))).sigmoid()
            x = x * m_c  # (N, C, H, W)
            maps = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)  # (N, 2, H, W)
            return x * self.spatial(maps).sigmoid()

        n, c = x.shape[0], x.shape[1]
        sp = self.spatial
        kernels = fused_ops() if usable(x) else None
        # (2N, C): mean rows, then max rows; the kernel reads x once for both
        pooled = kernels.mean_max_pool(x) if kernels else torch.cat((x.mean((2, 3)), x.amax((2, 3))))
        hidden = torch.addmm(self.fc1.bias, pooled, self.fc1.weight.view(self.hidden, c).t()).relu_()
        both = torch.addmm(self.fc2.bias, hidden, self.fc2.weight.view(c, self.hidden).t())  # (2N, C)
        gate = torch.add(both[:n], both[n:]).sigmoid_()  # (N, C)
        if kernels:  # the channel-gated map is never written: its channel mean/max come from x and the gate
            maps = kernels.gated_channel_mean_max(x, gate)  # (N, 2, H, W)
            spatial = kernels.spatial_conv(maps, sp.weight, sp.bias).sigmoid_()
            return kernels.apply_channel_spatial(x, gate, spatial)
        out = x * gate.view(n, c, 1, 1)
        maps = torch.cat((out.mean(1, keepdim=True), out.amax(1, keepdim=True)), dim=1)  # (N, 2, H, W)
        return out.mul_(nn.functional.conv2d(maps, sp.weight, sp.bias, padding=sp.padding).sigmoid_())
