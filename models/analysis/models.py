"""Size and speed of whole detectors, each attention kind against its baseline, in one interleaved run.

:func:`benchmark_models` reports parameters, GFLOPs, latency (median and interquartile range over warm repeats, fused,
batch 1 and a larger batch), throughput, where the attention layers sit, and the latency overhead against the
baseline measured in the same run. Behind ``tools/benchmark.py``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.utils import torch_utils

from ..integration.internals import predictor_channels_last
from ..layers.registry import kind_names
from .summary import attention_placements, open_model
from .timing import machine_info, machine_line, memory_format, paired_ratio, resolve_device, spread, time_interleaved

MODEL_OVERHEAD_TARGET = 1.03  # our model's latency / its baseline's, batch 1
DEFAULT_FAMILY = "yolov8n"


def default_models(family: str = DEFAULT_FAMILY, kinds: Sequence[str] | None = None) -> list[str]:
    """A family's stock baseline and each attention kind on it (default: all): ``yolov8n.yaml``, ``yolov8n-SE.yaml``."""
    return [f"{family}.yaml"] + [f"{family}-{kind}.yaml" for kind in (kind_names() if kinds is None else kinds)]


def model_kind(name: str) -> str:
    """The attention kind a model name asks for (``yolo11s-ELA-S.yaml`` -> ``ELA-S``), or ``baseline``."""
    stem = Path(str(name)).stem
    for kind in sorted(kind_names(), key=len, reverse=True):  # ELA-S before a hypothetical shorter suffix
        if stem.endswith(f"-{kind}") or stem.endswith(f"_{kind}"):
            return kind
    if "Coordinate_attention" in stem:
        return "CoordAtt"
    return "baseline"


def placements_text(placements: Sequence[dict]) -> str:
    """Compact text of :func:`attnyolo.analysis.summary.attention_placements`: ``CoordAtt @ 5:P3(128) ...``."""
    if not placements:
        return "none"
    layers = sorted({p["layer"] for p in placements})
    return " / ".join(layers) + " @ " + " ".join(f"{p['row']}:{p['level']}({p['channels']})" for p in placements)


def _load_model(name: str | Path, device: torch.device) -> nn.Module:
    """A model YAML (built with nc=80 weights at random) or a checkpoint, as an eval-mode float module."""
    return open_model(name, "models").model.float().to(device).eval()


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
            "gflops": torch_utils.get_flops(model, imgsz),  # through the module: the get_flops the seam patched
            "placements": placements,
        }
        built[name] = (model.fuse(verbose=False) if fuse else model).to(memory_format=memory_format(channels_last))
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
