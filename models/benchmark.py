"""Speed and size of the attention layers and of whole detectors, measured the same way for every kind.

Two benchmarks, both behind ``tools/benchmark.py``:

* **Layer kernels** (:func:`benchmark_layers`): each layer's own forward against a plain implementation of the
  equations in shared/REFERENCE.md (the ``plain_*`` functions below), on the feature maps a 640 input gives a YOLO
  backbone (64x160², 128x80², 256x40², 512x20²). Reported per shape: both times, their ratio and the largest output
  difference; per layer kind: the geometric mean of the ratios.
* **Models** (:func:`benchmark_models`): parameters, GFLOPs, latency (median and interquartile range over warm repeats,
  fused, batch 1 and a larger batch), throughput, where the attention layers sit, and the latency overhead against
  the baseline measured in the same run.

Timing is interleaved: every repeat runs each candidate once, in turn, so load from other processes on a shared
machine falls on all candidates alike. Ratios are medians of per-repeat ratios, which cancels slow drifts in load.
On CUDA every timed call is bracketed by ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._kernels import fused_ops, fused_unavailable_reason, vector_isa
from .cbam import CBAMAttention
from .coord_attention import CoordAtt
from .eca import ECAAttention
from .efficient_local_attention import ELA
from .registration import KINDS, LAYERS
from .squeeze_excite import SEAttention

# Feature maps of a 640x640 input in a width-0.25..0.5 YOLO backbone: (channels, side) at strides 4, 8, 16, 32.
LAYER_SHAPES: tuple[tuple[int, int], ...] = ((64, 160), (128, 80), (256, 40), (512, 20))
# Every attention kind, in the order the tables list them.
LAYER_KINDS: tuple[str, ...] = ("SE", "CBAM", "ECA", "CoordAtt", "ELA-T", "ELA-B", "ELA-S", "ELA-L")
# Targets of the issue: our layer time / plain time, geometric mean over LAYER_SHAPES, and whole-model overhead.
LAYER_RATIO_TARGET = 0.7
MODEL_OVERHEAD_TARGET = 1.03
LAYER_TOLERANCE = 1e-5  # fast and plain outputs must agree this closely (absolute and relative)
DEFAULT_FAMILY = "yolov8n"
DEFAULT_PROJECT = Path(__file__).resolve().parent.parent / "runs" / "benchmark"


# ----------------------------------------------------------------------------------------------- plain references
# Written straight from REFERENCE.md with the layer's own submodules, the way the papers' listings read: two strip
# means, the gate transforms, and ``x * g_h * g_w`` with its broadcast temporary. They share no code with the layers'
# forward(), so tests and the benchmark can hold the layers to them.
def coord_att_gates(layer: CoordAtt, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinate Attention's gates: g^h (N, C, H, 1) and g^w (N, C, 1, W), REFERENCE.md's equations.

    Args:
        layer: The CoordAtt layer whose weights are used (fused or not; train-mode BN uses batch statistics).
        x: Input (N, C, H, W).

    Returns:
        ``(g_h, g_w)``, each in (0, 1).
    """
    h, w = x.shape[2], x.shape[3]
    z_h = x.mean(3, keepdim=True)  # (N, C, H, 1)
    z_w = x.mean(2, keepdim=True).permute(0, 1, 3, 2)  # (N, C, W, 1)
    f = layer.act(layer.bn1(layer.conv1(torch.cat((z_h, z_w), dim=2))))  # (N, mip, H + W, 1)
    f_h, f_w = torch.split(f, [h, w], dim=2)
    return layer.conv_h(f_h).sigmoid(), layer.conv_w(f_w.permute(0, 1, 3, 2)).sigmoid()


def ela_gates(layer: ELA, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ELA's gates: a_h (N, C, H, 1) and a_w (N, C, 1, W) from the shared Conv1d and GroupNorm, REFERENCE.md.

    Args:
        layer: The ELA layer whose weights are used.
        x: Input (N, C, H, W).

    Returns:
        ``(a_h, a_w)``, each in (0, 1).
    """
    a_h = layer.gn(layer.conv(x.mean(3))).sigmoid().unsqueeze(3)
    a_w = layer.gn(layer.conv(x.mean(2))).sigmoid().unsqueeze(2)
    return a_h, a_w


def plain_coord_att(layer: CoordAtt, x: torch.Tensor) -> torch.Tensor:
    """Y = X · g^h · g^w with the gates of :func:`coord_att_gates`."""
    g_h, g_w = coord_att_gates(layer, x)
    return x * g_h * g_w


def plain_ela(layer: ELA, x: torch.Tensor) -> torch.Tensor:
    """Y = X · a_h · a_w with the gates of :func:`ela_gates`."""
    a_h, a_w = ela_gates(layer, x)
    return x * a_h * a_w


def plain_se(layer: SEAttention, x: torch.Tensor) -> torch.Tensor:
    """SE: global average pool -> FC C->C/r -> ReLU -> FC -> sigmoid -> scale."""
    return x * layer.fc2(layer.act(layer.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()


def plain_cbam(layer: CBAMAttention, x: torch.Tensor) -> torch.Tensor:
    """CBAM: channel gate (shared MLP on mean and max, summed, sigmoid), then spatial gate (7x7 conv on mean, max)."""

    def mlp(s: torch.Tensor) -> torch.Tensor:
        return layer.fc2(layer.act(layer.fc1(s)))

    x = x * (mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True))).sigmoid()
    maps = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)
    return x * layer.spatial(maps).sigmoid()


def plain_eca(layer: ECAAttention, x: torch.Tensor) -> torch.Tensor:
    """ECA: global average pool -> Conv1d across channels -> sigmoid -> scale."""
    s = x.mean((2, 3)).unsqueeze(1)  # (N, 1, C)
    return x * layer.conv(s).sigmoid().view(x.shape[0], x.shape[1], 1, 1)


PLAIN: dict[type[nn.Module], Callable[[Any, torch.Tensor], torch.Tensor]] = {
    CoordAtt: plain_coord_att,
    ELA: plain_ela,
    SEAttention: plain_se,
    CBAMAttention: plain_cbam,
    ECAAttention: plain_eca,
}


def plain_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run the plain reference implementation of ``layer``'s equations on ``x``.

    Args:
        layer: One of our attention layers.
        x: Input (N, C, H, W).

    Returns:
        The layer's output computed from its weights by :data:`PLAIN`.

    Raises:
        TypeError: ``layer`` is not one of our attention layers.
    """
    for cls, fn in PLAIN.items():
        if isinstance(layer, cls):
            return fn(layer, x)
    raise TypeError(f"no plain reference for {type(layer).__name__}; known layers: {', '.join(LAYERS)}.")


def build_layer(kind: str, channels: int) -> nn.Module:
    """Build one attention layer from a kind name of :data:`attnyolo.registration.KINDS` (e.g. "ELA-S").

    Raises:
        ValueError: Unknown kind; the message lists the known ones.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; known kinds: {', '.join(KINDS)}.")
    name, args = KINDS[kind]
    return LAYERS[name](channels, *args)


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm statistic random non-trivial values, so no gate term hides as 0 or 1.

    Weights get a standard deviation of 1/sqrt(fan-in), as trained layers roughly have; with a fixed scale a
    512-channel layer's pre-activations grow to hundreds, its sigmoids saturate (hiding the very terms a test should
    see) and float32 rounding alone exceeds 1e-5. Biases and other vectors get N(0, 0.5^2).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            scale = 0.5 if p.dim() < 2 else p[0].numel() ** -0.5  # p[0]: one output's weights = fan-in
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module


# --------------------------------------------------------------------------------------------------------- timing
def resolve_device(device: str | int | torch.device | None = "cpu") -> torch.device:
    """Turn ``cpu``, ``0``, ``cuda`` or ``cuda:1`` into a torch device, failing with one line if CUDA is absent."""
    text = "cpu" if device is None or device == "" else str(device).strip().lower()
    if text.isdigit():
        text = f"cuda:{text}"
    try:
        dev = torch.device(text)
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a device; use cpu, 0, cuda or cuda:1.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA device here. Fix: device=cpu.")
    return dev


def predictor_channels_last(device: torch.device | str = "cpu") -> bool:
    """Whether Ultralytics' predictor and validator run a PyTorch model channels-last on ``device``.

    Ultralytics 8.4's AutoBackend converts ``.pt`` models to channels-last on x86 CPUs with oneDNN, on Linux and
    Windows, unless told otherwise; on CUDA it keeps them contiguous. Benchmarks default to the same memory order, so
    they time the layers the way ``predict``/``val`` run them.
    """
    return (
        torch.device(device).type == "cpu"
        and platform.machine() in {"AMD64", "x86_64"}
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and platform.system() in {"Linux", "Windows"}
    )


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def time_interleaved(
    candidates: dict[str, Callable[[], Any]],
    repeats: int = 20,
    warmup: int = 3,
    device: torch.device | str = "cpu",
    settle: int = 0,
) -> dict[str, list[float]]:
    """Time several zero-argument callables in turn, ``repeats`` rounds after ``warmup`` untimed rounds.

    Interleaving makes a burst of load from another process hit every candidate of a round, not one candidate's
    whole series. On CUDA each call is synchronised before and after, so the time covers the kernels, not the launch.

    Args:
        candidates: Name -> callable; all run once per round, in order.
        repeats: Timed rounds.
        warmup: Untimed rounds first (allocator, caches, oneDNN primitive creation, cuDNN autotuning).
        device: Where the callables run.
        settle: Untimed calls of a candidate right before each of its timed calls. With 1 or more, each timed call
            runs in the memory state its own previous call left (which blocks the allocator holds or has returned to
            the OS, what is cached), not in the state the other candidate left, as it would in a real network.

    Returns:
        Name -> list of ``repeats`` wall-clock times in seconds.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1.")
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(max(0, warmup)):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            for _ in range(settle):
                fn()
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def spread(samples: Sequence[float]) -> tuple[float, float, float]:
    """Median, first and third quartile of ``samples`` (all three the same for one sample)."""
    if len(samples) < 2:
        return (samples[0],) * 3
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q2, q1, q3


def paired_ratio(samples: Sequence[float], reference: Sequence[float]) -> float:
    """Median over rounds of ``samples[i] / reference[i]``: both were timed in the same round of interleaving."""
    return statistics.median(a / b for a, b in zip(samples, reference))


def geometric_mean(values: Iterable[float]) -> float:
    """Geometric mean of positive numbers."""
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Describe where the numbers come from: CPU model, cores, torch threads, versions, and the GPU if used."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "device": str(device),
    }
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]  # other work on the machine, for the record
    except (AttributeError, OSError):
        pass
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    else:  # which forward the layers ran: the fused kernels or, where they could not be built, eager PyTorch
        info["fused_kernels"] = kernel_status()
    return info


def kernel_status() -> str:
    """``"on (avx2)"``/``"on (generic)"`` when the fused CPU kernels are in use, else ``"off (<why>)"``."""
    if fused_ops() is not None:
        return f"on ({vector_isa()})"
    return f"off ({fused_unavailable_reason()})"


def machine_line(info: dict[str, Any]) -> str:
    """One line for tables: CPU (cores, threads), GPU if any, torch version, and load average."""
    text = f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads"
    if "gpu" in info:
        text += f", GPU {info['gpu']}"
    text += f", torch {info['torch']}"
    if "fused_kernels" in info:
        text += f", fused CPU kernels {info['fused_kernels']}"
    if "load_average" in info:
        text += f", load average {info['load_average'][0]:.2f} at start"
    return text


# --------------------------------------------------------------------------------------------------- layer kernels
def benchmark_layers(
    kinds: Sequence[str] = LAYER_KINDS,
    shapes: Sequence[tuple[int, int]] = LAYER_SHAPES,
    batch: int = 1,
    repeats: int = 50,
    warmup: int = 5,
    device: str | torch.device = "cpu",
    seed: int = 0,
    channels_last: bool | None = None,
) -> dict[str, Any]:
    """Time each layer's forward against its plain reference (:func:`plain_forward`) on square feature maps.

    Layers get random weights (:func:`randomize_`), are put in eval mode and, for CoordAtt, fused, as in a fused
    model; both implementations run under ``torch.inference_mode()``, the path detectors take at inference.

    Args:
        kinds: Attention kinds (keys of :data:`attnyolo.registration.KINDS`).
        shapes: ``(channels, side)`` feature maps.
        batch: Batch size N.
        repeats: Timed rounds per shape (our forward and the plain one alternate).
        warmup: Untimed rounds first.
        device: Where to run.
        seed: Seed of the weights and inputs.
        channels_last: Feature maps in channels-last (NHWC) memory order; None means the order Ultralytics'
            predictor gives them on this device (:func:`predictor_channels_last`).

    Returns:
        ``{"rows": [...], "summary": {kind: {...}}, "machine": {...}, "settings": {...}}``. A row holds kind,
        channels, size, ``plain_ms``, ``ours_ms`` (medians), ``ratio`` (median of per-round ours/plain),
        ``floor_ms``/``floor_ratio`` (see below) and ``max_abs_diff``; a summary holds the geometric-mean ratios, the
        worst difference and whether both targets (:data:`LAYER_RATIO_TARGET`, :data:`LAYER_TOLERANCE`) are met.

    The *floor* is timed in the same rounds: one reduction over ``x`` and one ``x * gate`` in PyTorch's own loops,
    the two x-sized passes every one of these layers must make (pool the map, write the gated map). Its ratio to the
    plain time is about as low as any implementation can go without beating PyTorch's memory-bound loops; SE and
    ECA's plain form is nothing but those passes plus a few small operators, so their floor sits close to 1 on large
    maps.
    """
    dev = resolve_device(device)
    if channels_last is None:
        channels_last = predictor_channels_last(dev)
    order = _memory_format(channels_last)
    rows = []
    gen = torch.Generator().manual_seed(seed)
    for kind in kinds:
        for channels, side in shapes:
            layer = randomize_(build_layer(kind, channels), seed).to(dev).eval()
            if isinstance(layer, CoordAtt):
                layer.fuse()
            x = torch.randn(batch, channels, side, side, generator=gen).to(dev).contiguous(memory_format=order)
            gate = torch.rand(batch, channels, 1, 1, generator=gen).to(dev)
            with torch.inference_mode():
                ours, plain = layer(x), plain_forward(layer, x)
                diff = float((ours - plain).abs().max())
                scale = float(plain.abs().max())
                del ours, plain
                times = time_interleaved(
                    {
                        "ours": lambda m=layer, x=x: m(x),
                        "plain": lambda m=layer, x=x: plain_forward(m, x),
                        "floor": lambda x=x, g=gate: (x.sum((2, 3)), x * g),
                    },
                    repeats,
                    warmup,
                    dev,
                    settle=1,
                )
            rows.append(
                {
                    "kind": kind,
                    "channels": channels,
                    "size": side,
                    "batch": batch,
                    "plain_ms": statistics.median(times["plain"]) * 1e3,
                    "ours_ms": statistics.median(times["ours"]) * 1e3,
                    "ratio": paired_ratio(times["ours"], times["plain"]),
                    "floor_ms": statistics.median(times["floor"]) * 1e3,
                    "floor_ratio": paired_ratio(times["floor"], times["plain"]),
                    "max_abs_diff": diff,
                    "equal": diff <= LAYER_TOLERANCE * max(1.0, scale),
                }
            )
    summary = {}
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        ratio = geometric_mean(r["ratio"] for r in mine)
        summary[kind] = {
            "geomean_ratio": ratio,
            "geomean_floor_ratio": geometric_mean(r["floor_ratio"] for r in mine),
            "max_abs_diff": max(r["max_abs_diff"] for r in mine),
            "meets_speed_target": ratio <= LAYER_RATIO_TARGET,
            "equal": all(r["equal"] for r in mine),
        }
    settings = {
        "batch": batch,
        "repeats": repeats,
        "warmup": warmup,
        "shapes": [list(s) for s in shapes],
        "memory_format": "channels_last" if channels_last else "contiguous",
    }
    return {"rows": rows, "summary": summary, "machine": machine_info(dev), "settings": settings}


def format_layer_table(result: dict[str, Any]) -> str:
    """Markdown table of :func:`benchmark_layers`: ratio per shape and geometric mean per layer kind."""
    shapes = [tuple(s) for s in result["settings"]["shapes"]]
    heads = [f"{c}×{s}²" for c, s in shapes]
    lines = [
        f"Layer kernels, batch {result['settings']['batch']}, {result['settings']['memory_format']} maps, "
        "our time / plain time "
        f"(median of {result['settings']['repeats']} interleaved rounds; target geomean ≤ {LAYER_RATIO_TARGET}):",
        "",
        "| layer | " + " | ".join(heads) + " | geomean | floor | max abs diff |",
        "|---|" + "---:|" * (len(heads) + 3),
    ]
    for kind, s in result["summary"].items():
        cells = []
        for c, side in shapes:
            row = next(r for r in result["rows"] if r["kind"] == kind and (r["channels"], r["size"]) == (c, side))
            cells.append(f"{row['ratio']:.2f} ({row['plain_ms']:.3g}→{row['ours_ms']:.3g} ms)")
        mark = "" if s["meets_speed_target"] else " (above target)"
        lines.append(
            f"| {kind} | "
            + " | ".join(cells)
            + f" | **{s['geomean_ratio']:.2f}**{mark} | {s['geomean_floor_ratio']:.2f} | {s['max_abs_diff']:.1e} |"
        )
    lines += [
        "",
        "floor: geomean of (one read + one gated write of x in PyTorch's own loops) / plain time, the same rounds.",
        f"Machine: {machine_line(result['machine'])}.",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- models
def default_models(family: str = DEFAULT_FAMILY) -> list[str]:
    """A family's stock baseline and every attention kind on it, e.g. ``yolov8n.yaml``, ``yolov8n-SE.yaml``, ..."""
    return [f"{family}.yaml"] + [f"{family}-{kind}.yaml" for kind in LAYER_KINDS]


def model_kind(name: str) -> str:
    """The attention kind a model name asks for (``yolo11s-ELA-S.yaml`` -> ``ELA-S``), or ``baseline``."""
    stem = Path(str(name)).stem
    for kind in sorted(KINDS, key=len, reverse=True):  # ELA-S before a hypothetical shorter suffix
        if stem.endswith(f"-{kind}") or stem.endswith(f"_{kind}"):
            return kind
    if "Coordinate_attention" in stem:
        return "CoordAtt"
    return "baseline"


def placements_text(placements: Sequence[dict]) -> str:
    """Compact text of :func:`attnyolo.summary.attention_placements`: ``CoordAtt @ 5:P3(128) 8:P4(256) ...``."""
    if not placements:
        return "none"
    layers = sorted({p["layer"] for p in placements})
    return " / ".join(layers) + " @ " + " ".join(f"{p['row']}:{p['level']}({p['channels']})" for p in placements)


def _load_model(name: str | Path, device: torch.device) -> nn.Module:
    """A model YAML (built with nc=80 weights at random) or a checkpoint, as an eval-mode float module."""
    from ultralytics import YOLO

    return YOLO(str(name)).model.float().to(device).eval()


def benchmark_models(
    models: Sequence[str] | None = None,
    imgsz: int = 640,
    device: str | torch.device = "cpu",
    batch: int = 8,
    repeats: int = 20,
    batch_repeats: int | None = None,
    warmup: int = 2,
    baseline: str | None = None,
    fuse: bool = True,
    seed: int = 0,
    channels_last: bool | None = None,
) -> dict[str, Any]:
    """Measure size and speed of several detectors in one interleaved run.

    Args:
        models: Model YAMLs or checkpoints; None means :func:`default_models`.
        imgsz: Square input size.
        device: ``cpu``, ``0``/``cuda``.
        batch: The larger batch size for the throughput column (1 or less skips it).
        repeats: Timed rounds at batch 1.
        batch_repeats: Timed rounds at ``batch``; None means ``max(3, repeats // 4)``.
        warmup: Untimed rounds before each series.
        baseline: The model the overhead ratios refer to; None means the first model without attention layers (or
            the first model).
        fuse: Fold BatchNorms into convs first (Ultralytics' ``fuse``, which also folds CoordAtt's BN), as deployed.
        seed: Seed of the input images.
        channels_last: Convert the models to channels-last memory order; None means what Ultralytics' predictor
            does on this device (:func:`predictor_channels_last`).

    Returns:
        ``{"rows": [...], "baseline", "machine", "settings"}``; each row holds model, kind, attention placements,
        params, GFLOPs, ``latency_ms`` with ``latency_q1_ms``/``latency_q3_ms``, ``batch_latency_ms``,
        ``throughput`` (images/s at ``batch``), ``overhead`` (median per-round latency ratio to the baseline) and the
        params/GFLOPs ratios.
    """
    from ultralytics.utils.torch_utils import get_flops

    from .summary import attention_placements

    names = [str(m) for m in (models or default_models())]
    if not names:
        raise ValueError("models= is empty; give at least one model YAML or checkpoint.")
    if baseline is not None and baseline not in names:
        raise ValueError(f"baseline={baseline!r} is not one of models= ({', '.join(names)}).")
    dev = resolve_device(device)
    if channels_last is None:
        channels_last = predictor_channels_last(dev)
    built = {}
    info = {}
    for name in names:
        model = _load_model(name, dev)
        placements = attention_placements(model.cpu())  # probe pass at 64x64 on CPU, before the move to the device
        model = model.to(dev)
        info[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "gflops": get_flops(model, imgsz),
            "placements": placements,
        }
        built[name] = (model.fuse(verbose=False) if fuse else model).to(memory_format=_memory_format(channels_last))
    if baseline is None:
        baseline = next((n for n in names if not info[n]["placements"]), names[0])

    gen = torch.Generator().manual_seed(seed)
    x1 = torch.rand(1, 3, imgsz, imgsz, generator=gen).to(dev)
    with torch.inference_mode():
        t1 = time_interleaved({n: (lambda m=m: m(x1)) for n, m in built.items()}, repeats, warmup, dev)
        tb = {}
        if batch > 1:
            xb = torch.rand(batch, 3, imgsz, imgsz, generator=gen).to(dev)
            rounds = batch_repeats or max(3, repeats // 4)
            tb = time_interleaved({n: (lambda m=m: m(xb)) for n, m in built.items()}, rounds, min(warmup, 1), dev)

    rows = []
    base = info[baseline]
    for name in names:
        med, q1, q3 = spread(t1[name])
        row = {
            "model": name,
            "kind": model_kind(name),
            "attention": placements_text(info[name]["placements"]),
            "params": info[name]["params"],
            "gflops": info[name]["gflops"],
            "latency_ms": med * 1e3,
            "latency_q1_ms": q1 * 1e3,
            "latency_q3_ms": q3 * 1e3,
            "throughput_b1": 1.0 / med,
            "overhead": paired_ratio(t1[name], t1[baseline]),
            "params_ratio": info[name]["params"] / base["params"],
            "gflops_ratio": info[name]["gflops"] / base["gflops"] if base["gflops"] else float("nan"),
        }
        if tb:
            row["batch_latency_ms"] = statistics.median(tb[name]) * 1e3
            row["throughput"] = batch / statistics.median(tb[name])
            row["batch_overhead"] = paired_ratio(tb[name], tb[baseline])
        rows.append(row)
    settings = {
        "imgsz": imgsz,
        "batch": batch,
        "repeats": repeats,
        "warmup": warmup,
        "fused": fuse,
        "memory_format": "channels_last" if channels_last else "contiguous",
    }
    return {"rows": rows, "baseline": baseline, "machine": machine_info(dev), "settings": settings}


def format_model_table(result: dict[str, Any]) -> str:
    """Markdown table of :func:`benchmark_models`, ready for a README; ratios refer to the run's own baseline."""
    s = result["settings"]
    has_batch = any("batch_latency_ms" in r for r in result["rows"])
    head = "| model | attention (row:level(channels)) | params | GFLOPs | latency b1 ms (IQR) | overhead |"
    rule = "|---|---|---:|---:|---:|---:|"
    if has_batch:
        head += f" b{s['batch']} ms | img/s b{s['batch']} |"
        rule += "---:|---:|"
    lines = [
        f"Models at {s['imgsz']}×{s['imgsz']}, {'fused, ' if s['fused'] else ''}{s['memory_format']}, "
        f"{result['machine']['device']}, "
        f"latency median of {s['repeats']} interleaved rounds; overhead = median per-round latency ratio to "
        f"{result['baseline']} (target ≤ {MODEL_OVERHEAD_TARGET:.2f}):",
        "",
        head,
        rule,
    ]
    for r in result["rows"]:
        line = (
            f"| {r['model']} | {r['attention']} | {r['params'] / 1e6:.3f}M ({r['params_ratio']:.3f}×) | "
            f"{r['gflops']:.2f} ({r['gflops_ratio']:.3f}×) | "
            f"{r['latency_ms']:.1f} ({r['latency_q1_ms']:.1f}–{r['latency_q3_ms']:.1f}) | {r['overhead']:.3f}× |"
        )
        if has_batch:
            line += f" {r.get('batch_latency_ms', float('nan')):.1f} | {r.get('throughput', float('nan')):.1f} |"
        lines.append(line)
    lines += ["", f"Machine: {machine_line(result['machine'])}."]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- output
def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    """Rows of dicts as CSV, columns in first-seen order."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def plot_models(result: dict[str, Any], path: str | Path) -> Path:
    """Bar chart of batch-1 latency (median, IQR whiskers) per model, annotated with the overhead ratio."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [Path(r["model"]).stem for r in rows]
    med = [r["latency_ms"] for r in rows]
    err = [[r["latency_ms"] - r["latency_q1_ms"] for r in rows], [r["latency_q3_ms"] - r["latency_ms"] for r in rows]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(rows) + 2), 4.2))
    colors = ["0.55" if r["model"] == result["baseline"] else "tab:blue" for r in rows]
    bars = ax.bar(range(len(rows)), med, yerr=err, capsize=3, color=colors)
    for bar, r in zip(bars, rows):  # inside the bar's foot, clear of the whiskers
        ax.annotate(
            f"{r['overhead']:.3f}×",
            (bar.get_x() + bar.get_width() / 2, 0),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color="white",
        )
    ax.set_xticks(range(len(rows)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("latency, batch 1 (ms)")
    s = result["settings"]
    ax.set_title(f"{s['imgsz']}×{s['imgsz']}, {result['machine']['device']}; label: latency ratio to baseline (grey)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_layers(result: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars of our/plain time per layer kind and shape, with the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(result["summary"])
    shapes = [tuple(s) for s in result["settings"]["shapes"]]
    width = 0.8 / (len(shapes) + 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(kinds) + 2), 4.2))
    for j, (c, side) in enumerate(shapes):
        vals = [
            next(r["ratio"] for r in result["rows"] if r["kind"] == k and (r["channels"], r["size"]) == (c, side))
            for k in kinds
        ]
        ax.bar([i + j * width for i in range(len(kinds))], vals, width, label=f"{c}×{side}²")
    geo = [result["summary"][k]["geomean_ratio"] for k in kinds]
    ax.bar([i + len(shapes) * width for i in range(len(kinds))], geo, width, color="k", label="geomean")
    ax.axhline(LAYER_RATIO_TARGET, color="tab:red", linestyle="--", linewidth=1, label=f"target {LAYER_RATIO_TARGET}")
    ax.axhline(1.0, color="0.5", linewidth=0.8)
    ax.set_xticks([i + len(shapes) * width / 2 for i in range(len(kinds))], kinds)
    ax.set_ylabel("our time / plain time")
    ax.set_title(f"Attention layer kernels, batch {result['settings']['batch']}, {result['machine']['device']}")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(out_dir: str | Path, models: dict | None = None, layers: dict | None = None) -> dict[str, Path]:
    """Write Markdown, CSV, JSON and PNG files of the model and/or layer benchmarks into ``out_dir``.

    Returns:
        Name -> path of every file written (``models.md``, ``models.csv``, ``models.png``, ``layers.md``, ...,
        ``benchmark.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    if models is not None:
        files["models.md"] = out / "models.md"
        files["models.md"].write_text(format_model_table(models) + "\n", encoding="utf-8")
        files["models.csv"] = out / "models.csv"
        _write_csv(files["models.csv"], models["rows"])
        files["models.png"] = plot_models(models, out / "models.png")
    if layers is not None:
        files["layers.md"] = out / "layers.md"
        files["layers.md"].write_text(format_layer_table(layers) + "\n", encoding="utf-8")
        files["layers.csv"] = out / "layers.csv"
        _write_csv(files["layers.csv"], layers["rows"])
        files["layers.png"] = plot_layers(layers, out / "layers.png")
    files["benchmark.json"] = out / "benchmark.json"
    files["benchmark.json"].write_text(json.dumps({"models": models, "layers": layers}, indent=2), encoding="utf-8")
    return files


__all__ = (
    "LAYER_KINDS",
    "LAYER_SHAPES",
    "benchmark_layers",
    "benchmark_models",
    "coord_att_gates",
    "default_models",
    "ela_gates",
    "format_layer_table",
    "format_model_table",
    "plain_forward",
    "write_results",
)
