"""Ablation runner: several model YAMLs, one recipe, one seed, one dataset, compared the way the papers compare.

Every model is trained with :func:`attnyolo.engine.trainer.train` (the same trainer and evaluator as tools/train.py)
and scored with pycocotools and the VOC devkit. The comparison is a table (COCO AP, AP50, AP75, APs/m/l, VOC mAP50,
params, GFLOPs, CPU latency) and a figure in the manner of the CA paper's Figure 1: AP against parameters and against
latency, one point per attention kind.

Resumability: the ablation directory holds ``ablation_state.json``, rewritten atomically after every finished run,
listing the finished runs with their metrics and the recipe they were trained with. Running the same command again
skips the finished runs; a run that was killed mid-training continues from its own ``last.pt`` (Ultralytics resume)
when that checkpoint can be resumed, and starts over otherwise. Latency is measured at the end of every invocation
for all trained models together, in one interleaved run (:func:`attnyolo.analysis.models.benchmark_models`), so the
numbers in one table come from one machine state.

One recipe: every run is given every key of the recorded recipe, and those keys win over any per-model default
(on the sample dataset, a classic YOLOv5 model trains the recipe's 15 epochs, not ``attnyolo train``'s 25). Keys the
recipe leaves unset take each model's own defaults, as in ``attnyolo train``: for classic YOLOv5 models YOLOv5's
hyp.scratch-low (``box=0.05``, ...) and, on the sample dataset, ``mosaic=0.0``
(:data:`attnyolo.yolov5.recipe.SAMPLE_RECIPE`). The state records them per run (``settings``, read from the run's
``args.yaml``) and the table lists them under the recipe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from ultralytics.cfg import DEFAULT_CFG_DICT

from ..engine.runs import FINISHED, run_epoch
from ..engine.trainer import base_recipe, check_data_source, ensure_sample_data, train
from ..evaluation.validator import validate_model
from ..integration.names import check_model_source
from ..utils.atomic import write_json_atomic, write_text_atomic
from ..utils.paths import runs_dir
from .models import benchmark_models, model_kind
from .report import save_figure, write_csv
from .summary import model_summary
from .timing import machine_line

STATE_FILE = "ablation_state.json"
RESULTS_FILE = "ablation.json"
# Settings every ablation fixes unless told otherwise: one seed, deterministic training, no plots (they need a font
# download). On the sample dataset the ablation starts from tools/train.py's sample recipe
# (attnyolo.engine.trainer.base_recipe), on other data from Ultralytics' defaults; any Ultralytics training setting
# given on top applies to every run.
ABLATION_DEFAULTS = {"seed": 0, "deterministic": True, "plots": False}
DEFAULT_IMGSZ = 640  # Ultralytics' default input size, for the latency column when imgsz= is not given
# Ultralytics settings that do not change what is trained, so a resumed ablation may change them freely.
_NOT_RECIPE = {"workers", "device", "plots", "verbose", "exist_ok", "cache"}
# Entries of a run's args.yaml that say which run it is, not how it trained.
_RUN_KEYS = {"model", "data", "project", "name", "save_dir", "resume", "mode", "task"}
COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def run_name(model: str) -> str:
    """Directory name of a model's run inside the ablation: its file stem (``yolov8n-ELA-S``)."""
    return Path(str(model)).stem


def load_state(out_dir: str | Path) -> dict[str, Any] | None:
    """The ablation state of ``out_dir``, or None if there is none yet."""
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}). Fix: delete it to start the ablation over.") from None


def _check_recipe(state: dict[str, Any], recipe: dict[str, Any], data: str, path: Path) -> None:
    """Refuse to mix runs trained with different recipes or data into one table."""
    if state.get("data") != data:
        raise ValueError(
            f"{path} belongs to an ablation on data={state.get('data')}, not {data}. "
            "Fix: give the same data= or another name= for a new ablation."
        )
    old = {k: v for k, v in state.get("recipe", {}).items() if k not in _NOT_RECIPE}
    new = {k: v for k, v in recipe.items() if k not in _NOT_RECIPE}
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ValueError(
            f"{path} was trained with another recipe ({detail}). One ablation compares models under one recipe. "
            "Fix: repeat the original settings, or give another name= for a new ablation."
        )


def _interrupted_run(run_dir: Path) -> tuple[str, Path] | None:
    """What a run directory left by a killed ablation still needs.

    Returns:
        ``("resume", last.pt)`` when Ultralytics can continue the training, ``("evaluate", best.pt)`` when training
        finished (Ultralytics strips the optimizer from its final checkpoints) but the ablation was killed before
        recording the scores, or None when the run has to start over.
    """
    last, best = run_dir / "weights" / "last.pt", run_dir / "weights" / "best.pt"
    if not last.is_file():
        return None
    epoch = run_epoch(last)  # read without running code: the folder may hold files someone else put there
    if epoch is None:  # a damaged or refused checkpoint means starting this run over, not failing the ablation
        return None
    if epoch != FINISHED:
        return "resume", last
    return ("evaluate", best) if best.is_file() else None


def model_settings(run_dir: str | Path, recipe: dict[str, Any]) -> dict[str, Any]:
    """The settings a run trained with that the ablation's recipe leaves open: its model's own defaults.

    Read from the run's ``args.yaml`` (the arguments it trained with; the trainer rewrites it after applying YOLOv5's
    defaults to a classic model): every key outside the recipe whose value is not Ultralytics' default, e.g.
    ``{"box": 0.05, "mosaic": 0.0, ...}`` for a classic YOLOv5 model on the sample dataset, ``{}`` for the others.

    Args:
        run_dir: The run's directory.
        recipe: The ablation's recipe.

    Returns:
        Those settings, sorted by key; ``{}`` when the run has no ``args.yaml``.
    """
    path = Path(run_dir) / "args.yaml"
    if not path.is_file():
        return {}
    args = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    skip = set(recipe) | _NOT_RECIPE | _RUN_KEYS
    return {
        k: v for k, v in sorted(args.items()) if k not in skip and k in DEFAULT_CFG_DICT and DEFAULT_CFG_DICT[k] != v
    }


def _progress(i: int, total: int, model: str, done: int, durations: Sequence[float], started: float) -> str:
    """One progress line: position, counts, elapsed time and an estimate from the runs finished in this call."""
    elapsed = time.monotonic() - started
    line = f"[{i}/{total}] {model}: {done} finished, {total - done} to go, {elapsed / 60:.1f} min elapsed"
    if durations:
        line += f", about {sum(durations) / len(durations) * (total - done) / 60:.1f} min left"
    return line


def initial_recipe(data: str | Path, recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe a new ablation records: :data:`ABLATION_DEFAULTS` and the settings given.

    On the sample dataset these go on top of tools/train.py's sample recipe; elsewhere Ultralytics' own defaults fill
    in everything not given.
    """
    return {**base_recipe(data), **ABLATION_DEFAULTS, **recipe}


def run_ablation(
    models: Sequence[str],
    data: str | Path | None = None,
    out_dir: str | Path | None = None,
    latency_repeats: int = 20,
    log=print,
    **recipe: Any,
) -> dict[str, Any]:
    """Train and evaluate each model with one recipe, skipping finished runs, then write the comparison.

    Args:
        models: Model YAMLs (or checkpoints to fine-tune), e.g. ``["yolov8n.yaml", "yolov8n-CoordAtt.yaml"]``.
        data: Data YAML; None means the sample dataset (generated on first use).
        out_dir: The ablation directory; None means ``runs/ablate/exp``. Reusing it continues that ablation.
        latency_repeats: Interleaved timing rounds for the latency column (0 skips latency).
        log: Where progress lines go.
        **recipe: Ultralytics training settings shared by every run (epochs, imgsz, batch, seed, lr0, ...), on top
            of :data:`ABLATION_DEFAULTS` (and, on the sample dataset, tools/train.py's sample recipe). Every run gets
            all of them; keys left unset take each model's own defaults (classic YOLOv5: hyp.scratch-low and, on the
            sample dataset, ``mosaic=0.0``), recorded per row as ``settings`` (:func:`model_settings`).

    Returns:
        ``{"rows", "recipe", "data", "machine", "files"}``: one row per model in the order given.

    Raises:
        ValueError: No models, duplicate models, or an ablation directory that holds another recipe or dataset.
    """
    models = [str(m) for m in models]
    if not models:
        raise ValueError("models= is empty; give two or more model YAMLs, e.g. models=yolov8n.yaml,yolov8n-SE.yaml")
    names = [run_name(m) for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"models= names one run twice ({', '.join(models)}); each model may appear once.")
    for m in models:  # every name checked before the first run trains, not when its turn comes
        check_model_source(m, "models", build=True)
    data = str(Path(check_data_source(data)).resolve()) if data else str(ensure_sample_data())
    out = Path(out_dir) if out_dir else runs_dir("ablate") / "exp"
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = load_state(out)
    if state is None:
        recipe = initial_recipe(data, recipe)
        state = {"data": data, "recipe": recipe, "finished": {}}
    else:  # continuing: unspecified settings are the ablation's own, not the defaults
        recipe = {**state["recipe"], **recipe}
        _check_recipe(state, recipe, data, state_path)
        state["recipe"] = recipe

    started, durations = time.monotonic(), []
    for i, (model, name) in enumerate(zip(models, names), 1):
        done = sum(n in state["finished"] for n in names)
        if name in state["finished"]:
            log(f"[{i}/{len(models)}] {model}: finished earlier, skipped")
            continue
        log(_progress(i, len(models), model, done, durations, started))
        t0 = time.monotonic()
        left = _interrupted_run(out / "runs" / name)
        if left is not None and left[0] == "resume":
            log(f"[{i}/{len(models)}] {model}: continuing the interrupted run from {left[1]}")
            metrics, run_dir, _ = train(resume=str(left[1]))
        elif left is not None:
            log(f"[{i}/{len(models)}] {model}: training had finished; scoring {left[1]}")
            run_dir = left[1].parents[1]
            settings = {k: recipe[k] for k in ("imgsz", "batch", "device", "workers") if k in recipe}
            metrics, _ = validate_model(
                str(left[1]), data, project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **settings
            )
        else:
            metrics, run_dir, _ = train(
                model=model, data=data, project=str(out / "runs"), name=name, exist_ok=True, **recipe
            )
        durations.append(time.monotonic() - t0)
        best = run_dir / "weights" / "best.pt"
        state["finished"][name] = {
            "model": model,
            "run_dir": str(run_dir),
            "checkpoint": str(best if best.is_file() else run_dir / "weights" / "last.pt"),
            "coco": {k: metrics["coco"].get(k) for k in (*COLUMNS, "AR100")},
            "voc": {k: metrics.get("voc", {}).get(k) for k in ("mAP50_11point", "mAP50_area")},
            "train_seconds": round(durations[-1], 1),
            "settings": model_settings(run_dir, recipe),
        }
        write_json_atomic(state_path, state)  # a kill after this line loses nothing
        log(f"[{i}/{len(models)}] {model}: AP {metrics['coco']['AP']:.4f}, run {run_dir}")

    rows = [{"model": m, "kind": model_kind(m), **state["finished"][n]} for m, n in zip(models, names)]
    machine = None
    checkpoints = [r["checkpoint"] for r in rows]
    imgsz = int(recipe.get("imgsz", DEFAULT_IMGSZ))
    if latency_repeats > 0:
        log(f"measuring latency of {len(rows)} trained models at {imgsz} (fused, batch 1) ...")
        bench = benchmark_models(
            checkpoints,
            imgsz=imgsz,
            device=recipe.get("device", "cpu"),
            batch=1,
            repeats=latency_repeats,
        )
        machine = bench["machine"]
        for row, b in zip(rows, bench["rows"]):
            row.update({k: b[k] for k in ("params", "gflops", "latency_ms", "overhead", "attention")})
    else:
        for row in rows:
            s = model_summary(row["checkpoint"], imgsz)
            row.update({"params": s["params"], "gflops": s["gflops"]})
    result = {"rows": rows, "recipe": state["recipe"], "data": data, "machine": machine}
    result["files"] = {k: str(v) for k, v in write_ablation(result, out).items()}
    return result


def _fmt(value: Any, scale: float = 100.0) -> str:
    """AP as a percentage with one decimal, or '-' where COCOeval found no objects of that size."""
    return "-" if value is None or value < 0 else f"{value * scale:.1f}"


def format_ablation_table(result: dict[str, Any]) -> str:
    """Markdown table of :func:`run_ablation`: COCO AP columns (%), VOC mAP50 (%), params, GFLOPs, latency."""
    recipe = result["recipe"]
    has_latency = all("latency_ms" in r for r in result["rows"])
    head = "| model | AP | AP50 | AP75 | APs | APm | APl | VOC07 mAP50 | params | GFLOPs |"
    rule = "|---|" + "---:|" * 9
    if has_latency:
        head += " latency ms (ratio) |"
        rule += "---:|"
    shown = ", ".join(f"{k}={v}" for k, v in recipe.items() if k not in _NOT_RECIPE)
    lines = [
        f"Data: {result['data']}; recipe: {shown}. COCO AP by pycocotools, VOC mAP50 by the devkit (11-point, "
        "difficult ignored), in %; GFLOPs and latency at the training size, fused, batch 1.",
        "",
        head,
        rule,
    ]
    for r in result["rows"]:
        cells = [_fmt(r["coco"].get(k)) for k in COLUMNS] + [_fmt(r["voc"].get("mAP50_11point"))]
        line = f"| {r['model']} | " + " | ".join(cells) + f" | {r['params'] / 1e6:.3f}M | {r['gflops']:.2f} |"
        if has_latency:
            line += f" {r['latency_ms']:.2f} ({r['overhead']:.3f}×) |"
        lines.append(line)
    own = [(r["model"], r.get("settings")) for r in result["rows"] if r.get("settings")]
    if own:
        lines += ["", "Settings the recipe leaves open, where a model's own defaults differ from Ultralytics':"]
        lines += [f"- {model}: {', '.join(f'{k}={v}' for k, v in settings.items())}" for model, settings in own]
    if result.get("machine"):
        lines += ["", f"Latency machine: {machine_line(result['machine'])}."]
    return "\n".join(lines)


def plot_ablation(result: dict[str, Any], path: str | Path) -> Path:
    """The papers' Figure 1 for this ablation: COCO AP against parameters and, if measured, against latency."""
    import matplotlib  # heavy, and only plots need it: imported when one is drawn

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt  # after choosing the backend, as matplotlib requires

    rows = result["rows"]
    panels = [("params", "parameters (M)", 1e-6)]
    if all("latency_ms" in r for r in rows):
        panels.append(("latency_ms", "CPU latency, batch 1 (ms)", 1.0))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (key, label, scale) in zip(axes[0], panels):
        for r in rows:
            ap = (r["coco"].get("AP") or 0.0) * 100
            base = r["kind"] == "baseline"
            ax.scatter(r[key] * scale, ap, marker="s" if base else "o", s=50, color="0.4" if base else "tab:blue")
            ax.annotate(r["kind"], (r[key] * scale, ap), xytext=(4, 4), textcoords="offset points", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("COCO AP (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{Path(result['data']).parent.name}: AP vs cost per attention kind", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_ablation(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``ablation.md``, ``ablation.csv``, ``ablation.png`` and ``ablation.json`` into ``out_dir``."""
    out = Path(out_dir)
    files = {"md": out / "ablation.md", "csv": out / "ablation.csv", "png": out / "ablation.png"}
    write_text_atomic(files["md"], format_ablation_table(result) + "\n")
    fields = ["model", "kind", *COLUMNS, "VOC07_mAP50", "params", "gflops", "latency_ms", "overhead", "run_dir"]
    rows = [{**r, **r["coco"], "VOC07_mAP50": r["voc"].get("mAP50_11point")} for r in result["rows"]]
    write_csv(files["csv"], rows, fields)
    plot_ablation(result, files["png"])
    files["json"] = out / RESULTS_FILE
    write_json_atomic(files["json"], {k: v for k, v in result.items() if k != "files"})
    return files
