"""CBAM: Convolutional Block Attention Module (Woo, Park, Lee, Kweon, ECCV 2018), arXiv 1807.06521.

CBAM applies a channel gate and then a spatial gate. The channel gate feeds the average- and max-pooled descriptors
through one shared MLP; the spatial gate convolves the channel-wise mean and max maps. The class is named
CBAMAttention so it does not collide with the ``CBAM`` that Ultralytics already ships, which has a different channel
branch. It is one of the baselines that the Coordinate Attention and ELA papers compare against.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.conv import CBAM

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

    Forms of the public YOLO forks (# NOTE: not in paper), chosen by the arguments below: ``bias=False`` is the YOLOv5
    forks' ``CBAM(c1, c2, ratio=16, kernel_size=7)`` (bias-free 1x1-conv MLP and spatial conv); ``bias=False,
    spatial_bias=True, residual=True`` with ``kernel_size=49`` is ``CBAMBlock(channel=512, reduction=16,
    kernel_size=49)`` of github xmu-xiaoma666/External-Attention-pytorch (model/attention/CBAM.py), which returns
    ``x + CBAM(x)`` and stacks the spatial maps as [max; mean] (the same layer with its spatial conv's two input
    channels swapped, so counts and training are identical; its weights load with that swap).

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        reduction (int): Reduction ratio r; the hidden width is max(1, C // r).
        kernel_size (int): Odd kernel size k of the spatial conv (the paper uses 7, and compares with 3).
        bias (bool): Whether the shared MLP's layers have biases (the paper's form).
        spatial_bias (bool | None): Whether the spatial conv has a bias; None means the same as ``bias``.
        residual (bool): Return ``x + CBAM(x)`` (External-Attention-pytorch's CBAMBlock) instead of ``CBAM(x)``.

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W), same as the input.

    Attributes:
        hidden (int): Width of the shared MLP's hidden layer.
        kernel_size (int): Kernel size of the spatial conv.
        variant (str | None): The fork form's name (``"bias-free"``, ``"CBAMBlock"``); None for the paper's form.

    Examples:
        >>> layer = CBAMAttention(64)
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # The fused CPU ops (layers/fast/kernels.py) an eval-mode forward calls; empty for a layer without kernels.
    FUSED_KERNELS: frozenset[str] = frozenset(
        {"mean_max_pool", "gated_channel_mean_max", "spatial_conv", "apply_channel_spatial"}
    )

    def __init__(
        self,
        c1: int,
        reduction: int = CBAM_REDUCTION,
        kernel_size: int = CBAM_KERNEL_SIZE,
        bias: bool = True,
        spatial_bias: bool | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        spatial_bias = bias if spatial_bias is None else spatial_bias
        for name, value in (("bias", bias), ("spatial_bias", spatial_bias), ("residual", residual)):
            if not isinstance(value, bool):
                raise ValueError(f"CBAMAttention: {name} must be true or false, got {value!r}.")
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
        self.fc1 = nn.Conv2d(c1, self.hidden, kernel_size=1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(self.hidden, c1, kernel_size=1, bias=bias)
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=spatial_bias)
        if residual:  # set only when used: checkpoints of the paper's form keep their attributes
            self.residual = True

    @property
    def variant(self) -> str | None:
        """The fork form's name: ``"CBAMBlock"`` (residual), ``"bias-free"``; None for the paper's form."""
        if getattr(self, "residual", False):
            return "CBAMBlock"
        if self.fc1.bias is None:
            return "bias-free" if self.spatial.bias is None else "bias-free MLP"
        return None

    def extra_repr(self) -> str:
        """The constructor's arguments, so a printed model shows which form each layer is."""
        return (
            f"{self.channels}, hidden={self.hidden}, kernel_size={self.kernel_size}, bias={self.fc1.bias is not None}, "
            f"spatial_bias={self.spatial.bias is not None}, residual={getattr(self, 'residual', False)}"
        )

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
        if getattr(self, "residual", False):
            return x + self._gated(x)
        return self._gated(x)

    def _gated(self, x: torch.Tensor) -> torch.Tensor:
        """CBAM(x): both gates applied (the body of :meth:`forward`)."""
        # the fast paths take the paper's biases; the bias-free forms run the module path
        if needs_module_path(self) or self.fc1.bias is None or self.spatial.bias is None:
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


class UltralyticsCBAM(CBAM):
    """Ultralytics' own ``CBAM(c1, kernel_size=7)`` (ultralytics.nn.modules.conv), as YOLOv8/YOLO11 forks build it.

    Not the paper's CBAM: its channel gate is ``sigmoid(conv1x1(mean_hw(x)))`` (one biased C x C conv, no MLP, no max
    pool) and its spatial conv has no bias; parameters C^2 + C + 2k^2. This subclass only adds the input channel count
    and the variant name that AttnYOLO's model summaries read; the computation is Ultralytics' own.

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        kernel_size (int): Kernel size of the spatial conv, 3 or 7 (Ultralytics accepts only these).

    Examples:
        >>> layer = UltralyticsCBAM(64)
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # No fused CPU kernels: the computation is Ultralytics'.
    FUSED_KERNELS: frozenset[str] = frozenset()
    variant = "Ultralytics"

    def __init__(self, c1: int, kernel_size: int = CBAM_KERNEL_SIZE) -> None:
        positive_int("UltralyticsCBAM", "c1 (input channels)", c1)
        if kernel_size not in (3, 7) or isinstance(kernel_size, bool):
            raise ValueError(f"UltralyticsCBAM: kernel_size must be 3 or 7 (Ultralytics' CBAM), got {kernel_size!r}.")
        super().__init__(c1, kernel_size)
        self.channels = c1
        self.kernel_size = kernel_size

    def extra_repr(self) -> str:
        """The constructor's arguments."""
        return f"{self.channels}, kernel_size={self.kernel_size}"
