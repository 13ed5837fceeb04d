"""What tracking adds per frame over detection: predict and track on the same video, interleaved (benchmark_track).

Both modes run through the same code users run (:func:`attnyolo.engine.predict.predict`, with and without a tracker)
on one loaded model, with the same settings (``conf`` included: Ultralytics' ``track`` lowers its default to 0.1, so
both get the same value here), nothing saved. A frame's time is the wall time between two consecutive results of one
pass, so it covers reading, pre-processing, the network, NMS and, when tracking, the tracker's update. The first frame
of each pass (predictor set-up) is left out. Passes alternate which mode goes first, so a burst of load from another
process hits both. Each frame is timed twice: wall-clock, and this process's CPU time (all its threads), which other
processes' load inflates far less than the wall-clock time on a shared machine.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ..engine.predict import open_model, predict
from ..engine.track import DEFAULT_TRACKER, check_tracker, check_video_source, require_lap
from .timing import machine_info, machine_line, paired_ratio, spread

MODES = ("predict", "track")
CLOCKS = ("wall", "cpu")  # time.perf_counter, time.process_time


def _frame_times(yolo, source: str, tracker, settings: dict) -> dict[str, list[float]]:
    """Wall and CPU seconds per frame of one pass over ``source`` (first frame excluded); ``tracker`` None: predict."""
    stamps: list[tuple[float, float]] = []
    extra = {"tracker": tracker, "persist": False} if tracker is not None else {}

    def stamp(_):
        stamps.append((time.perf_counter(), time.process_time()))

    predict(yolo, source, progress_every=0, on_result=stamp, **extra, **settings)
    return {clock: [b[i] - a[i] for a, b in zip(stamps, stamps[1:])] for i, clock in enumerate(CLOCKS)}


def track_overhead(
    model=None, source=None, tracker: str = DEFAULT_TRACKER, rounds: int = 5, conf: float = 0.1, **settings
) -> dict[str, Any]:
    """Time predict and track per frame on one video, ``rounds`` interleaved passes each.

    Args:
        model: Checkpoint path (None: the newest best.pt of the default training run) or a loaded model.
        source: A video file.
        tracker: The tracker YAML (as ``attnyolo track``).
        rounds: Passes per mode after one untimed warm-up pass each.
        conf: Confidence threshold of both modes.
        **settings: Other Ultralytics predict settings for both (imgsz, device, ...).

    Returns:
        Per clock (``wall``, ``cpu``): ``{"ms": {mode: (median, q1, q3)}, "overhead": median over rounds of the
        paired ratio of per-frame medians, minus 1, "overhead_range": (min, max) over rounds}``; plus ``frames`` (timed
        frames per mode), ``rounds``, ``tracker``, ``source``, ``settings`` and ``machine``.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds} must be >= 1.")
    require_lap()
    source = check_video_source(source)
    tracker = check_tracker(tracker)
    yolo = open_model(model)
    settings = {**settings, "conf": conf, "save": False, "verbose": False}
    machine = machine_line(machine_info(settings.get("device") or "cpu"))
    passes: dict[str, list[dict[str, list[float]]]] = {mode: [] for mode in MODES}
    for i in range(rounds + 1):
        for mode in MODES if i % 2 == 0 else MODES[::-1]:
            times = _frame_times(yolo, source, tracker if mode == "track" else None, settings)
            if i > 0:  # the first pass of each mode warms up caches and the predictor
                passes[mode].append(times)
    result: dict[str, Any] = {}
    for clock in CLOCKS:
        medians = {mode: [statistics.median(p[clock]) for p in passes[mode]] for mode in MODES}
        ratios = [a / b for a, b in zip(medians["track"], medians["predict"])]
        every = {mode: [t for p in passes[mode] for t in p[clock]] for mode in MODES}
        result[clock] = {
            "ms": {mode: tuple(1000 * v for v in spread(every[mode])) for mode in MODES},
            "overhead": paired_ratio(medians["track"], medians["predict"]) - 1,
            "overhead_range": (min(ratios) - 1, max(ratios) - 1),
        }
    return {
        **result,
        "frames": {mode: sum(len(p["wall"]) for p in passes[mode]) for mode in MODES},
        "rounds": rounds,
        "tracker": str(tracker),
        "source": source,
        "settings": {k: v for k, v in settings.items() if k not in {"save", "verbose"}},
        "machine": machine,
    }


def format_track_overhead(result: dict[str, Any]) -> str:
    """A Markdown table of :func:`track_overhead`'s result, with the settings and the machine."""
    lines = [
        f"source {result['source']}, tracker {result['tracker']}, settings {result['settings']}, "
        f"{result['rounds']} interleaved rounds; {result['machine']}",
        "",
        "| clock | predict ms/frame (IQR) | track ms/frame (IQR) | tracking adds (rounds) |",
        "|---|---|---|---|",
    ]
    for clock in CLOCKS:
        r = result[clock]
        cells = [f"{m:.1f} ({q1:.1f}-{q3:.1f})" for m, q1, q3 in (r["ms"]["predict"], r["ms"]["track"])]
        low, high = r["overhead_range"]
        added = f"{100 * r['overhead']:+.1f}% ({100 * low:+.1f}% to {100 * high:+.1f}%)"
        lines.append(f"| {clock} | {cells[0]} | {cells[1]} | {added} |")
    lines += [
        "",
        f"{result['frames']['track']} frames timed per mode; 'tracking adds' is the median over rounds of the paired "
        "ratio of per-frame medians, minus 1.",
    ]
    return "\n".join(lines)
