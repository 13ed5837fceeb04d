"""The report of an ablation: statistics over seeds, paired and bootstrap comparisons, cost, tables and figures.

From the finished-run records of :mod:`attnyolo.analysis.ablation_state`:

* per model, for every metric the evaluators give (COCO AP, AP50, AP75, APs/m/l; VOC07 11-point and area mAP50):
  n, mean, sample sd and the Student t interval over seeds (:func:`attnyolo.analysis.statistics.describe`);
* per model against the baseline: the per-seed differences (same seed, same data order), their mean with its t
  interval and the paired t-test (:func:`attnyolo.analysis.statistics.paired_difference`), and, per seed, the
  test-set bootstrap of the AP difference (:func:`attnyolo.analysis.bootstrap.bootstrap_difference`: the
  validation images resampled with replacement, both models scored on each resample), which needs only the run's
  ``predictions.json`` and the ground truth it was scored on, both kept in every run directory;
* cost: params, GFLOPs and batch-1 latency, measured once, interleaved, for all models
  (:func:`attnyolo.analysis.models.benchmark_models`, on each model's first-seed checkpoint; kept in the state, so a
  rerun reprints the same numbers and only a changed set of models is measured again), and the AP gain per added
  GFLOP and per added millisecond.

Files: ``ablation.md`` (tables a paper can paste, with a line per interval saying what it covers), ``ablation.csv``
(tidy: one row per run, every metric and setting), ``ablation.json`` (everything), and one figure per placement
set (``ablation.png`` for the named models, ``ablation-<kind>-placements.png`` per placed kind): AP against latency
and against parameters, mean +- sd over seeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..utils.atomic import write_json_atomic, write_text_atomic
from .ablation_state import NOT_RECIPE, resolve
from .bootstrap import bootstrap_difference
from .models import benchmark_models
from .report import save_figure, write_csv
from .statistics import INTERVAL_NOTES, describe, interval_note, paired_difference
from .summary import model_summary
from .timing import machine_line

RESULTS_FILE = "ablation.json"
DEFAULT_IMGSZ = 640  # Ultralytics' default input size, for the cost columns when imgsz= is not given
# Every metric of the report: name -> (evaluator block, key in it).
METRICS: dict[str, tuple[str, str]] = {
    "AP": ("coco", "AP"),
    "AP50": ("coco", "AP50"),
    "AP75": ("coco", "AP75"),
    "APs": ("coco", "APs"),
    "APm": ("coco", "APm"),
    "APl": ("coco", "APl"),
    "VOC07_mAP50": ("voc", "mAP50_11point"),
    "VOC_area_mAP50": ("voc", "mAP50_area"),
}
TABLE_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "VOC07_mAP50")


def metric_value(record: dict[str, Any], metric: str) -> float | None:
    """A run's value of ``metric`` (a fraction), or None where the evaluator left it undefined (e.g. no small boxes)."""
    block, key = METRICS[metric]
    value = record.get(block, {}).get(key)
    return None if value is None or value < 0 else float(value)


def choose_baseline(labels: Sequence[str], kinds: dict[str, str], baseline: str | None) -> str | None:
    """The label of the baseline: ``baseline`` (a label or model name), else the one model without attention.

    Raises:
        ValueError: ``baseline`` names no model of the ablation.
    """
    if baseline is not None:
        label = Path(str(baseline)).stem
        if label not in labels:
            raise ValueError(f"baseline={baseline} is not one of the models ({', '.join(labels)}). Fix: name one.")
        return label
    plain = [label for label in labels if kinds[label] == "baseline"]
    return plain[0] if len(plain) == 1 else None


def _group(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records by model label, in first-seen order, each list in seed order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["label"], []).append(r)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in groups.items()}


def _compare(
    runs: Sequence[dict], base: Sequence[dict], out: Path, bootstrap: int, confidence: float, log: Callable
) -> dict[str, Any]:
    """A model against the baseline: paired differences per metric over common seeds; bootstrap per common seed."""
    by_seed = {r["seed"]: r for r in base}
    pairs = [(r, by_seed[r["seed"]]) for r in runs if r["seed"] in by_seed]
    paired = {
        m: paired_difference([metric_value(a, m) for a, _ in pairs], [metric_value(b, m) for _, b in pairs], confidence)
        for m in METRICS
    }
    boot = []
    for a, b in pairs if bootstrap > 0 else []:
        files = [
            resolve(out, a.get("predictions")),
            resolve(out, b.get("predictions")),
            resolve(out, b.get("ground_truth")),
        ]
        if not all(f is not None and f.is_file() for f in files):
            boot.append({"seed": a["seed"], "note": "no predictions.json or ground truth kept for this run"})
            continue
        log(f"bootstrap: {a['label']} vs {b['label']}, seed {a['seed']}, {bootstrap} resamples")
        result = bootstrap_difference(
            str(files[2]), str(files[0]), str(files[1]), resamples=bootstrap, seed=0, confidence=confidence
        )
        # the training seed of the pair names the row; the resampling's own seed is kept beside it
        boot.append({**result, "seed": a["seed"], "resampling_seed": result["seed"]})
    return {"seeds": [a["seed"] for a, _ in pairs], "paired": paired, "bootstrap": boot}


def measure_cost(
    state: dict[str, Any], checkpoints: dict[str, Path], imgsz: int, device: Any, repeats: int, log: Callable
) -> dict[str, Any]:
    """Params, GFLOPs and (with ``repeats``) latency of each model, measured once for all of them, interleaved.

    The measurement is kept in ``state["cost"]`` with the models, size and repeats it was made for; it is reused while
    those stay the same, so a rerun prints the same numbers, and repeated for all models when one is added.
    """
    key = {"labels": list(checkpoints), "imgsz": imgsz, "repeats": repeats}
    cached = state.get("cost")
    if cached and cached.get("key") == key:
        return cached
    rows, machine = {}, None
    if repeats > 0:
        log(f"measuring latency of {len(checkpoints)} trained models at {imgsz} (fused, batch 1, interleaved) ...")
        bench = benchmark_models(
            [str(p) for p in checkpoints.values()], imgsz=imgsz, device=device, batch=1, repeats=repeats
        )
        machine = bench["machine"]
        for label, b in zip(checkpoints, bench["rows"]):
            rows[label] = {k: b[k] for k in ("params", "gflops", "latency_ms", "attention")}
    else:
        for label, path in checkpoints.items():
            s = model_summary(str(path), imgsz)
            rows[label] = {"params": s["params"], "gflops": s["gflops"]}
    state["cost"] = {"key": key, "rows": rows, "machine": machine}
    return state["cost"]


def build_report(
    state: dict[str, Any],
    specs: Sequence[dict[str, Any]],
    out_dir: str | Path,
    baseline: str | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    latency_repeats: int = 20,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Statistics, comparisons and cost of the runs ``specs`` names, all finished in ``state``.

    Args:
        state: The ablation state (its ``cost`` entry is set or reused; the caller saves it).
        specs: The run specs of this report, in order.
        out_dir: The ablation directory.
        baseline: See :func:`choose_baseline`.
        bootstrap: Test-set bootstrap resamples per seed (0 skips it).
        confidence: Confidence level of every interval.
        latency_repeats: Interleaved latency rounds (0: params and GFLOPs only).
        log: Where progress lines go.

    Returns:
        ``{"data", "recipe", "seeds", "baseline", "confidence", "notes", "models": [...], "runs": [...],
        "machine"}``; each model holds its ``metrics`` (describe per metric), ``cost`` and, except the baseline,
        ``vs_baseline`` (paired and bootstrap) and the gains per added GFLOP and millisecond.
    """
    out = Path(out_dir)
    runs = [state["finished"][s["name"]] for s in specs]
    groups = _group(runs)
    kinds = {label: rs[0]["kind"] for label, rs in groups.items()}
    base_label = choose_baseline(list(groups), kinds, baseline)
    recipe = state["recipe"]
    imgsz = int(recipe.get("imgsz", DEFAULT_IMGSZ))
    checkpoints = {label: resolve(out, rs[0]["checkpoint"]) for label, rs in groups.items()}
    cost = measure_cost(state, checkpoints, imgsz, recipe.get("device", "cpu"), latency_repeats, log)
    models = []
    for label, rs in groups.items():
        entry = {
            "label": label,
            "model": rs[0]["model"],
            "kind": rs[0]["kind"],
            "placement": rs[0].get("placement"),
            "seeds": [r["seed"] for r in rs],
            "metrics": {m: describe([metric_value(r, m) for r in rs], confidence) for m in METRICS},
            "cost": cost["rows"][label],
            "settings": rs[0].get("settings") or {},
        }
        if base_label is not None and label != base_label:
            entry["vs_baseline"] = _compare(rs, groups[base_label], out, bootstrap, confidence, log)
            entry.update(_gains(entry, cost["rows"][base_label]))
        models.append(entry)
    notes = {k: interval_note(k, confidence) for k in INTERVAL_NOTES}
    return {
        "data": state["data"],
        "recipe": recipe,
        "seeds": sorted({r["seed"] for r in runs}),
        "baseline": base_label,
        "confidence": confidence,
        "bootstrap_resamples": bootstrap,
        "notes": notes,
        "models": models,
        "runs": runs,
        "machine": cost.get("machine"),
    }


def _gains(entry: dict[str, Any], base_cost: dict[str, Any]) -> dict[str, float | None]:
    """AP gain (percentage points, mean paired difference) per added GFLOP and per added millisecond of latency."""
    gain = entry["vs_baseline"]["paired"]["AP"]["mean"]
    gain = None if gain is None else gain * 100
    d_gflops = entry["cost"]["gflops"] - base_cost["gflops"]
    out = {"ap_gain_pp": gain, "added_gflops": d_gflops, "ap_per_gflop": None, "ap_per_ms": None}
    if gain is not None and d_gflops > 0:
        out["ap_per_gflop"] = gain / d_gflops
    if "latency_ms" in entry["cost"] and "latency_ms" in base_cost:
        d_ms = entry["cost"]["latency_ms"] - base_cost["latency_ms"]
        out["added_ms"] = d_ms
        if gain is not None and d_ms > 0:
            out["ap_per_ms"] = gain / d_ms
    return out


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
