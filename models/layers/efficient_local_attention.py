"""ELA: Efficient Local Attention for Deep Convolutional Neural Networks (Xu & Wan, 2024), arXiv 2403.01123.

ELA pools the input along each spatial axis like Coordinate Attention, but replaces the reducing 1x1 convs and
BatchNorm with one 1-D convolution and one GroupNorm, both shared by the row and column branches, so there is no
channel reduction. There is no official repository; this follows the paper's definition and its
Figure 4 listing.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import torch
from torch import nn

from .fast.paths import apply_strip_gates, needs_module_path, strip_means
from .validation import positive_int

LOGGER = logging.getLogger("attnyolo")


class ELAVariantSpec(NamedTuple):
    """Hyper-parameters of one ELA variant as the paper specifies them."""

    kernel_size: int  # kernel k of the shared Conv1d
    channels_per_group: int | None  # channels per Conv1d group; None means depthwise (groups = C)
    gn_groups: int  # groups G of the shared GroupNorm


# ELA variants, arXiv 2403.01123 (the paper's table of ELA-T/B/S/L). Conv1d groups C means depthwise (1 channel
# per group); groups C/8 means 8 channels per group. Parameters: C*(C/g)*k conv weights + 2C GroupNorm affine =
# T 5C+2C = 7C, B 7C+2C = 9C, S 8*5C+2C = 42C, L 8*7C+2C = 58C.
ELA_VARIANTS: dict[str, ELAVariantSpec] = {
    "T": ELAVariantSpec(kernel_size=5, channels_per_group=None, gn_groups=32),
    "B": ELAVariantSpec(kernel_size=7, channels_per_group=None, gn_groups=16),
    "S": ELAVariantSpec(kernel_size=5, channels_per_group=8, gn_groups=16),
    "L": ELAVariantSpec(kernel_size=7, channels_per_group=8, gn_groups=16),
}

# (C, variant) pairs already warned about: a YOLO model builds the same layer many times and at every scale.
_WARNED: set[tuple[int, str]] = set()


class ELA(nn.Module):
    """Efficient Local Attention: row and column gates from one shared Conv1d + GroupNorm.

    ``a_h = sigmoid(GN(Conv1d(x.mean(3))))`` has shape (N, C, H, 1) and ``a_w`` is built the same way from
    ``x.mean(2)`` with shape (N, C, 1, W); the output is ``x * a_h * a_w``. No channel reduction, no BatchNorm, no
    residual.

    Fallback when the paper's sizes cannot be built (# NOTE: not in paper): width-scaled YOLO models have layers with
    16 or 24 channels, where GroupNorm(32, C) or 8-channel conv groups do not divide C. Then

    - GroupNorm uses G' = gcd(C, G) groups instead of G (e.g. ELA-T at C=16 uses 16, at C=24 uses 8);
    - ELA-S/L's Conv1d uses gcd(C, 8) channels per group instead of 8 (groups = C / gcd(C, 8)).

    The layer logs one warning on the ``attnyolo`` logger per (C, variant) when it falls back. The sizes actually
    used are exposed as ``kernel_size``, ``conv_groups`` and ``gn_groups``.

    Args:
        c1 (int): Input channels C. The output has the same number of channels.
        variant (str): One of "T", "B", "S", "L" (case-insensitive). The paper advises T/B for shallow or light
            networks, B/S for deeper ones and L for large ones.

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W), same as the input.

    Attributes:
        variant (str): Upper-case variant name.
        kernel_size (int): Kernel size k of the shared Conv1d.
        conv_groups (int): Groups of the shared Conv1d actually used.
        gn_groups (int): Groups of the shared GroupNorm actually used.

    Examples:
        >>> layer = ELA(64, "S")
        >>> layer(torch.randn(2, 64, 13, 21)).shape
        torch.Size([2, 64, 13, 21])
    """

    # The fused CPU ops (layers/fast/kernels.py) an eval-mode forward calls; empty for a layer without kernels.
    FUSED_KERNELS: frozenset[str] = frozenset({"strip_means", "apply_strip_gates"})

    def __init__(self, c1: int, variant: str = "T") -> None:
        super().__init__()
        self.channels = positive_int("ELA", "c1 (input channels)", c1)
        key = variant.upper() if isinstance(variant, str) else variant
        if key not in ELA_VARIANTS:
            raise ValueError(f"ELA: unknown variant {variant!r}; valid variants are {', '.join(ELA_VARIANTS)}.")
        spec = ELA_VARIANTS[key]
        self.variant = key
        self.kernel_size = spec.kernel_size

        fallbacks = []
        if spec.channels_per_group is None:
            self.conv_groups = c1  # depthwise
        else:
            per_group = math.gcd(c1, spec.channels_per_group)
            if per_group != spec.channels_per_group:
                fallbacks.append(
                    f"Conv1d uses {per_group} channels per group instead of {spec.channels_per_group} "
                    f"(C is not divisible by {spec.channels_per_group})"
                )
            self.conv_groups = c1 // per_group
        self.gn_groups = math.gcd(c1, spec.gn_groups)
        if self.gn_groups != spec.gn_groups:
            fallbacks.append(f"GroupNorm uses {self.gn_groups} groups instead of {spec.gn_groups} (gcd with C)")
        if fallbacks and (c1, key) not in _WARNED:
            _WARNED.add((c1, key))
            LOGGER.warning(
                f"ELA-{key} with C={c1} cannot be built as in the paper (arXiv 2403.01123): {'; '.join(fallbacks)}. "
                "This departs from the paper."
            )

        self.conv = nn.Conv1d(
            c1, c1, self.kernel_size, padding=self.kernel_size // 2, groups=self.conv_groups, bias=False
        )
        self.gn = nn.GroupNorm(self.gn_groups, c1)

    def extra_repr(self) -> str:
        """The variant and the sizes it was built with, so a printed model shows which ELA each layer is."""
        return (
            f"{self.channels}, variant={self.variant}, kernel_size={self.kernel_size}, conv_groups={self.conv_groups}, "
            f"gn_groups={self.gn_groups}"
        )

    def _gate(self, z: torch.Tensor) -> torch.Tensor:
        """Map a pooled descriptor (N, C, L) to a gate in (0, 1) of the same shape with the shared conv and norm."""
        return self.gn(self.conv(z)).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x`` (N, C, H, W) by its row and column attention; returns a tensor of the same shape.

        Two paths compute the same equations. Training, autograd, tracing/compiling (export) and anyone watching a
        submodule through a hook (FLOP counters, feature extractors) get the module-by-module path below. Inference
        in eval mode takes a leaner path: both pooled strips go through the shared Conv1d in one pass (written as
        shifted multiply-adds, or one grouped matmul, because a oneDNN conv call on such short sequences costs more
        than its arithmetic), GroupNorm and sigmoid run once when H == W, and the strip means and ``x * a_h * a_w``
        are one pass each over ``x`` (the fused CPU kernels of ``fast/kernels.py``; elsewhere ``x * a_h`` then an
        in-place ``*= a_w``, one x-sized allocation). Outputs agree with the module path within 1e-5
        (tests/layers/test_layers.py, tests/layers/test_kernels.py).
        """
        if needs_module_path(self):
            a_h = self._gate(x.mean(3)).unsqueeze(3)  # (N, C, H) -> (N, C, H, 1)
            a_w = self._gate(x.mean(2)).unsqueeze(2)  # (N, C, W) -> (N, C, 1, W)
            return x * a_h * a_w

        n, c, h, w = x.shape
        k, groups = self.kernel_size, self.conv_groups
        p = k // 2
        z_h, z_w = strip_means(x)  # (N, C, H), (N, C, W)
        if h == w:  # one batch of 2N sequences of one length: one conv, one norm, one sigmoid
            z = nn.functional.pad(torch.cat((z_h, z_w)), (p, p))  # (2N, C, H + 2p), the conv's zero padding
            length = h
        else:  # one sequence [0_p, z_h, 0_p, z_w, 0_p]: p zeros pad both strips without mixing them
            pad = x.new_zeros(n, c, p)
            z = torch.cat((pad, z_h, pad, z_w, pad), dim=2)
            length = h + p + w
        weight = self.conv.weight  # (C, C / groups, k)
        if groups == c:  # depthwise: y = sum_t w[:, t] * z[:, :, t : t + L]
            weight = weight.view(c, k)
            y = z[:, :, :length] * weight[:, :1]
            for t in range(1, k):
                y.addcmul_(z[:, :, t : t + length], weight[:, t : t + 1])
        else:  # grouped: im2col per group, then one batched matmul
            per = c // groups
            cols = z.view(z.shape[0], groups, per, -1).unfold(3, k, 1).transpose(3, 4)  # (B, g, per, k, L)
            cols = cols.reshape(z.shape[0], groups, per * k, length)
            y = torch.matmul(weight.view(groups, per, per * k), cols).view(z.shape[0], c, length)
        gn = self.gn
        if h == w:
            a = torch.group_norm(y, gn.num_groups, gn.weight, gn.bias, gn.eps).sigmoid_()
            a_h, a_w = a[:n], a[n:]
        else:
            a_h = torch.group_norm(y[:, :, :h], gn.num_groups, gn.weight, gn.bias, gn.eps).sigmoid_()
            a_w = torch.group_norm(y[:, :, h + p :], gn.num_groups, gn.weight, gn.bias, gn.eps).sigmoid_()
        return apply_strip_gates(x, a_h, a_w)
