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

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        gamma (float): Slope gamma of the adaptive kernel size.
        b (float): Offset b of the adaptive kernel size.

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W), same as the input.

    Attributes:
        kernel_size (int): Adaptive kernel size k used by the Conv1d.

    Examples:
        >>> layer = ECAAttention(64)
        >>> layer.kernel_size
        3
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # The fused CPU ops (layers/fast/kernels.py) an eval-mode forward calls; empty for a layer without kernels.
    FUSED_KERNELS: frozenset[str] = frozenset({"efficient_channel"})

    def __init__(self, c1: int, gamma: float = ECA_GAMMA, b: float = ECA_B) -> None:
        super().__init__()
        self.channels = positive_int("ECAAttention", "c1 (input channels)", c1)
        if not gamma > 0:
            raise ValueError(f"ECAAttention: gamma must be positive, got {gamma!r}.")
        self.kernel_size = eca_kernel_size(c1, gamma, b)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=self.kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the channels of ``x`` (N, C, H, W); returns a tensor of the same shape.

        Inference on a CPU float32 map runs the whole layer as one fused kernel (``fast/kernels.py``): the eager form
        already makes the fewest passes over ``x``, but its five small operators for the gate cost as much as those
        passes on small maps. Everything else (training, autograd, export, hooks, CUDA) runs the module path below.
        """
        if not needs_module_path(self) and usable(x):
            return fused_ops().efficient_channel(x, self.conv.weight)
        n, c = x.shape[0], x.shape[1]
        s = x.mean((2, 3)).unsqueeze(1)  # (N, 1, C): channels become the sequence the Conv1d slides along
        return x * self.conv(s).sigmoid().view(n, c, 1, 1)
