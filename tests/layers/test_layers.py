"""The attention layers: equations, sizes, parameter counts, fusion, and behaviour every layer shares.

Every layer is held to :mod:`attnyolo.layers.reference` (the papers' equations, also used by the benchmark and the
visualiser). Those reference functions are in turn checked here against a second, independent formulation: the
``_algebra_*`` functions below rebuild each output from the weight tensors with plain tensor algebra (einsum, unfold,
explicit normalisation), without torch's conv or norm operators, so a wrong wiring in either shows up.

Slightly over the project's ~400 lines on purpose: the behaviours every layer shares are parametrised over the table of
kinds here, in one place, so a new kind is held to all of them by adding its registry row.
"""

from __future__ import annotations

import logging
import math

import pytest
import thop
import torch
import torch.nn.functional as F
from torch import nn

from attnyolo.layers import efficient_local_attention as ela_module
from attnyolo.layers.cbam import CBAMAttention, UltralyticsCBAM
from attnyolo.layers.coord_attention import CoordAtt
from attnyolo.layers.eca import ECAAttention
from attnyolo.layers.efficient_local_attention import ELA
from attnyolo.layers.reference import randomize_
from attnyolo.layers.registry import KINDS as KIND_ROWS
from attnyolo.layers.registry import build_layer, kind_names, layer_classes, reference_forward
from attnyolo.layers.squeeze_excite import SEAttention

C = 64
SHAPE = (2, C, 13, 21)  # non-square on purpose: a swapped H/W branch fails here
TOL = 1e-5

KINDS = kind_names()
CLASSES = list(layer_classes().values())


def _input(shape=SHAPE, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------------------------------------------
def _conv1d_grouped(z: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Zero-padded 'same' grouped 1-D convolution written with unfold + einsum. z: (N, C, L), weight: (C, C/g, k)."""
    n, c, length = z.shape
    k = weight.shape[-1]
    windows = F.pad(z, (k // 2, k // 2)).unfold(2, k, 1)  # (N, C, L, k)
    windows = windows.reshape(n, groups, c // groups, length, k)
    w = weight.reshape(groups, c // groups, weight.shape[1], k)  # (g, out per group, in per group, k)
    return torch.einsum("ngilt,goit->ngol", windows, w).reshape(n, c, length)


def _group_norm(z: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    n, c, length = z.shape
    zg = z.reshape(n, groups, -1)
    mu = zg.sum(-1, keepdim=True) / zg.shape[-1]
    var = ((zg - mu) ** 2).sum(-1, keepdim=True) / zg.shape[-1]
    zn = ((zg - mu) / torch.sqrt(var + eps)).reshape(n, c, length)
    return zn * weight[:, None] + bias[:, None]


def _algebra_coord_att(x: torch.Tensor, m: CoordAtt, training: bool) -> torch.Tensor:
    """f = h-swish(BN(F1([z^h; z^w]))), g^h = sigmoid(F_h(f^h)), g^w = sigmoid(F_w(f^w)), Y = X * g^h * g^w."""
    n, c, h, w = x.shape
    z = torch.cat((x.sum(3) / w, x.sum(2) / h), dim=2)  # (N, C, H + W)
    f = torch.einsum("mc,ncl->nml", m.conv1.weight[:, :, 0, 0], z) + m.conv1.bias[:, None]
    bn = m.bn1
    if training:
        mu = f.mean((0, 2))
        var = ((f - mu[:, None]) ** 2).mean((0, 2))  # BN normalises with the biased batch variance
    else:
        mu, var = bn.running_mean, bn.running_var
    f = (f - mu[:, None]) / torch.sqrt(var[:, None] + bn.eps) * bn.weight[:, None] + bn.bias[:, None]
    f = f * torch.clamp(f + 3, 0, 6) / 6  # h-swish
    g_h = torch.sigmoid(torch.einsum("cm,nml->ncl", m.conv_h.weight[:, :, 0, 0], f[:, :, :h]) + m.conv_h.bias[:, None])
    g_w = torch.sigmoid(torch.einsum("cm,nml->ncl", m.conv_w.weight[:, :, 0, 0], f[:, :, h:]) + m.conv_w.bias[:, None])
    return x * g_h[:, :, :, None] * g_w[:, :, None, :]


def _algebra_ela(x: torch.Tensor, m: ELA) -> torch.Tensor:
    """a_h = sigmoid(GN(Conv1d(mean_W x))), a_w = sigmoid(GN(Conv1d(mean_H x))), Y = X a_h a_w."""
    n, c, h, w = x.shape

    def gate(z):
        y = _conv1d_grouped(z, m.conv.weight, m.conv_groups)
        return torch.sigmoid(_group_norm(y, m.gn_groups, m.gn.weight, m.gn.bias, m.gn.eps))

    return x * gate(x.sum(3) / w)[:, :, :, None] * gate(x.sum(2) / h)[:, :, None, :]


def _algebra_se(x: torch.Tensor, m: SEAttention) -> torch.Tensor:
    """global average pool -> FC C->C/r -> ReLU -> FC -> sigmoid -> scale."""
    s = x.sum((2, 3)) / (x.shape[2] * x.shape[3])
    hidden = torch.relu(s @ m.fc1.weight[:, :, 0, 0].T + m.fc1.bias)
    gate = torch.sigmoid(hidden @ m.fc2.weight[:, :, 0, 0].T + m.fc2.bias)
    return x * gate[:, :, None, None]


def _algebra_cbam(x: torch.Tensor, m: CBAMAttention) -> torch.Tensor:
    """channel gate (shared MLP on avg and max, summed, sigmoid), then spatial gate (mean, max, conv)."""

    def mlp(s):
        return torch.relu(s @ m.fc1.weight[:, :, 0, 0].T + m.fc1.bias) @ m.fc2.weight[:, :, 0, 0].T + m.fc2.bias

    n, c, h, w = x.shape
    flat = x.reshape(n, c, -1)
    x = x * torch.sigmoid(mlp(flat.sum(-1) / (h * w)) + mlp(flat.max(-1).values))[:, :, None, None]
    maps = torch.stack((x.sum(1) / c, x.max(1).values), dim=1)  # (N, 2, H, W): [mean; max]
    k = m.spatial.weight.shape[-1]
    cols = F.unfold(maps, k, padding=k // 2)  # (N, 2*k*k, H*W)
    s = (m.spatial.weight.reshape(1, -1) @ cols).reshape(n, 1, h, w) + m.spatial.bias.reshape(1, 1, 1, 1)
    return x * torch.sigmoid(s)


def _algebra_eca(x: torch.Tensor, m: ECAAttention) -> torch.Tensor:
    """global average pool -> Conv1d across channels (zero padding, no bias) -> sigmoid -> scale."""
    s = (x.sum((2, 3)) / (x.shape[2] * x.shape[3]))[:, None, :]  # (N, 1, C)
    gate = torch.sigmoid(_conv1d_grouped(s, m.conv.weight, 1))[:, 0]
    return x * gate[:, :, None, None]


# Layer class -> its independent formulation (CoordAtt's takes the training flag and has its own test).
ALGEBRA = {ELA: _algebra_ela, SEAttention: _algebra_se, CBAMAttention: _algebra_cbam, ECAAttention: _algebra_eca}


# ---------------------------------------------------------------------------------------------------------------
# Equations
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_coord_att_reference_equals_independent_algebra(training):
    m = randomize_(CoordAtt(C)).train(training)
    x = _input()
    torch.testing.assert_close(reference_forward(m, x), _algebra_coord_att(x, m, training), atol=TOL, rtol=TOL)


@pytest.mark.parametrize("name", [k.name for k in KIND_ROWS if k.layer is not CoordAtt])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_reference_equals_independent_algebra(name, training):
    m = randomize_(build_layer(name, C)).train(training)
    x = _input()
    torch.testing.assert_close(reference_forward(m, x), ALGEBRA[type(m)](x, m), atol=TOL, rtol=TOL)


def test_every_layer_has_an_independent_formulation():
    # a new kind needs its own _algebra_* oracle; UltralyticsCBAM runs Ultralytics' own CBAM code, which
    # tests/integration/test_fork_spellings.py holds equal to Ultralytics' class
    assert set(layer_classes().values()) == {CoordAtt, *ALGEBRA, UltralyticsCBAM}


def test_reference_leaves_batchnorm_statistics_alone():
    m = randomize_(CoordAtt(C)).train()
    before = m.bn1.running_mean.clone()
    reference_forward(m, _input())
    assert torch.equal(m.bn1.running_mean, before)


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_layer_matches_reference(name, training):
    m = randomize_(build_layer(name, C)).train(training)
    x = _input()
    expected = reference_forward(m, x)  # before forward: train mode updates the running stats
    torch.testing.assert_close(m(x), expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("variant", ["T", "S"])
def test_ela_fallback_matches_reference(variant, monkeypatch):
    monkeypatch.setattr(ela_module, "_WARNED", set())
    m = randomize_(ELA(12, variant))  # 12 channels: neither G nor 8-channel groups divide C
    x = _input((2, 12, 9, 5))
    torch.testing.assert_close(m(x), reference_forward(m, x), atol=TOL, rtol=TOL)
    torch.testing.assert_close(reference_forward(m, x), _algebra_ela(x, m), atol=TOL, rtol=TOL)


# ---------------------------------------------------------------------------------------------------------------
# Sizes and parameter counts
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [16, 64, 256, 512])
def test_coord_att_param_count(c):
    mip = max(8, c // 32)
    m = CoordAtt(c)
    assert m.mip == mip
    assert _n_params(m) == c * mip + mip + 2 * mip + 2 * (mip * c + c)


def test_coord_att_official_parameter_names():
    names = set(CoordAtt(C).state_dict())
    expected = {f"conv1.{p}" for p in ("weight", "bias")} | {f"conv_{d}.{p}" for d in "hw" for p in ("weight", "bias")}
    expected |= {f"bn1.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert names == expected
    assert isinstance(CoordAtt(C).act, nn.Hardswish)
    assert not any(isinstance(mod, nn.AdaptiveAvgPool2d) for mod in CoordAtt(C).modules())


@pytest.mark.parametrize(
    ("variant", "k", "groups", "gn_groups", "per_c"),
    [("T", 5, C, 32, 7), ("B", 7, C, 16, 9), ("S", 5, C // 8, 16, 42), ("L", 7, C // 8, 16, 58)],
)
def test_ela_variants(variant, k, groups, gn_groups, per_c):
    m = ELA(C, variant)
    assert (m.kernel_size, m.conv_groups, m.gn_groups) == (k, groups, gn_groups)
    # conv weight C * (C / groups) * k plus GroupNorm affine 2C; the paper's table gives 7C, 9C, 42C, 58C
    assert _n_params(m) == C * (C // groups) * k + 2 * C == per_c * C
    assert sum(isinstance(mod, nn.Conv1d) for mod in m.modules()) == 1  # one conv shared by both directions
    assert sum(isinstance(mod, nn.GroupNorm) for mod in m.modules()) == 1


def test_ela_variant_is_case_insensitive():
    assert ELA(C, "s").variant == "S"


@pytest.mark.parametrize("bad", ["X", "", None, 5])
def test_ela_unknown_variant(bad):
    with pytest.raises(ValueError, match=r"unknown variant .*valid variants are T, B, S, L") as err:
        ELA(C, bad)
    assert repr(bad) in str(err.value)


@pytest.fixture
def attnyolo_log(caplog, monkeypatch):
    """Capture the attnyolo logger directly (robust to propagate=False) with a fresh warn-once memory."""
    monkeypatch.setattr(ela_module, "_WARNED", set())
    logger = logging.getLogger("attnyolo")
    monkeypatch.setattr(logger, "propagate", False)  # records reach caplog once, via the handler added below
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="attnyolo")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.parametrize(("c", "gn_groups"), [(16, 16), (24, 8)])
def test_ela_t_fallback_for_thin_layers(c, gn_groups, attnyolo_log):
    m = ELA(c, "T")
    assert m.gn_groups == gn_groups == math.gcd(c, 32)
    assert m.conv_groups == c and m.kernel_size == 5
    warnings = [r for r in attnyolo_log.records if r.levelno == logging.WARNING and r.name == "attnyolo"]
    assert len(warnings) == 1
    assert f"C={c}" in warnings[0].getMessage() and "ELA-T" in warnings[0].getMessage()
    assert m(_input((1, c, 7, 11))).shape == (1, c, 7, 11)
    ELA(c, "T")  # same (C, variant): no second warning
    assert len([r for r in attnyolo_log.records if r.name == "attnyolo"]) == 1


def test_ela_s_fallback_conv_groups(attnyolo_log):
    m = ELA(12, "S")
    assert m.conv_groups == 12 // math.gcd(12, 8) == 3
    assert m.gn_groups == math.gcd(12, 16) == 4
    assert len(attnyolo_log.records) == 1


def test_ela_no_warning_when_paper_sizes_fit(attnyolo_log):
    for variant in "TBSL":
        ELA(C, variant)
    assert not attnyolo_log.records


@pytest.mark.parametrize("c", [16, 64, 128])
def test_se_param_count(c):
    r = 16
    hidden = max(1, c // r)
    m = SEAttention(c, r)
    assert m.hidden == hidden
    assert _n_params(m) == 2 * c * hidden + hidden + c  # both FCs with bias


def test_se_hidden_floor():
    assert SEAttention(8, 16).hidden == 1


@pytest.mark.parametrize("c", [64, 128])
def test_cbam_param_count(c):
    hidden = c // 16
    m = CBAMAttention(c)
    # shared MLP with biases + one 7x7 conv 2->1 with bias
    assert _n_params(m) == (c * hidden + hidden) + (hidden * c + c) + (2 * 7 * 7 + 1)


@pytest.mark.parametrize("bad", [0, 4, -3, 2.0, True])
def test_cbam_rejects_bad_kernel(bad):
    with pytest.raises(ValueError, match="kernel_size") as err:
        CBAMAttention(C, kernel_size=bad)
    assert repr(bad) in str(err.value)


def test_cbam_kernel_3():
    m = CBAMAttention(C, kernel_size=3)
    x = _input()
    assert m.spatial.weight.shape[-1] == 3
    torch.testing.assert_close(m(x), reference_forward(m, x), atol=TOL, rtol=TOL)
    torch.testing.assert_close(reference_forward(m, x), _algebra_cbam(x, m), atol=TOL, rtol=TOL)


@pytest.mark.parametrize(("c", "known"), [(64, 3), (128, 5), (256, 5), (512, 5)])
def test_eca_kernel_size(c, known):
    gamma, b = 2, 1
    t = int(abs(math.log2(c) / gamma + b / gamma))  # k = |log2(C)/gamma + b/gamma|, then up to the next odd
    k = t if t % 2 else t + 1
    m = ECAAttention(c)
    assert m.kernel_size == k == known
    assert m.conv.weight.shape == (1, 1, k)
    assert _n_params(m) == k


# ---------------------------------------------------------------------------------------------------------------
# Fusing CoordAtt's BN
# ---------------------------------------------------------------------------------------------------------------
def test_coord_att_fuse():
    m = randomize_(CoordAtt(C)).eval()
    x = _input()
    before = m(x)
    assert not m.fused
    m.fuse()
    assert m.fused and isinstance(m.bn1, nn.Identity)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    assert not any(k.startswith("bn1.") for k in m.state_dict())
    torch.testing.assert_close(m(x), before, atol=TOL, rtol=TOL)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    m.fuse()  # idempotent: a second call must not fold anything again
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
    torch.testing.assert_close(m(x), before, atol=TOL, rtol=TOL)


# ---------------------------------------------------------------------------------------------------------------
# Behaviour every layer shares
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("shape", [(1, C, 5, 9), (2, C, 13, 21), (1, C, 1, 1)], ids=["b1", "b2", "1x1"])
def test_shape_preserved(name, shape):
    m = build_layer(name, C)
    x = _input(shape)
    y = m(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", KINDS)
def test_autocast_bfloat16_cpu(name):
    m = build_layer(name, C)
    x = _input()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), m(x), atol=5e-2, rtol=5e-2)  # bf16 has ~3 significant digits


@pytest.mark.parametrize("name", KINDS)
def test_half_cpu(name):
    m = build_layer(name, C).eval()
    x = _input()
    expected = m(x)
    y = m.half()(x.half())
    assert y.dtype == torch.float16 and y.shape == x.shape
    torch.testing.assert_close(y.float(), expected, atol=1e-2, rtol=1e-2)


@pytest.fixture
def deterministic():
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@pytest.mark.parametrize("name", KINDS)
def test_deterministic_forward_backward(name, deterministic):
    m = build_layer(name, C)
    x = _input().requires_grad_(True)
    m(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("name", KINDS)
def test_thop_profile(name):
    m = build_layer(name, C)
    x = _input((1, C, 16, 20))
    macs, params = thop.profile(m, inputs=(x,), verbose=False)
    conv = _conv_macs(m, x)
    assert conv > 0  # every layer has at least one conv
    if any(isinstance(sub, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for sub in m.modules()):
        assert conv < macs < 2 * conv  # thop adds the normalisation's few per-element operations
    else:
        assert macs == conv
    assert params == _n_params(m)


def _conv_macs(m: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of every conv in one forward: output elements x input channels per group x kernel."""
    total = []

    def count(module, _inputs, out):
        kernel = math.prod(module.kernel_size)
        total.append(out.numel() * module.in_channels // module.groups * kernel)

    hooks = [s.register_forward_hook(count) for s in m.modules() if isinstance(s, (torch.nn.Conv1d, torch.nn.Conv2d))]
    with torch.no_grad():
        m(x)
    for hook in hooks:
        hook.remove()
    return sum(total)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bad", [0, -8, 3.5, True, "64", None])
def test_rejects_bad_channels(cls, bad):
    with pytest.raises(ValueError, match="c1") as err:
        cls(bad)
    assert repr(bad) in str(err.value)
