"""The fused CPU kernels (models/layers/fast/csrc/fused_attention.cpp) against eager PyTorch, and the fallback when
they are absent.

Each kernel is held to the eager operations it replaces, on shapes that exercise the vector tails (widths that are not
multiples of 8, maps smaller than the conv kernel, 1x1 maps, batches). Products the kernels evaluate in the eager
order must match bit for bit; sums, whose order differs, within float32 rounding. Then the layers: with the kernels,
without them (build failed or switched off), and that a failed build is reported once and never breaks a forward.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from attnyolo.layers.fast import kernels as _kernels
from attnyolo.layers.reference import randomize_
from attnyolo.layers.registry import build_layer, get_kind, kind_names, one_kind_per_layer, reference_forward

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5
# Widths that are not multiples of 8, maps smaller than a kernel, 1x1 maps, batches; channel counts that fill the NHWC
# loops' 16-channel blocks partly (20, 37) and wholly (64).
SHAPES = [
    (1, 1, 1, 1),
    (2, 3, 5, 7),
    (1, 4, 13, 21),
    (2, 2, 8, 16),
    (1, 3, 17, 33),
    (1, 2, 160, 7),
    (1, 5, 40, 40),
    (1, 20, 7, 9),
    (2, 37, 5, 6),
    (1, 64, 16, 16),
]
# Both memory orders the kernels take: NCHW (a model called directly) and NHWC (Ultralytics' predictor and
# validator on x86 CPUs, which convert the model to channels-last).
LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def _x(shape, seed=0, layout="nchw"):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=LAYOUTS[layout])


def _same_order(out: torch.Tensor, x: torch.Tensor) -> bool:
    return out.stride() == x.stride()


@pytest.fixture(scope="module")
def ops():
    """The kernels; skips (with the reason) only where this machine has no C++ compiler at all."""
    found = _kernels.fused_ops()
    if found is None and shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip(f"no C++ compiler here: {_kernels.fused_unavailable_reason()}")
    assert found is not None, f"the kernels failed to build: {_kernels.fused_unavailable_reason()}"
    return found


@pytest.fixture
def no_kernels(monkeypatch):
    """This process as if the build had failed: every layer takes its eager path."""
    monkeypatch.setattr(_kernels, "_state", {"tried": True, "ops": None, "reason": "switched off by a test"})


# ----------------------------------------------------------------------------------------------------- each kernel
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_strip_means_equal_torch_means(ops, shape, layout):
    x = _x(shape, layout=layout)
    z = ops.strip_means(x)
    h = shape[2]
    torch.testing.assert_close(z[..., :h], x.mean(3), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(z[..., h:], x.mean(2), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_apply_strip_gates_is_bitwise_the_eager_product(ops, shape, layout):
    n, c, h, w = shape
    x, g_h, g_w = _x(shape, layout=layout), torch.rand(n, c, h), torch.rand(n, c, w)
    out = ops.apply_strip_gates(x, g_h, g_w)
    assert torch.equal(out, x * g_h[..., None] * g_w[..., None, :]) and _same_order(out, x)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_mean_max_pool_equals_mean_and_amax(ops, shape, layout):
    n, c = shape[:2]
    x = _x(shape, layout=layout)
    pooled = ops.mean_max_pool(x)
    torch.testing.assert_close(pooled[:n], x.mean((2, 3)), atol=1e-6, rtol=1e-6)
    assert torch.equal(pooled[n:], x.amax((2, 3)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [*SHAPES, (2, 3, 30, 30)])  # 900 pixels: several 256-pixel blocks
def test_gated_channel_mean_max_equals_eager_maps(ops, shape, layout):
    n, c = shape[:2]
    x, gate = _x(shape, layout=layout), torch.rand(n, c)
    y = x * gate[:, :, None, None]
    maps = ops.gated_channel_mean_max(x, gate)
    torch.testing.assert_close(maps[:, :1], y.mean(1, keepdim=True), atol=1e-6, rtol=1e-6)
    assert torch.equal(maps[:, 1:], y.amax(1, keepdim=True))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pools_propagate_nan_like_amax(ops, layout):
    x = _x((1, 3, 9, 11), layout=layout)
    x[0, 1, 4, 5] = float("nan")
    pooled = ops.mean_max_pool(x)
    assert pooled[:, 1].isnan().all() and not pooled[:, [0, 2]].isnan().any()
    maps = ops.gated_channel_mean_max(x, torch.rand(1, 3))
    assert maps[0, :, 4, 5].isnan().all() and maps.isnan().sum() == 2


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (1, 2, 5, 5), (2, 2, 13, 21), (1, 2, 40, 40)])
def test_spatial_conv_equals_conv2d(ops, k, shape):
    maps, weight, bias = _x(shape), _x((1, 2, k, k), seed=1), _x((1,), seed=2)
    torch.testing.assert_close(
        ops.spatial_conv(maps, weight, bias), F.conv2d(maps, weight, bias, padding=k // 2), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_apply_channel_spatial_is_bitwise_the_eager_product(ops, shape, layout):
    n, c, h, w = shape
    x, gate, spatial = _x(shape, layout=layout), torch.rand(n, c), torch.rand(n, 1, h, w)
    out = ops.apply_channel_spatial(x, gate, spatial)
    assert torch.equal(out, x * gate[:, :, None, None] * spatial) and _same_order(out, x)


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("strip_means", lambda: (_x((1, 2, 4, 4)).double(),)),
        ("strip_means", lambda: (_x((1, 2, 4, 4)).transpose(2, 3),)),
        ("strip_means", lambda: (_x((2, 4, 4)),)),
        ("apply_strip_gates", lambda: (_x((1, 2, 4, 5)), torch.rand(1, 2, 5), torch.rand(1, 2, 5))),
        ("spatial_conv", lambda: (_x((1, 2, 4, 4)), torch.rand(1, 2, 4, 4), torch.rand(1))),
        ("efficient_channel", lambda: (_x((1, 2, 4, 4)), torch.rand(1, 1, 2))),
    ],
    ids=["float64", "non-contiguous", "3-d", "gate-shape", "even-kernel", "even-eca-kernel"],
)
def test_kernels_reject_inputs_they_do_not_handle_by_name(ops, op, args):
    with pytest.raises(RuntimeError, match=op):
        getattr(ops, op)(*args())


# ------------------------------------------------------------------------------------------------------ the layers
class _Recorder:
    """Stands in for the kernels' namespace and records which of them a forward called."""

    def __init__(self, real):
        self.real, self.called = real, []

    def __getattr__(self, name):
        self.called.append(name)
        return getattr(self.real, name)


@pytest.fixture
def recorder(ops, monkeypatch):
    """The kernels, recording every one the code under test calls."""
    watched = _Recorder(ops)
    monkeypatch.setattr(_kernels, "_state", {"tried": True, "ops": watched, "reason": None})
    return watched


def _assert_layer_equals_plain(kind: str, layout: str) -> None:
    layer = randomize_(build_layer(kind, 24)).eval()
    x = _x((2, 24, 19, 26), layout=layout)
    with torch.inference_mode():
        out = layer(x)
        torch.testing.assert_close(out, reference_forward(layer, x), atol=TOL, rtol=TOL)
    assert _same_order(out, x)  # the next conv gets the memory order it was given


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", kind_names())
def test_layers_run_their_kernels_and_equal_the_plain_equations(recorder, kind, layout):
    _assert_layer_equals_plain(kind, layout)
    assert set(recorder.called) == get_kind(kind).layer.FUSED_KERNELS


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", kind_names())
def test_layers_without_kernels_equal_the_plain_equations(no_kernels, kind, layout):
    _assert_layer_equals_plain(kind, layout)


@pytest.mark.parametrize("kind", [k.name for k in one_kind_per_layer() if k.layer.FUSED_KERNELS])
def test_inputs_the_kernels_do_not_take_run_eagerly(recorder, kind):
    layer = randomize_(build_layer(kind, 16)).eval()
    x = _x((1, 16, 12, 24))
    with torch.inference_mode():
        strided = x[:, :, :, ::2]  # neither contiguous nor channels-last
        torch.testing.assert_close(layer(strided), reference_forward(layer, strided.contiguous()), atol=TOL, rtol=TOL)
        expected = reference_forward(layer, x)
        torch.testing.assert_close(layer.double()(x.double()), expected.double(), atol=TOL, rtol=TOL)
    assert recorder.called == []


@pytest.mark.parametrize("kind", [k.name for k in one_kind_per_layer()])
def test_detector_under_ultralytics_predictor_runs_the_kernels_on_channels_last(recorder, kind):
    """AutoBackend makes a PyTorch model channels-last on x86 CPUs (activations and weights, CBAM's 7x7 included)."""
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(f"yolov8n-{kind}.yaml", verbose=False)
    reference = DetectionModel(f"yolov8n-{kind}.yaml", verbose=False)
    reference.load_state_dict(model.state_dict())
    backend = AutoBackend(model, device=torch.device("cpu"), fuse=True, verbose=False, channels_last=True).eval()
    first_conv = backend.model.model[0].conv.weight  # (16, 3, 3, 3): the two memory orders differ
    assert first_conv.is_contiguous(memory_format=torch.channels_last) and not first_conv.is_contiguous()
    image = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        out = backend(image)
        calls = list(recorder.called)
        _kernels._state["ops"] = None  # the same network on the eager path, for the reference output
        expected = reference.eval().fuse(verbose=False)(image)
    expected_calls = get_kind(kind).layer.FUSED_KERNELS
    assert set(calls) == expected_calls and len(calls) == 3 * len(expected_calls)  # three layers, each its kernels
    out, expected = out[0] if isinstance(out, (list, tuple)) else out, expected[0]
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-3)  # deep net, different sum orders


# ------------------------------------------------------------------------------------------------------- fallback
def test_failed_build_is_reported_once_and_layers_still_run(monkeypatch):
    monkeypatch.setattr(_kernels, "_state", {"tried": False, "ops": None, "reason": None})
    attempts, warnings = [], []

    def fail():
        attempts.append(1)
        raise RuntimeError("Ninja is required to load C++ extensions\nmore detail")

    monkeypatch.setattr(_kernels, "_load", fail)
    monkeypatch.setattr(_kernels.LOGGER, "warning", warnings.append)
    layer = randomize_(build_layer("ELA-S", 16)).eval()
    x = _x((1, 16, 10, 10))
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), reference_forward(layer, x), atol=TOL, rtol=TOL)
        layer(x)
    assert len(attempts) == 1 and len(warnings) == 1
    assert "Ninja is required" in warnings[0] and "pip install ninja" in warnings[0]
    assert "more detail" not in warnings[0]  # one line, not the compiler's whole log
    assert _kernels.fused_unavailable_reason() == "RuntimeError: Ninja is required to load C++ extensions"


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """No build attempted yet in this process, and an empty TORCH_EXTENSIONS_DIR; returns that directory."""
    monkeypatch.setattr(_kernels, "_state", {"tried": False, "ops": None, "reason": None})
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    return tmp_path


def test_compiler_without_openmp_gets_the_serial_build(monkeypatch, fresh_cache, ops):
    """Apple clang rejects -fopenmp: the same kernels are then built without it (one thread) instead of none."""
    from torch.utils import cpp_extension

    builds = []

    def fake_load(name, sources, extra_cflags, extra_ldflags, **kwargs):
        builds.append((name, extra_cflags, extra_ldflags))
        if "-fopenmp" in extra_cflags:
            raise RuntimeError("clang: error: unsupported option '-fopenmp'")

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    assert _kernels.fused_ops() is ops  # the namespace this process already registered
    assert [b[0] for b in builds] == [_kernels.build_name(), _kernels.build_name(serial=True)]
    assert "-fopenmp" not in builds[1][1] + builds[1][2] and "-O3" in builds[1][1]


def test_cached_serial_build_is_loaded_without_retrying_openmp(monkeypatch, fresh_cache, ops):
    from torch.utils import cpp_extension

    serial = _kernels.build_name(serial=True)
    (fresh_cache / "py" / serial).mkdir(parents=True)
    (fresh_cache / "py" / serial / f"{serial}.so").write_bytes(b"")  # newer than the source: written just now
    builds = []
    monkeypatch.setattr(cpp_extension, "load", lambda name, **kwargs: builds.append(name))
    assert _kernels.fused_ops() is ops
    assert builds == [serial]


def test_unknown_isa_override_is_reported_and_layers_fall_back(monkeypatch, fresh_cache):
    warnings = []
    monkeypatch.setenv(_kernels.ENV_ISA, "avx9000")
    monkeypatch.setattr(_kernels.LOGGER, "warning", warnings.append)
    assert _kernels.fused_ops() is None
    assert "ATTNYOLO_FUSED_ISA='avx9000' is not understood; use generic" in warnings[0]
    layer = randomize_(build_layer("CoordAtt", 16)).eval()
    x = _x((1, 16, 6, 6))
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), reference_forward(layer, x), atol=TOL, rtol=TOL)


def test_build_failure_is_summarised_by_the_compiler_error_line():
    message = (
        "Error building extension 'attnyolo_fused_avx2': [1/2] c++ -MMD -MF fused_attention.o.d -O3 -c x.cpp\n"
        "FAILED: fused_attention.o\n"
        "x.cpp:1:10: fatal error: Python.h: No such file or directory\n"
        "compilation terminated.\n"
    )
    assert _kernels._cause(RuntimeError(message)) == "x.cpp:1:10: fatal error: Python.h: No such file or directory"
    assert _kernels._cause(RuntimeError("Ninja is required to load C++ extensions")) == (
        "Ninja is required to load C++ extensions"
    )


def test_switch_keeps_the_build_from_running(monkeypatch):
    monkeypatch.setattr(_kernels, "_state", {"tried": False, "ops": None, "reason": None})
    monkeypatch.setenv(_kernels.ENV_SWITCH, "0")
    monkeypatch.setattr(_kernels, "_load", lambda: pytest.fail("the switch must prevent the build"))
    assert _kernels.fused_ops() is None
    assert _kernels.fused_unavailable_reason() == f"switched off by {_kernels.ENV_SWITCH}=0"


@pytest.mark.slow
def test_portable_build_passes_the_kernel_tests(tmp_path):
    """The loops CPUs without AVX2 (and non-x86 machines) get: this file's kernel and layer tests, on that build."""
    if _kernels.vector_isa() == "generic" or shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("this machine already builds the generic kernels (or has no compiler)")
    env = {**os.environ, _kernels.ENV_ISA: "generic", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    env.pop(_kernels.ENV_SWITCH, None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-m", "not slow"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # PyTorch puts a build in TORCH_EXTENSIONS_DIR/<name>/ or, in some releases, one folder further down
    assert list(tmp_path.glob("**/attnyolo_fused_generic_*/attnyolo_fused_generic_*.so"))


@pytest.mark.slow
def test_kernels_compile_from_an_empty_cache_in_a_fresh_process(tmp_path):
    """What a user's first run does: compile into TORCH_EXTENSIONS_DIR, say so once, then run the layers."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler here")
    code = (
        "import torch, attnyolo\n"
        "from attnyolo.layers.fast import kernels as _kernels\n"
        "from attnyolo.layers.reference import randomize_\n"
        "from attnyolo.layers.registry import build_layer, reference_forward\n"
        "layer = randomize_(build_layer('CoordAtt', 32)).eval()\n"
        "x = torch.randn(1, 32, 20, 20)\n"
        "with torch.inference_mode():\n"
        "    torch.testing.assert_close(layer(x), reference_forward(layer, x), atol=1e-5, rtol=1e-5)\n"
        "print('kernels', _kernels.fused_ops() is not None)\n"
    )
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path), "YOLO_VERBOSE": "true"}
    env.pop(_kernels.ENV_SWITCH, None)
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "kernels True" in run.stdout
    assert "compiling the fused CPU attention kernels" in run.stdout + run.stderr
    assert list(tmp_path.glob(f"*/{_kernels.build_name()}/{_kernels.build_name()}.so")) or list(
        tmp_path.glob(f"{_kernels.build_name()}/{_kernels.build_name()}.so")
    )


# ------------------------------------------------------------------------------------------------------ cache key
def test_build_name_changes_with_whatever_makes_a_build_differ(monkeypatch, tmp_path):
    """Source bytes, torch version, compiler, flags: each gives another name, so another folder in the cache."""
    name, serial = _kernels.build_name(), _kernels.build_name(serial=True)
    assert name.startswith(f"attnyolo_fused_{_kernels.vector_isa()}_") and serial != name
    assert name == _kernels.build_name()  # stable within an environment
    variant = tmp_path / "fused_attention.cpp"
    variant.write_bytes(_kernels.SOURCE.read_bytes() + b"// another commit\n")
    changed = {}
    with monkeypatch.context() as m:
        m.setattr(_kernels, "SOURCE", variant)
        changed["source"] = _kernels.build_name()
    with monkeypatch.context() as m:
        m.setattr(torch, "__version__", torch.__version__ + ".post1")
        changed["torch"] = _kernels.build_name()
    with monkeypatch.context() as m:
        m.setenv("CXX", "clang++-that-is-not-g++")
        changed["compiler"] = _kernels.build_name()
    with monkeypatch.context() as m:
        m.setattr(sys.implementation, "cache_tag", "cpython-399")
        changed["python"] = _kernels.build_name()
    assert len({name, serial, *changed.values()}) == 2 + len(changed), changed
    flags = _kernels._flags(serial=False)
    assert _kernels.build_key(flags[0] + ["-DX"], flags[1]) != _kernels.build_key(*flags)


def test_source_is_staged_under_its_content_hash_once(tmp_path):
    staged = _kernels._staged_source(tmp_path)
    assert staged.read_bytes() == _kernels.SOURCE.read_bytes() and staged.parent.parent == tmp_path
    stamp = staged.stat().st_mtime_ns
    assert _kernels._staged_source(tmp_path) == staged and staged.stat().st_mtime_ns == stamp  # not rewritten


_LOAD_KERNELS = (
    "import torch, attnyolo\n"
    "from attnyolo.layers.fast import kernels\n"
    "assert kernels.fused_ops() is not None, kernels.fused_unavailable_reason()\n"
    "print('loaded', kernels.__file__)\n"
)


def _so_stamps(root: Path) -> dict[str, int]:
    """Every built library and object file under a cache, with its modification time (ns)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.suffix in {".so", ".o"}}


@pytest.mark.slow
def test_two_package_roots_sharing_one_cache_never_rebuild_each_other(tmp_path):
    """Root A, root B (the kernel source changed: another commit) and root C (an identical copy of A, another path)
    share one TORCH_EXTENSIONS_DIR. A and B each build once; after that neither rebuilds when the other has run, and C
    loads A's build without compiling."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler here")
    ignore = shutil.ignore_patterns("__pycache__")
    roots = {}
    for label in "ABC":
        roots[label] = tmp_path / label
        shutil.copytree(REPO / "models", roots[label] / "attnyolo", ignore=ignore)
    source_b = roots["B"] / "attnyolo" / "layers" / "fast" / "csrc" / "fused_attention.cpp"
    source_b.write_text(source_b.read_text() + "// the same kernels at another commit\n")
    cache = tmp_path / "torch_extensions"
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(cache)}
    env.pop(_kernels.ENV_SWITCH, None)

    def load(label):
        run = subprocess.run(
            [sys.executable, "-c", _LOAD_KERNELS],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(roots[label])},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"loaded {roots[label]}" in run.stdout  # this root's package, not the repository's
        return _so_stamps(cache)

    built_a = load("A")
    built_ab = load("B")
    assert set(built_a) < set(built_ab)  # B built beside A ...
    assert {k: built_ab[k] for k in built_a} == built_a  # ... without touching A's files
    assert load("A") == built_ab  # A again: nothing rebuilt
    assert load("C") == built_ab  # an identical copy at another path: A's build, nothing compiled
    assert load("B") == built_ab
