"""Timing step of the GPU check (:mod:`attnyolo.analysis.gpu_check`): what attention costs on a GPU.

Interleaved float16 latency at batch 1 and at a large batch, and the AMP training-step time, of YOLOv8s, YOLO11s and
classic YOLOv5s with and without CoordAtt and ELA-S; the ratios to the stock model are the result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .gpu_precision import kind_of, synthetic_batch, trainable_model
from .summary import open_model
from .timing import paired_ratio, spread, time_interleaved

TIMED_FAMILIES = ("yolov8s", "yolo11s", "yolov5s-classic")
TIMED_KINDS = ("", "CoordAtt", "ELA-S")


def _timed_model(name: str, device: torch.device, half: bool) -> torch.nn.Module:
    """A fused, eval-mode model for latency (float16 on CUDA, as Ultralytics' predictor runs it with half=True)."""
    model = open_model(name, "models").model.float().to(device).fuse(verbose=False).eval()
    return model.half() if half else model


def time_models(device: torch.device, sizes: dict[str, Any]) -> dict[str, Any]:
    """Interleaved float16 latency (batch 1 and a large batch) and AMP training-step time, with ratios to stock.

    Returns:
        ``{"rows": [...], "settings": {...}}``; each row holds model, family, kind, latency and step times (medians
        and quartiles in ms) and the ratios (median over rounds of the per-round ratio) to its family's stock model.
    """
    names = [f"{family}{'-' + kind if kind else ''}.yaml" for family in TIMED_FAMILIES for kind in TIMED_KINDS]
    half = device.type == "cuda"  # float16 convolutions are what a GPU deploys; the CPU dry run stays float32
    imgsz, big = sizes["timing_imgsz"], sizes["timing_batch"]
    gen = torch.Generator().manual_seed(0)
    x1 = torch.rand(1, 3, imgsz, imgsz, generator=gen).to(device)
    xb = torch.rand(big, 3, imgsz, imgsz, generator=gen).to(device)
    if half:
        x1, xb = x1.half(), xb.half()
    models = {n: _timed_model(n, device, half) for n in names}
    with torch.inference_mode():
        b1 = time_interleaved(
            {n: (lambda m=m: m(x1)) for n, m in models.items()}, sizes["repeats"], sizes["warmup"], device
        )
        bb = time_interleaved(
            {n: (lambda m=m: m(xb)) for n, m in models.items()}, sizes["batch_repeats"], sizes["warmup"], device
        )
    del models
    steps = {n: _training_step(n, device, sizes["train_step_batch"], imgsz) for n in names}
    ts = time_interleaved(steps, sizes["step_repeats"], sizes["warmup"], device)
    rows = []
    for name in names:
        family = next(f for f in TIMED_FAMILIES if Path(name).stem.startswith(f))
        stock = f"{family}.yaml"
        row = {"model": name, "family": family, "kind": kind_of(name) or "stock"}
        for key, times in (("latency_b1", b1), (f"latency_b{big}", bb), ("train_step", ts)):
            med, q1, q3 = spread(times[name])
            row[f"{key}_ms"], row[f"{key}_q1_ms"], row[f"{key}_q3_ms"] = med * 1e3, q1 * 1e3, q3 * 1e3
            row[f"{key}_ratio"] = paired_ratio(times[name], times[stock])
        rows.append(row)
    settings = {
        "imgsz": imgsz,
        "latency_dtype": "float16 model (half)" if half else "float32 (CPU dry run)",
        "large_batch": big,
        "train_step": f"AMP float16 autocast + GradScaler, SGD, batch {sizes['train_step_batch']}"
        if half
        else f"float32, SGD, batch {sizes['train_step_batch']} (CPU dry run)",
        "repeats": {"b1": sizes["repeats"], "large_batch": sizes["batch_repeats"], "train_step": sizes["step_repeats"]},
        "warmup": sizes["warmup"],
        "fused": True,
    }
    return {"rows": rows, "settings": settings}


def _training_step(name: str, device: torch.device, batch: int, imgsz: int) -> Callable[[], None]:
    """One optimizer step of ``name`` (forward, loss, backward, step) on a fixed synthetic batch, AMP on CUDA."""
    model = trainable_model(name, device).train()
    data = synthetic_batch(batch, imgsz, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = model.loss(data)[0].sum()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step
