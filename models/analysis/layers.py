"""Speed of each attention layer against its reference equations, on the feature maps of a 640 input.

:func:`benchmark_layers` times each layer's own forward against :mod:`attnyolo.layers.reference` (the papers'
equations, written with torch's functional operators) on the shapes of :data:`attnyolo.layers.registry.BENCHMARK_SHAPES`
(64x160², 128x80², 256x40², 512x20²). Reported per shape: both times, their ratio and the largest output difference;
per kind: the geometric mean of the ratios. Behind ``tools/benchmark.py layers=True``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch

from ..integration.internals import predictor_channels_last
from ..layers.coord_attention import CoordAtt
from ..layers.reference import randomize_
from ..layers.registry import BENCHMARK_SHAPES, build_layer, kind_names, reference_forward
from .timing import (
    geometric_mean,
    machine_info,
    machine_line,
    memory_format,
    paired_ratio,
    resolve_device,
    time_interleaved,
)

# Target: our layer time / reference time, geometric mean over BENCHMARK_SHAPES.
LAYER_RATIO_TARGET = 0.7
LAYER_TOLERANCE = 1e-5  # fast and reference outputs must agree this closely (absolute and relative)


def benchmark_layers(
    kinds: Sequence[str] | None = None,
    shapes: Sequence[tuple[int, int]] = BENCHMARK_SHAPES,
    batch: int = 1,
    repeats: int = 50,
    warmup: int = 5,
    device: str | torch.device = "cpu",
    seed: int = 0,
    channels_last: bool | None = None,
) -> dict[str, Any]:
    """Time each layer's forward against its reference equations (:func:`reference_forward`) on square feature maps.

    Layers get random weights (:func:`randomize_`), are put in eval mode and, for CoordAtt, fused, as in a fused
    model; both implementations run under ``torch.inference_mode()``, the path detectors take at inference.

    Args:
        kinds: Attention kinds (names of :data:`attnyolo.layers.registry.KINDS`); None means all, in table order.
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
    kinds = list(kinds) if kinds is not None else kind_names()
    dev = resolve_device(device)
    if channels_last is None:
        channels_last = predictor_channels_last(dev)
    order = memory_format(channels_last)
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
                ours, plain = layer(x), reference_forward(layer, x)
                diff = float((ours - plain).abs().max())
                scale = float(plain.abs().max())
                del ours, plain
                times = time_interleaved(
                    {
                        "ours": lambda m=layer, x=x: m(x),
                        "plain": lambda m=layer, x=x: reference_forward(m, x),
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
