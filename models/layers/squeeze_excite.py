"""Squeeze-and-Excitation Networks (Hu, Shen, Sun, CVPR 2018), arXiv 1709.01507.

The SE block squeezes each channel to one number by global average pooling, passes the vector through a two-layer
bottleneck MLP and rescales the channels by the resulting sigmoid gate. It is one of the baselines that the
Coordinate Attention and ELA papers compare against.
"""

from __future__ import annotations

import torch
from torch import nn

from .fast.kernels import fused_ops, usable
from .fast.paths import needs_module_path
from .validation import positive_int

# Reduction ratio r = 16, the paper's default (arXiv 1709.01507).
SE_REDUCTION = 16


class SEAttention(nn.Module):
    """Squeeze-and-Excitation channel gate.

    ``y = x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)``. The two fully connected layers are 1x1 convs with bias,
    which compute exactly what ``nn.Linear`` computes on the pooled (N, C, 1, 1) tensor without reshaping.

    ``bias=False`` drops b1 and b2: the bias-free form of the ``SEAttention(channel, reduction=16)`` class of
    github xmu-xiaoma666/External-Attention-pytorch (model/attention/SEAttention.py) and of the YOLOv5 forks'
    ``SE(c1, c2, ratio=16)``, both ``nn.Linear(..., bias=False)``. # NOTE: not in paper (its FC layers have biases).

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        reduction (int): Reduction ratio r; the hidden width is max(1, C // r).
        bias (bool): Whether the two fully connected layers have biases (the paper's form).

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W), same as the input.

    Attributes:
        hidden (int): Width of the bottleneck.
        variant (str | None): ``"bias-free"`` for ``bias=False``; None for the paper's form.

    Examples:
        >>> layer = SEAttention(64)
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # The fused CPU ops (layers/fast/kernels.py) an eval-mode forward calls; empty for a layer without kernels.
    FUSED_KERNELS: frozenset[str] = frozenset({"squeeze_excite"})

    def __init__(self, c1: int, reduction: int = SE_REDUCTION, bias: bool = True) -> None:
        super().__init__()
        self.channels = positive_int("SEAttention", "c1 (input channels)", c1)
        positive_int("SEAttention", "reduction", reduction)
        if not isinstance(bias, bool):
            raise ValueError(f"SEAttention: bias must be true or false, got {bias!r}.")
        # NOTE: not in paper: the floor of 1 keeps the bottleneck buildable when C < r (thin width-scaled layers).
        self.hidden = max(1, c1 // reduction)
        self.fc1 = nn.Conv2d(c1, self.hidden, kernel_size=1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(self.hidden, c1, kernel_size=1, bias=bias)

    @property
    def variant(self) -> str | None:
        """``"bias-free"`` when the FC layers have no biases (the forks' SEAttention/SE); None for the paper's form."""
        return None if self.fc1.bias is not None else "bias-free"

    def extra_repr(self) -> str:
        """The constructor's arguments, so a printed model shows which form each layer is."""
        return f"{self.channels}, hidden={self.hidden}, bias={self.fc1.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the channels of ``x`` (N, C, H, W); returns a tensor of the same shape.

        Training, autograd, tracing/compiling and hooked submodules (FLOP counters) take the module-by-module path;
        inference in eval mode runs the whole layer as one fused kernel on a CPU float32 map (``fast/kernels.py``), and
        elsewhere the two 1x1 convs as matrix products on the pooled (N, C) vector with in-place activations.
        Outputs agree within 1e-5 (tests/layers/test_layers.py, tests/layers/test_kernels.py).
        """
        if needs_module_path(self) or self.fc1.bias is None:  # the fast paths take the paper's biases
            s = x.mean((2, 3), keepdim=True)  # (N, C, 1, 1); mean() rather than an adaptive pool for export/counters
            return x * self.fc2(self.act(self.fc1(s))).sigmoid()

        if usable(x):  # pool, gate and scale in one call: the gate's small operators cost as much as the passes
            return fused_ops().squeeze_excite(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        n, c = x.shape[0], x.shape[1]
        s = x.mean((2, 3))  # (N, C)
        hidden = torch.addmm(self.fc1.bias, s, self.fc1.weight.view(self.hidden, c).t()).relu_()
        gate = torch.addmm(self.fc2.bias, hidden, self.fc2.weight.view(c, self.hidden).t()).sigmoid_()
        return x * gate.view(n, c, 1, 1)
