"""The files of an ablation directory: the state file, the driver's lock, and the finished-run records it keeps.

State file (``ablation_state.json``, version 2): ``{"version", "data", "recipe", "finished": {run name: record},
"cost": ...}``. ``recipe`` is every training setting shared by the runs, without the seed (each run's seed is its
own); ``finished`` maps each finished run's directory name to its record (:func:`run_record`). Paths in records are
relative to the ablation directory, so the directory can be moved. A version-1 state (one seed, runs named after the
model) is read as the runs of its one seed.

Only the driver writes the state file (:func:`save_state`, atomically) and only while it holds the lock
(:func:`driver_lock`); the runs themselves (:mod:`attnyolo.analysis.ablation_runs`) return their records to it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from ultralytics.cfg import DEFAULT_CFG_DICT

from ..utils.atomic import process_alive, write_bytes_atomic, write_json_atomic
from .models import model_kind

STATE_FILE = "ablation_state.json"
LOCK_FILE = "ablation.lock"  # the driver's process id while it runs: one driver per ablation directory
STATE_VERSION = 2
# Ultralytics settings that do not change what is trained, so a resumed ablation may change them freely.
NOT_RECIPE = {"workers", "device", "plots", "verbose", "exist_ok", "cache"}
# Entries of a run's args.yaml that say which run it is, not how it trained.
_RUN_KEYS = {"model", "data", "project", "name", "save_dir", "resume", "mode", "task", "seed"}
COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
VOC_KEYS = ("mAP50_11point", "mAP50_area")


def run_name(label: str, seed: int) -> str:
    """Directory name of one run inside the ablation: ``yolov8n-ELA-S-seed0``."""
    return f"{label}-seed{seed}"


def load_state(out_dir: str | Path) -> dict[str, Any] | None:
    """The ablation state of ``out_dir`` (version 2; a version-1 state is converted), or None if there is none yet.

    Raises:
        ValueError: The file is not valid JSON, naming it and the fix.
    """
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}). Fix: delete it to start the ablation over.") from None
    return state if state.get("version") == STATE_VERSION else _from_version_1(state, Path(out_dir))


def _from_version_1(state: dict[str, Any], out: Path) -> dict[str, Any]:
    """A version-1 state (one seed in the recipe, runs named after the model stem) as version 2."""
    recipe = dict(state.get("recipe", {}))
    seed = int(recipe.pop("seed", 0))
    finished = {}
    for label, record in state.get("finished", {}).items():
        run_dir = Path(record["run_dir"])
        finished[run_name(label, seed)] = {
            **record,
            "name": run_name(label, seed),
            "label": label,
            "kind": model_kind(record["model"]),
            "placement": None,
            "seed": seed,
            "run_dir": _relative(run_dir, out),
            "checkpoint": _relative(Path(record["checkpoint"]), out),
            **_run_files(run_dir, out),
        }
    return {"version": STATE_VERSION, "data": state.get("data"), "recipe": recipe, "finished": finished}


def save_state(out_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write the state atomically (the driver's job alone: run functions never write it)."""
    return write_json_atomic(Path(out_dir) / STATE_FILE, state)


@contextlib.contextmanager
def driver_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold ``ablation.lock`` while this process drives the ablation in ``out_dir``.

    Two drivers on one directory would train the same runs twice and overwrite each other's state. A lock left by a
    process that no longer runs (a killed ablation) is taken over.

    Raises:
        ValueError: Another live process holds the lock, naming it and the fix.
    """
    path = Path(out_dir) / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            text = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
            pid = int(text) if text.isdigit() else None
            if pid is not None and pid != os.getpid() and process_alive(pid):
                raise ValueError(
                    f"{path}: another ablate (process {pid}) is running on this ablation directory. Fix: wait for "
                    "it to finish, or give another name= for a separate ablation."
                ) from None
            path.unlink(missing_ok=True)  # left by a killed driver
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def check_recipe(state: dict[str, Any], recipe: dict[str, Any], data: str, path: Path) -> None:
    """Refuse to mix runs trained with different recipes or data into one table.

    Raises:
        ValueError: Naming the state file, the settings that differ and the fix.
    """
    if state.get("data") != data:
        raise ValueError(
            f"{path} belongs to an ablation on data={state.get('data')}, not {data}. "
            "Fix: give the same data= or another name= for a new ablation."
        )
    old = {k: v for k, v in state.get("recipe", {}).items() if k not in NOT_RECIPE}
    new = {k: v for k, v in recipe.items() if k not in NOT_RECIPE}
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ValueError(
            f"{path} was trained with another recipe ({detail}). One ablation compares models under one recipe. "
            "Fix: repeat the original settings, or give another name= for a new ablation."
        )


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
    skip = set(recipe) | NOT_RECIPE | _RUN_KEYS
    return {
        k: v for k, v in sorted(args.items()) if k not in skip and k in DEFAULT_CFG_DICT and DEFAULT_CFG_DICT[k] != v
    }


def _relative(path: Path, out: Path) -> str:
    """``path`` relative to the ablation directory when inside it (POSIX text), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve(out_dir: str | Path, path: str | None) -> Path | None:
    """A path of a record as a usable path: relative ones are taken from the ablation directory."""
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else Path(out_dir) / p


def _run_files(run_dir: Path, out: Path) -> dict[str, str | None]:
    """What the test-set bootstrap needs of a run: its COCO results JSON and the COCO ground truth they were scored on.

    The validator writes ``predictions.json`` (the detections of ``best.pt`` on the val split, COCO results format)
    and ``metrics.json`` into the run directory; the ground truth is the ``ground_truth.json`` built from YOLO labels
    beside them, or the dataset's own COCO annotation file that ``metrics.json`` names. That file is copied into the
    run directory as ``ground_truth.json``, so a dataset regenerated or moved later cannot pair these detections with
    other annotations.
    """
    predictions = run_dir / "predictions.json"
    ground_truth = None
    metrics = run_dir / "metrics.json"
    kept = run_dir / "ground_truth.json"
    if metrics.is_file():
        gt = json.loads(metrics.read_text(encoding="utf-8")).get("ground_truth", {})
        ground_truth = gt.get("coco_file") or gt.get("coco")
    if ground_truth and Path(ground_truth).is_file() and not kept.is_file():
        write_bytes_atomic(kept, Path(ground_truth).read_bytes())
    if kept.is_file():
        ground_truth = str(kept)
    return {
        "predictions": _relative(predictions, out) if predictions.is_file() else None,
        "ground_truth": _relative(Path(ground_truth), out) if ground_truth and Path(ground_truth).is_file() else None,
    }


def run_record(spec: dict[str, Any], run_dir: Path, out: Path, metrics: dict[str, Any], seconds: float) -> dict:
    """The finished-run record the state keeps: which run, its metrics, its files, its wall time and settings."""
    best = run_dir / "weights" / "best.pt"
    return {
        "name": spec["name"],
        "label": spec["label"],
        "model": spec["model"],
        "kind": spec["kind"],
        "placement": spec["placement"],
        "seed": spec["seed"],
        "run_dir": _relative(run_dir, out),
        "checkpoint": _relative(best if best.is_file() else run_dir / "weights" / "last.pt", out),
        **_run_files(run_dir, out),
        "coco": {k: metrics["coco"].get(k) for k in COCO_KEYS},
        "voc": {k: metrics.get("voc", {}).get(k) for k in VOC_KEYS},
        "train_seconds": round(seconds, 1),
        "settings": model_settings(run_dir, {k: v for k, v in spec["overrides"].items() if k != "seed"}),
    }
