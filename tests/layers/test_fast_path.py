"""The layers' inference fast path against the reference equations (attnyolo.layers.reference).

The layers' forward() takes a leaner path at inference than in training. These tests hold the two to the reference
equations within 1e-5 on the benchmark's feature-map shapes and on odd ones, and check which path runs when.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnyolo.layers.coord_attention import CoordAtt
from attnyolo.layers.reference import randomize_
from attnyolo.layers.registry import BENCHMARK_SHAPES, build_layer, kind_names, reference_forward

TOL = 1e-5


def _layer(kind: str, channels: int, fused: bool = False) -> nn.Module:
    layer = randomize_(build_layer(kind, channels)).eval()
    if fused and isinstance(layer, CoordAtt):
        layer.fuse()
    return layer


def _x(shape, seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------- fast path
@pytest.mark.parametrize(("channels", "side"), BENCHMARK_SHAPES, ids=[f"{c}x{s}" for c, s in BENCHMARK_SHAPES])
@pytest.mark.parametrize("kind", kind_names())
def test_fast_path_equals_reference_equations_on_benchmark_shapes(kind, channels, side):
    layer = _layer(kind, channels, fused=True)
    x = _x((2, channels, side, side))
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), reference_forward(layer, x), atol=TOL, rtol=TOL)


@pytest.mark.parametrize("kind", kind_names())
@pytest.mark.parametrize("shape", [(2, 64, 13, 21), (3, 64, 40, 24), (1, 64, 7, 160), (1, 64, 1, 1)])
def test_fast_path_equals_reference_equations_on_other_inputs(kind, shape):
    layer = _layer(kind, 64)  # CoordAtt unfused: the fast path then applies BN itself
    x = _x(shape)
    with torch.inference_mode():
        expected = reference_forward(layer, x)
        torch.testing.assert_close(layer(x), expected, atol=TOL, rtol=TOL)
        channels_last = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(layer(channels_last), expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("kind", kind_names())
def test_fast_path_never_writes_into_its_input(kind):
    layer = _layer(kind, 64)
    x = _x((1, 64, 20, 20))
    before = x.clone()
    with torch.inference_mode():
        y = layer(x)
    assert torch.equal(x, before) and y.data_ptr() != x.data_ptr()


class _Calls(torch.overrides.TorchFunctionMode):
    """Record the names of the torch functions a forward calls."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _calls(layer, x, grad: bool) -> set[str]:
    with _Calls() as calls, torch.set_grad_enabled(grad):
        layer(x)
    return calls.names


def test_fast_path_runs_only_for_eval_inference_without_hooks():
    layer = _layer("CoordAtt", 64)
    x = _x((1, 64, 20, 20))
    assert "baddbmm" in _calls(layer, x, grad=False)  # the fast path writes the 1x1 convs as matmuls
    assert "conv2d" in _calls(layer, x, grad=True)  # autograd: module path
    layer.train()
    assert "conv2d" in _calls(layer, x, grad=False)  # train mode (BN batch statistics): module path
    layer.eval()
    handle = layer.conv_h.register_forward_hook(lambda *a: None)  # e.g. a FLOP counter watching a submodule
    try:
        assert "conv2d" in _calls(layer, x, grad=False)
    finally:
        handle.remove()


@pytest.mark.parametrize("kind", kind_names())
def test_training_path_gradients_match_reference_equations(kind):
    layer = _layer(kind, 32).train()
    x = _x((2, 32, 12, 12)).requires_grad_(True)
    (g_ours,) = torch.autograd.grad(layer(x).square().sum(), x)
    (g_plain,) = torch.autograd.grad(reference_forward(layer, x).square().sum(), x)
    torch.testing.assert_close(g_ours, g_plain, atol=TOL, rtol=TOL)
