"""Benchmark results as files: Markdown tables, CSV, JSON and PNG plots."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_path, write_json_atomic, write_text_atomic
from .layers import LAYER_RATIO_TARGET, format_layer_table
from .models import format_model_table


def write_csv(path: str | Path, rows: Sequence[dict], fields: Sequence[str] | None = None) -> Path:
    """Write rows of dicts as CSV, atomically; columns are ``fields`` or every key in first-seen order."""
    if fields is None:
        fields = []
        for row in rows:
            fields += [k for k in row if k not in fields]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt  # heavy, and only plots need it: imported when one is drawn

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def plot_models(result: dict[str, Any], path: str | Path) -> Path:
    """Bar chart of batch-1 latency (median, IQR whiskers) per model, annotated with the overhead ratio."""
    import matplotlib  # heavy, and only plots need it: imported when one is drawn

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt  # after choosing the backend, as matplotlib requires

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
    return save_figure(fig, path)


def plot_layers(result: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars of our/plain time per layer kind and shape, with the target line."""
    import matplotlib  # heavy, and only plots need it: imported when one is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend, as matplotlib requires

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
    return save_figure(fig, path)


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
        write_text_atomic(files["models.md"], format_model_table(models) + "\n")
        files["models.csv"] = out / "models.csv"
        write_csv(files["models.csv"], models["rows"])
        files["models.png"] = plot_models(models, out / "models.png")
    if layers is not None:
        files["layers.md"] = out / "layers.md"
        write_text_atomic(files["layers.md"], format_layer_table(layers) + "\n")
        files["layers.csv"] = out / "layers.csv"
        write_csv(files["layers.csv"], layers["rows"])
        files["layers.png"] = plot_layers(layers, out / "layers.png")
    files["benchmark.json"] = out / "benchmark.json"
    write_json_atomic(files["benchmark.json"], {"models": models, "layers": layers})
    return files
