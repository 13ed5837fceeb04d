"""ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks, arXiv 1910.03151.

Wang et al., CVPR 2020. ECA replaces SE's bottleneck MLP with a 1-D convolution across neighbouring channels of the
pooled vector, with no dimensionality reduction; the kernel size grows with log2(C). It is one of the baselines that
the ELA paper compares against.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .fast.kernels import fused_ops, usable
from .fast.paths import needs_module_path
from .validation import positive_int

# gamma = 2 and b = 1 in the adaptive kernel size, the paper's defaults (arXiv 1910.03151).
ECA_GAMMA = 2
ECA_B = 1


def eca_kernel_size(channels: int, gamma: float = ECA_GAMMA, b: float = ECA_B) -> int:
    """Return ECA's adaptive kernel size k = |log2(C) / gamma + b / gamma|, rounded to the nearest odd at or above.

    Args:
        channels (int): Channel count C.
        gamma (float): Slope of the mapping.
        b (float): Offset of the mapping.

    Returns:
        (int): Odd kernel size, at least 1.
    """
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECAAttention(nn.Module):
    """Efficient Channel Attention gate.

    ``y = x * sigmoid(Conv1d_k(mean_hw(x)))``, where the Conv1d (1 in, 1 out, no bias) slides over the channel axis
    of the pooled vector so each channel's gate depends on its k nearest channels.

    Fixed-kernel forms of the public code (# NOTE: not in paper, whose kernel adapts to C): ``kernel_size=3`` is the
    official ``eca_layer(channel, k_size=3)`` (github BangguWu/ECANet, models/eca_module.py) and the forks'
    ``ECA``/``ECALayer``; ``kernel_size=3, bias=True`` is ``ECAAttention(kernel_size=3)`` of github
    xmu-xiaoma666/External-Attention-pytorch (model/attention/ECAAttention.py), whose Conv1d keeps torch's default bias.

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        gamma (float): Slope gamma of the adaptive kernel size.
        b (float): Offset b of the adaptive kernel size.
        kernel_size (int | None): A fixed odd kernel size; None (the paper's form) adapts it to C with gamma and b.
        bias (bool): Whether the Conv1d has a bias.

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W), same as the input.

    Attributes:
        kernel_size (int): Kernel size k used by the Conv1d (adaptive unless fixed).
        variant (str | None): ``"k=3"`` (``", bias"`` added) for a fixed kernel; None for the paper's adaptive form.

    Examples:
        >>> layer = ECAAttention(64)
        >>> layer.kernel_size
        3
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # The fused CPU ops (layers/fast/kernels.py) an eval-mode forward calls; empty for a layer without kernels.
    FUSED_KERNELS: frozenset[str] = frozenset({"efficient_channel"})

    def __init__(
        self, c1: int, gamma: float = ECA_GAMMA, b: float = ECA_B, kernel_size: int | None = None, bias: bool = False
    ) -> None:
        super().__init__()
        self.channels = positive_int("ECAAttention", "c1 (input channels)", c1)
        if not gamma > 0:
            raise ValueError(f"ECAAttention: gamma must be positive, got {gamma!r}.")
        if kernel_size is not None and (positive_int("ECAAttention", "kernel_size", kernel_size) % 2 == 0):
            raise ValueError(f"ECAAttention: kernel_size must be odd (e.g. 3), got {kernel_size!r}.")
        if not isinstance(bias, bool):
            raise ValueError(f"ECAAttention: bias must be true or false, got {bias!r}.")
        self.kernel_size = eca_kernel_size(c1, gamma, b) if kernel_size is None else kernel_size
        if kernel_size is not None:  # set only when fixed: checkpoints of the paper's form keep their attributes
            self.fixed_kernel = True
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=self.kernel_size // 2, bias=bias)

    @property
    def variant(self) -> str | None:
        """``"k=3"`` for a fixed kernel (``"k=3, bias"`` with a bias); None for the paper's adaptive kernel."""
        if not getattr(self, "fixed_kernel", False) and self.conv.bias is None:
            return None
        return f"k={self.kernel_size}" + (", bias" if self.conv.bias is not None else "")

    def extra_repr(self) -> str:
        """The constructor's arguments, so a printed model shows which form each layer is."""
        fixed = "fixed" if getattr(self, "fixed_kernel", False) else "adaptive"
        return f"{self.channels}, kernel_size={self.kernel_size} ({fixed}), bias={self.conv.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the channels of ``x`` (N, C, H, W); returns a tensor of the same shape.

        Inference on a CPU float32 map runs the whole layer as one fused kernel (``fast/kernels.py``): the eager form
        already makes the fewest passes over ``x``, but its five small operators for the gate cost as much as those
        passes on small maps. Everything else (training, autograd, export, hooks, CUDA) runs the module path below.
        """
        if not needs_module_path(self) and usable(x) and self.conv.bias is None:  # the kernel has no bias term
            return fused_ops().efficient_channel(x, self.conv.weight)
        n, c = x.shape[0], x.shape[1]
        s = x.mean((2, 3)).unsqueeze(1)  # (N, 1, C): channels become the sequence the Conv1d slides along
        return x * self.conv(s).sigmoid().view(n, c, 1, 1)
