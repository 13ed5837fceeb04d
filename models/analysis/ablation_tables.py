"""The report of an ablation written out: the Markdown tables, the tidy CSV, the JSON and the figures.

From the report :func:`attnyolo.analysis.ablation_report.build_report` assembles. Files: ``ablation.md`` (tables a
paper can paste, with a line per interval saying what it covers), ``ablation.csv`` (tidy: one row per run, every
metric and setting), ``ablation.json`` (everything), and one figure per placement set (``ablation.png`` for the named
models, ``ablation-<kind>-placements.png`` per placed kind): AP against latency and against parameters, mean +- sd
over seeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..utils.atomic import write_json_atomic, write_text_atomic
from .ablation_report import METRICS, metric_value
from .ablation_state import NOT_RECIPE
from .report import save_figure, write_csv
from .timing import machine_line

RESULTS_FILE = "ablation.json"
TABLE_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "VOC07_mAP50")


def _pct(value: float | None, signed: bool = False) -> str:
    """A fraction as a percentage with one decimal ('-' when undefined)."""
    if value is None:
        return "-"
    return f"{value * 100:+.1f}" if signed else f"{value * 100:.1f}"


def _mean_sd(d: dict[str, Any]) -> str:
    """``mean ± sd`` in %, or the mean alone with one value."""
    if d["mean"] is None:
        return "-"
    return f"{_pct(d['mean'])} ± {_pct(d['sd'])}" if d["sd"] is not None else _pct(d["mean"])


def _ci(low: float | None, high: float | None, signed: bool = False) -> str:
    """``[low, high]`` in %, or '-'."""
    return "-" if low is None or high is None else f"[{_pct(low, signed)}, {_pct(high, signed)}]"


def _num(value: float | None, fmt: str = ".3g") -> str:
    """A number or '-'."""
    return "-" if value is None else format(value, fmt)


def format_ablation_table(result: dict[str, Any]) -> str:
    """The Markdown report: accuracy over seeds, comparison with the baseline, test-set bootstrap, cost, notes."""
    recipe = ", ".join(f"{k}={v}" for k, v in result["recipe"].items() if k not in NOT_RECIPE)
    level = f"{100 * result['confidence']:g}%"
    seeds = ", ".join(map(str, result["seeds"]))
    lines = [
        f"Data: {result['data']}; recipe: {recipe}; seeds: {seeds}. COCO AP by pycocotools, VOC07 mAP50 by the devkit "
        "(11-point, difficult ignored), in %.",
        "",
        "Accuracy over seeds (mean ± sample sd, %):",
        "",
        "| model | placement | n | "
        + " | ".join(TABLE_METRICS).replace("VOC07_mAP50", "VOC07 mAP50")
        + f" | AP {level} CI |",
        "|---|---|---:|" + "---:|" * (len(TABLE_METRICS) + 1),
    ]
    for m in result["models"]:
        cells = [_mean_sd(m["metrics"][k]) for k in TABLE_METRICS]
        ap = m["metrics"]["AP"]
        lines.append(
            f"| {m['label']} | {m['placement'] or '-'} | {ap['n']} | "
            + " | ".join(cells)
            + f" | {_ci(ap['ci_low'], ap['ci_high'])} |"
        )
    base = result["baseline"]
    compared = [m for m in result["models"] if "vs_baseline" in m]
    if base is None:
        lines += ["", "No comparison: no baseline (give baseline=, or exactly one model without attention)."]
    elif compared:
        lines += [
            "",
            f"AP against the baseline {base} (model − baseline, percentage points):",
            "",
            f"| model | seeds | ΔAP per seed | mean ΔAP | {level} CI (seeds, paired) | t | p | verdict (seeds) |"
            f" ΔAP per added GFLOP | ΔAP per added ms |",
            "|---|---:|---|---:|---:|---:|---:|---|---:|---:|",
        ]
        for m in compared:
            p = m["vs_baseline"]["paired"]["AP"]
            diffs = ", ".join(f"{d * 100:+.1f}" for d in p["diffs"])
            lines.append(
                f"| {m['label']} | {p['n']} | {diffs or '-'} | {_pct(p['mean'], True)} | "
                f"{_ci(p['ci_low'], p['ci_high'], True)} | {_num(p['t'], '.2f')} | {_num(p['p'], '.3f')} | "
                f"{p['verdict']} | {_num(m.get('ap_per_gflop'))} | {_num(m.get('ap_per_ms'))} |"
            )
        boot = [(m, b) for m in compared for b in m["vs_baseline"]["bootstrap"]]
        if boot:
            lines += [
                "",
                f"Test-set bootstrap of ΔAP ({result['bootstrap_resamples']} resamples of the validation images):",
                "",
                f"| model | seed | AP model | AP baseline | ΔAP | {level} CI (test images) | verdict (test images) |",
                "|---|---:|---:|---:|---:|---:|---|",
            ]
            for m, b in boot:
                if "metrics" not in b:
                    lines.append(f"| {m['label']} | {b['seed']} | - | - | - | - | {b.get('note', '-')} |")
                    continue
                a = b["metrics"]["AP"]
                lines.append(
                    f"| {m['label']} | {b['seed']} | {_pct(a['a'])} | {_pct(a['b'])} | {_pct(a['diff'], True)} | "
                    f"{_ci(a['ci_low'], a['ci_high'], True)} | {a['verdict']} |"
                )
    lines += ["", "Cost (first-seed checkpoint; GFLOPs and latency at the training size, fused, batch 1):", ""]
    has_latency = all("latency_ms" in m["cost"] for m in result["models"])
    lines += [
        "| model | params | GFLOPs |" + (" latency ms |" if has_latency else ""),
        "|---|---:|---:|" + ("---:|" if has_latency else ""),
    ]
    for m in result["models"]:
        c = m["cost"]
        lines.append(
            f"| {m['label']} | {c['params'] / 1e6:.3f}M | {c['gflops']:.3f} |"
            + (f" {c['latency_ms']:.2f} |" if has_latency else "")
        )
    lines += ["", "What each interval covers:"]
    lines += [f"- {text}" for text in result["notes"].values()]
    own = [(m["label"], m["settings"]) for m in result["models"] if m.get("settings")]
    if own:
        lines += ["", "Settings the recipe leaves open, where a model's own defaults differ from Ultralytics':"]
        lines += [f"- {label}: {', '.join(f'{k}={v}' for k, v in s.items())}" for label, s in own]
    if result.get("machine"):
        lines += ["", f"Latency machine: {machine_line(result['machine'])}."]
    return "\n".join(lines)


def figure_sets(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The figures' model sets: file stem -> models (the baseline in each).

    ``ablation``: the named models (those without a placement); ``ablation-<kind>-placements``: the baseline and the
    placements of one kind. A set with no model besides the baseline gets no figure.
    """
    base = [m for m in result["models"] if m["label"] == result["baseline"]]
    sets = {"ablation": [m for m in result["models"] if m["placement"] is None]}
    for m in result["models"]:
        if m["placement"] is not None:
            sets.setdefault(f"ablation-{m['kind']}-placements", list(base)).append(m)
    return {k: v for k, v in sets.items() if len([m for m in v if m["label"] != result["baseline"]]) >= 1}


def plot_ablation(result: dict[str, Any], models: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """AP (mean ± sd over seeds) against latency (if measured) and against parameters, one point per model."""
    import matplotlib  # heavy; only the report needs it

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt  # after choosing the backend, as matplotlib requires

    panels = []
    if all("latency_ms" in m["cost"] for m in models):
        panels.append(("latency_ms", "CPU latency, batch 1 (ms)", 1.0))
    panels.append(("params", "parameters (M)", 1e-6))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.4), squeeze=False)
    for ax, (key, label, scale) in zip(axes[0], panels):
        for m in models:
            ap = m["metrics"]["AP"]
            if ap["mean"] is None:
                continue
            x, y, sd = m["cost"][key] * scale, ap["mean"] * 100, (ap["sd"] or 0.0) * 100
            is_base = m["label"] == result["baseline"]
            ax.errorbar(x, y, yerr=sd, fmt="s" if is_base else "o", color="0.4" if is_base else "tab:blue", capsize=3)
            name = m["label"] if m["placement"] is None else f"{m['placement']}"
            ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel(f"COCO AP (%), mean ± sd over {len(result['seeds'])} seed(s)")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def csv_rows(result: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Tidy rows, one per run: which run, every metric, cost, time, the recipe and the model's own settings."""
    cost = {m["label"]: m["cost"] for m in result["models"]}
    recipe_keys = list(result["recipe"])
    fields = [
        "name",
        "label",
        "model",
        "kind",
        "placement",
        "seed",
        *METRICS,
        "params",
        "gflops",
        "latency_ms",
        "train_seconds",
        *recipe_keys,
        "model_settings",
        "run_dir",
    ]
    rows = []
    for r in result["runs"]:
        row = {k: r.get(k) for k in ("name", "label", "model", "kind", "placement", "seed", "train_seconds", "run_dir")}
        row.update({m: metric_value(r, m) for m in METRICS})
        row.update({k: cost[r["label"]].get(k) for k in ("params", "gflops", "latency_ms")})
        row.update(result["recipe"])
        row["model_settings"] = json.dumps(r.get("settings") or {}, sort_keys=True)
        rows.append(row)
    return rows, fields


def write_ablation(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``ablation.md``, ``ablation.csv``, ``ablation.json`` and the figures into ``out_dir``; return the paths."""
    out = Path(out_dir)
    files = {"md": out / "ablation.md", "csv": out / "ablation.csv", "json": out / RESULTS_FILE}
    write_text_atomic(files["md"], format_ablation_table(result) + "\n")
    rows, fields = csv_rows(result)
    write_csv(files["csv"], rows, fields)
    write_json_atomic(files["json"], {k: v for k, v in result.items() if k != "files"})
    for stem, models in figure_sets(result).items():
        title = f"{Path(result['data']).parent.name}: AP vs cost" + (
            "" if stem == "ablation" else f", {models[-1]['kind']} placements"
        )
        files[stem] = plot_ablation(result, models, out / f"{stem}.png", title)
    return files
