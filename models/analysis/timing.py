"""Timing done the same way for every benchmark: interleaved rounds, paired ratios, and a record of the machine.

Timing is interleaved: every repeat runs each candidate once, in turn, so load from other processes on a shared
machine falls on all candidates alike. Ratios are medians of per-repeat ratios, which cancels slow drifts in load.
On CUDA every timed call is bracketed by ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from ..layers.fast.kernels import fused_ops, fused_unavailable_reason, vector_isa


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


def memory_format(channels_last: bool) -> torch.memory_format:
    """``torch.channels_last`` or ``torch.contiguous_format``."""
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
