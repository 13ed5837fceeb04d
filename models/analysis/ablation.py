"""Ablation: several models x several seeds, one recipe, one dataset; is each gain more than noise, and at what cost.

:func:`run_ablation` is the driver behind ``attnyolo ablate``:

1. the models (named YAMLs, and/or a base model with attention kinds at named placements,
   :mod:`attnyolo.analysis.placements`) and the seeds are expanded into run specs
   (:func:`attnyolo.analysis.ablation_runs.expand_grid`);
2. the runs not finished yet are trained by a backend (:data:`attnyolo.analysis.ablation_runs.BACKENDS`; ``local``
   trains them one after another here), each with :func:`attnyolo.analysis.ablation_runs.train_run`: the same
   trainer and evaluators as tools/train.py (pycocotools, the VOC devkit); the state file is rewritten atomically
   after every finished run, so a killed ablation continues where it stopped and adding seeds or models to an
   ablation retrains nothing;
3. the report (:mod:`attnyolo.analysis.ablation_report`): per-model statistics over seeds, the paired comparison
   with the baseline, the test-set bootstrap, cost (params, GFLOPs, latency measured once, interleaved, for all
   models) and the files ``ablation.md``, ``ablation.csv``, ``ablation.json`` and the figures
   (:mod:`attnyolo.analysis.ablation_tables`).

One recipe: every run is given every key of the recorded recipe, and those keys win over any per-model default
(on the sample dataset, a classic YOLOv5 model trains the recipe's 15 epochs, not ``attnyolo train``'s 25). Keys the
recipe leaves unset take each model's own defaults, as in ``attnyolo train``: for classic YOLOv5 models YOLOv5's
hyp.scratch-low (``box=0.05``, ...) and, on the sample dataset, ``mosaic=0.0``
(:data:`attnyolo.yolov5.recipe.SAMPLE_RECIPE`). The state records them per run (``settings``, read from the run's
``args.yaml``) and the table lists them under the recipe.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.trainer import check_data_source, ensure_sample_data
from ..integration.names import check_model_source
from ..utils.atomic import write_text_atomic
from ..utils.paths import runs_dir
from .ablation_report import build_report
from .ablation_runs import (
    ABLATION_DEFAULTS,
    BACKENDS,
    expand_grid,
    initial_recipe,
    parse_seeds,
    progress_line,
    train_run,
)
from .ablation_state import STATE_FILE, STATE_VERSION, check_recipe, driver_lock, load_state, save_state
from .ablation_tables import write_ablation
from .placements import placement_models

__all__ = ["ABLATION_DEFAULTS", "STATE_FILE", "initial_recipe", "load_state", "model_entries", "run_ablation"]


def model_entries(
    models: Sequence[str] = (),
    base: str | None = None,
    kinds: Sequence[str] = (),
    placements: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The ablation's models: each named model, then ``base`` and its generated placement variants.

    Returns:
        Entries for :func:`attnyolo.analysis.ablation_runs.expand_grid` (``label``, ``model`` and, for generated
        variants, ``kind``, ``placement``, ``yaml``). The base is listed once even when ``models`` names it too.
    """
    entries = [{"label": Path(str(m)).stem, "model": str(m)} for m in models]
    if placements:
        if base is None:
            raise ValueError("placements= needs base= (the attention-free model, e.g. base=yolov8n.yaml).")
        labels = {e["label"] for e in entries}
        entries += [e for e in placement_models(base, kinds, placements) if e["label"] not in labels]
    elif base is not None and Path(str(base)).stem not in {e["label"] for e in entries}:
        entries.insert(0, {"label": Path(str(base)).stem, "model": str(base)})
    return entries


def _check_models(entries: Sequence[dict[str, Any]], out: Path) -> None:
    """Build every model once before the first run trains; generated YAMLs are saved under ``out/models`` first."""
    for e in entries:
        if e.get("yaml") is None:
            check_model_source(e["model"], "models", build=True)
            continue
        path = out / "models" / e["model"]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, e["yaml"])
        check_model_source(str(path), "placements", build=True)


def train_ablation(
    entries: Sequence[dict[str, Any]],
    data: str | Path | None = None,
    out_dir: str | Path | None = None,
    seeds: Any = None,
    backend: str = "local",
    log=print,
    backend_options: dict[str, Any] | None = None,
    **recipe: Any,
) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """Train every run of the grid that has not finished yet.

    Args:
        entries: The models (:func:`model_entries`).
        data: Data YAML; None means the sample dataset (generated on first use).
        out_dir: The ablation directory; None means ``runs/ablate/exp``. Reusing it continues that ablation.
        seeds: ``seeds=`` as given (:func:`attnyolo.analysis.ablation_runs.parse_seeds`); None means the recipe's
            ``seed`` if given, else seed 0.
        backend: A name of :data:`attnyolo.analysis.ablation_runs.BACKENDS`.
        log: Where progress lines go.
        backend_options: The backend's own settings (ray: ``address``, ``cpus_per_run``, ``gpus_per_run``,
            ``max_retries``; :func:`attnyolo.analysis.ray_backend.run_ray`).
        **recipe: Ultralytics training settings shared by every run.

    Returns:
        ``(out_dir, state, specs)``: the state holds a record for every spec.

    Raises:
        ValueError: No models, a model twice, bad seeds, an unknown backend, or an ablation directory that holds
            another recipe or dataset.
    """
    if not entries:
        raise ValueError("models= is empty; give two or more model YAMLs, e.g. models=yolov8n.yaml,yolov8n-SE.yaml")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}.")
    seed_list = ablation_seeds(seeds, recipe.pop("seed", None))
    out = Path(out_dir) if out_dir else runs_dir("ablate") / "exp"
    expand_grid(entries, seed_list, {})  # duplicate labels fail before anything is built or written
    out.mkdir(parents=True, exist_ok=True)
    _check_models(entries, out)
    data = str(Path(check_data_source(data)).resolve()) if data else str(ensure_sample_data())
    state = load_state(out)
    if state is None:
        recipe = initial_recipe(data, recipe)
        state = {"version": STATE_VERSION, "data": data, "recipe": recipe, "finished": {}}
    else:  # continuing: unspecified settings are the ablation's own, not the defaults
        recipe = {**state["recipe"], **recipe}
        check_recipe(state, recipe, data, out / STATE_FILE)
        state["recipe"] = recipe
    specs = [s.to_dict() for s in expand_grid(entries, seed_list, recipe)]
    finished = state["finished"]
    for spec in specs:
        if spec["name"] in finished:
            log(f"{spec['name']}: finished earlier, reused")
    pending = [s for s in specs if s["name"] not in finished]
    started, durations, total = time.monotonic(), [], len(specs)

    def on_finished(spec: dict[str, Any], record: dict[str, Any]) -> None:
        finished[spec["name"]] = record
        save_state(out, state)  # a kill after this line loses nothing
        durations.append(record["train_seconds"])
        done = sum(s["name"] in finished for s in specs)
        ap = record["coco"]["AP"]
        log(f"{spec['name']}: AP {ap:.4f}; " + progress_line(done, total, durations, started))

    save_state(out, state)
    run = functools.partial(train_run, out_dir=str(out), data=data, log=log)
    BACKENDS[backend](pending, run, on_finished, log=log, out_dir=str(out), **(backend_options or {}))
    return out, state, specs


def ablation_seeds(seeds: Any, seed: Any = None) -> list[int]:
    """The seeds of an ablation from ``seeds=`` (:func:`attnyolo.analysis.ablation_runs.parse_seeds`) or ``seed=``.

    ``seed=5`` alone is the one seed 5 (a count would be ``seeds=5``); neither given means seed 0.

    Raises:
        ValueError: Both given, or a bad value, naming it and the fix.
    """
    if seeds is not None and seed is not None:
        raise ValueError(f"seed={seed} and seeds={seeds} both given. Fix: give the seeds in seeds= only.")
    return parse_seeds([seed] if seed is not None else seeds, "seeds" if seed is None else "seed")


def check_report_settings(
    entries: Sequence[dict[str, Any]], baseline: str | None, bootstrap: Any, confidence: Any, latency_repeats: Any
) -> None:
    """Refuse bad report settings before anything trains (they are used only once every run has finished).

    Raises:
        ValueError: Naming the value and the fix.
    """
    for key, value in (("bootstrap", bootstrap), ("latency_repeats", latency_repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key}={value!r} must be a whole number >= 0 (0 skips it). Fix: e.g. {key}=1000.")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be a number between 0 and 1. Fix: e.g. confidence=0.95.")
    labels = [e["label"] for e in entries]
    if baseline is not None and Path(str(baseline)).stem not in labels:
        raise ValueError(f"baseline={baseline} is not one of the models ({', '.join(labels)}). Fix: name one of them.")


def run_ablation(
    models: Sequence[str] = (),
    data: str | Path | None = None,
    out_dir: str | Path | None = None,
    seeds: Any = None,
    base: str | None = None,
    kinds: Sequence[str] = (),
    placements: Sequence[str] = (),
    baseline: str | None = None,
    backend: str = "local",
    backend_options: dict[str, Any] | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    latency_repeats: int = 20,
    log=print,
    **recipe: Any,
) -> dict[str, Any]:
    """Train (or reuse) every model x seed with one recipe, then write the statistics, cost and figures.

    Args:
        models: Model YAMLs (or checkpoints to fine-tune), e.g. ``["yolov8n.yaml", "yolov8n-CoordAtt.yaml"]``.
        data: Data YAML; None means the sample dataset (generated on first use).
        out_dir: The ablation directory; None means ``runs/ablate/exp``. Reusing it continues that ablation.
        seeds: A count (``3``: seeds 0, 1, 2) or a list of seeds; None means one seed (the recipe's ``seed``, or 0).
        base: An attention-free model for ``placements`` (``yolov8n.yaml``); it is the baseline row.
        kinds: Attention kinds to place (with ``placements``).
        placements: Placement names (:data:`attnyolo.analysis.placements.PLACEMENTS`).
        baseline: The model the others are compared with (a label or model name); None means the one model without
            attention layers, if there is exactly one.
        backend: How runs are executed: ``local`` (one after another here) or ``ray`` (Ray tasks, several at a time,
            on this machine or a cluster: :mod:`attnyolo.analysis.ray_backend`).
        backend_options: The backend's own settings (ray: ``address``, ``cpus_per_run``, ``gpus_per_run``,
            ``max_retries``).
        bootstrap: Test-set bootstrap resamples (0 skips the bootstrap).
        confidence: Confidence level of every interval.
        latency_repeats: Interleaved timing rounds for the latency column (0 skips latency).
        log: Where progress lines go.
        **recipe: Ultralytics training settings shared by every run (epochs, imgsz, batch, lr0, ...), on top of
            :data:`ABLATION_DEFAULTS` (and, on the sample dataset, tools/train.py's sample recipe).

    Returns:
        The report (:func:`attnyolo.analysis.ablation_report.build_report`) with ``files``: the paths written.
    """
    entries = model_entries(models, base, kinds, placements)
    check_report_settings(entries, baseline, bootstrap, confidence, latency_repeats)
    ablation_seeds(seeds, recipe.get("seed"))  # bad seeds fail before the ablation directory is made
    out = Path(out_dir) if out_dir else runs_dir("ablate") / "exp"
    out.mkdir(parents=True, exist_ok=True)
    with driver_lock(out):  # one driver per ablation directory: only it trains runs and writes the state
        out, state, specs = train_ablation(entries, data, out, seeds, backend, log, backend_options, **recipe)
        result = build_report(
            state,
            specs,
            out,
            baseline=baseline,
            bootstrap=bootstrap,
            confidence=confidence,
            latency_repeats=latency_repeats,
            log=log,
        )
        save_state(out, state)  # keeps the cost measurement, so a rerun prints the same report
        result["files"] = {k: str(v) for k, v in write_ablation(result, out).items()}
    return result
