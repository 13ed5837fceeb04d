"""Pieces of the attention layers' inference fast path, shared so each layer states its equations once.

Every layer's ``forward()`` has two paths computing the same equations: the module-by-module path (training, autograd,
export, hooks) and a leaner inference path. :func:`needs_module_path` decides which runs; :func:`strip_means` and
:func:`apply_strip_gates` are the two x-sized passes that Coordinate Attention and ELA share (the strip poolings and
the final ``x * gate_h * gate_w``). On a CPU float32 map they run as the fused kernels of ``kernels.py`` (one read for
both means, one read and one write for the gates); elsewhere, or where the kernels cannot be built, as eager PyTorch.
Tests hold both forms to the plain equations (tests/layers/test_layers.py, tests/layers/test_kernels.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .kernels import fused_ops, usable

# Row lengths up to which a matrix-vector product beats a reduction kernel for a strip mean on CPU: a reduction pays a
# per-row overhead that dominates over short rows, a matrix-vector product streams x instead. Measured on CPU with
# tools/benchmark.py layers=True.
MV_ROW_MEAN_MAX_W = 48
MV_COL_MEAN_MAX_W = 32
OUTER_PRODUCT_MAX_W = 48  # up to this width, gate_h ⊗ gate_w first, then one flat in-place multiply by x


def needs_module_path(layer: nn.Module) -> bool:
    """Whether ``layer`` must run its module-by-module path rather than the inference fast path.

    The module path is taken when anything could observe the difference: training (BatchNorm statistics), autograd,
    tracing or compiling (export sees the submodules), and forward hooks on a submodule (FLOP counters, feature
    extractors).
    """
    return (
        layer.training
        or torch.is_grad_enabled()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or any(m._forward_hooks or m._forward_pre_hooks for m in layer._modules.values())
    )


def _short_rows(x: torch.Tensor) -> bool:
    """Whether the matrix-product strip means apply: a contiguous CPU tensor (the thresholds were measured there)."""
    return x.is_contiguous() and x.device.type == "cpu"


def strip_means(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Strip poolings of ``x`` (N, C, H, W): ``z_h`` = mean over W (N, C, H), ``z_w`` = mean over H (N, C, W).

    With the fused kernel both are views into one (N, C, H + W) tensor, :func:`stacked_strip_means`.
    """
    n, c, h, w = x.shape
    if usable(x):
        z = fused_ops().strip_means(x)
        return z[:, :, :h], z[:, :, h:]
    short = _short_rows(x)
    if short and w <= MV_ROW_MEAN_MAX_W:
        z_h = torch.mv(x.view(-1, w), x.new_full((w,), 1.0 / w)).view(n, c, h)
    else:
        z_h = x.mean(3)
    if short and w <= MV_COL_MEAN_MAX_W:
        z_w = torch.matmul(x.new_full((1, h), 1.0 / h), x.view(n * c, h, w)).view(n, c, w)
    else:
        z_w = x.mean(2)
    return z_h, z_w


def stacked_strip_means(x: torch.Tensor) -> torch.Tensor:
    """``torch.cat(strip_means(x), dim=2)``: the (N, C, H + W) descriptor Coordinate Attention's conv1 reads."""
    if usable(x):
        return fused_ops().strip_means(x)
    return torch.cat(strip_means(x), dim=2)


def apply_strip_gates(x: torch.Tensor, gate_h: torch.Tensor, gate_w: torch.Tensor) -> torch.Tensor:
    """``x * gate_h[..., None] * gate_w[..., None, :]`` with one x-sized allocation; ``x`` is left unchanged.

    Args:
        x: Input (N, C, H, W).
        gate_h: Row gate (N, C, H).
        gate_w: Column gate (N, C, W).
    """
    if usable(x):  # one read of x, one write, products in the same order as below
        return fused_ops().apply_strip_gates(x, gate_h.contiguous(), gate_w.contiguous())
    if _short_rows(x) and x.shape[3] <= OUTER_PRODUCT_MAX_W:  # short rows: gate outer product, one flat multiply
        return torch.mul(gate_h.unsqueeze(3), gate_w.unsqueeze(2)).mul_(x)
    return torch.mul(x, gate_h.unsqueeze(3)).mul_(gate_w.unsqueeze(2))
