"""The report of an ablation: statistics over seeds, paired and bootstrap comparisons, and cost.

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

The files (``ablation.md``, ``ablation.csv``, ``ablation.json``, figures) are written by
:mod:`attnyolo.analysis.ablation_tables`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .ablation_state import resolve
from .bootstrap import bootstrap_difference
from .models import benchmark_models
from .statistics import INTERVAL_NOTES, describe, interval_note, paired_difference
from .summary import model_summary

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
