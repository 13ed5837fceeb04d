"""The runs of an ablation: the grid as run specs, one function that trains one run, backends that run many.

An ablation is a grid, models x seeds, trained with one recipe. This module is its engine, in three parts that a
distributed backend (e.g. Ray) can reuse as they are:

1. :func:`expand_grid` turns the grid into a list of :class:`RunSpec` (plain, picklable data: the model YAML or name,
   the generated YAML text of a placement variant, the seed, the placement, the run directory name and the training
   settings of the run). The list is in execution order, seed by seed (every model at seed 0 first), so an
   ablation stopped early holds complete seeds to compare.
2. :func:`train_run` trains ONE run into ``<ablation>/runs/<spec.name>`` (or continues it: an interrupted training
   resumes from its ``last.pt``, a run killed between training and scoring is scored) and returns its finished-run
   record (:func:`run_record`: metrics, files, wall time, settings). It is module level, takes and returns plain
   dicts and touches nothing outside its own run directory, so it can run in another process or on another machine
   that sees the ablation directory.
3. A backend (:data:`BACKENDS`; :func:`run_local` is a loop) takes the pending specs, the run function and an
   ``on_finished(spec, record)`` callback, and calls the callback in the driver process as each run finishes. Only
   the driver writes the state file ``ablation_state.json`` (atomically, in that callback), so a kill at any moment
   loses at most the runs in progress, and those continue from their own checkpoints next time.

State file (``ablation_state.json``, version 2): ``{"version", "data", "recipe", "finished": {run name: record},
"cost": ...}``. ``recipe`` is every training setting shared by the runs, without the seed (each run's seed is its
own); ``finished`` maps each finished run's directory name to its record. Paths in records are relative to the
ablation directory, so the directory can be moved. A version-1 state (one seed, runs named after the model) is read
as the runs of its one seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ultralytics.cfg import DEFAULT_CFG_DICT

from ..engine.runs import FINISHED, run_epoch
from ..engine.trainer import base_recipe, train
from ..evaluation.validator import validate_model
from ..utils.atomic import process_alive, write_bytes_atomic, write_json_atomic, write_text_atomic
from .models import model_kind
from .ray_backend import run_ray

STATE_FILE = "ablation_state.json"
LOCK_FILE = "ablation.lock"  # the driver's process id while it runs: one driver per ablation directory
STATE_VERSION = 2
# Settings every ablation fixes unless told otherwise: deterministic training (with one seed per run, two runs of one
# spec train the same model) and no plots (they need a font download). On the sample dataset the ablation starts from
# tools/train.py's sample recipe (attnyolo.engine.trainer.base_recipe), on other data from Ultralytics' defaults.
ABLATION_DEFAULTS = {"deterministic": True, "plots": False}
DEFAULT_SEEDS = (0,)
# Ultralytics settings that do not change what is trained, so a resumed ablation may change them freely.
NOT_RECIPE = {"workers", "device", "plots", "verbose", "exist_ok", "cache"}
# Entries of a run's args.yaml that say which run it is, not how it trained.
_RUN_KEYS = {"model", "data", "project", "name", "save_dir", "resume", "mode", "task", "seed"}
COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
VOC_KEYS = ("mAP50_11point", "mAP50_area")


@dataclass(frozen=True)
class RunSpec:
    """One run of an ablation: one model, one seed, one recipe.

    Attributes:
        label: The model's name in the tables: the YAML stem (``yolov8n-CoordAtt``) or, for a generated placement
            variant, ``<base stem>-<placement>-<kind>`` (``yolov8n-neck-CoordAtt``).
        model: What the trainer builds: a model name or YAML path (``yolov8n-CoordAtt.yaml``), or, with ``yaml``,
            the file name the generated YAML is written under in the run directory.
        seed: The run's seed (Ultralytics ``seed=``).
        name: The run directory's name under ``<ablation>/runs``: ``<label>-seed<seed>``.
        kind: The attention kind, or ``baseline``.
        placement: The placement name of a generated variant (:mod:`attnyolo.analysis.placements`), else None.
        yaml: The generated model YAML's text (written beside the run as ``model``), or None for a named model.
        overrides: The run's training settings: the ablation's recipe and ``seed``.
    """

    label: str
    model: str
    seed: int
    name: str
    kind: str = "baseline"
    placement: str | None = None
    yaml: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a plain dict (what :func:`train_run` takes; JSON- and pickle-safe)."""
        return asdict(self)


def run_name(label: str, seed: int) -> str:
    """Directory name of one run inside the ablation: ``yolov8n-ELA-S-seed0``."""
    return f"{label}-seed{seed}"


def parse_seeds(value: Any, key: str = "seeds") -> list[int]:
    """The seeds a ``seeds=`` value asks for: a count ``3`` means 0, 1, 2; a list ``0,1,2`` means those seeds.

    Raises:
        ValueError: Naming the value and the fix, for a count below 1, a seed that is not a whole number >= 0, or a
            seed given twice.
    """
    if value is None:
        return list(DEFAULT_SEEDS)
    if isinstance(value, bool):
        raise ValueError(f"{key}={value} is not a seed count or list. Fix: {key}=3 (seeds 0, 1, 2) or {key}=0,1,2.")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{key}={value}: a seed count must be 1 or more. Fix: {key}=3 (seeds 0, 1, 2).")
        return list(range(value))
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    seeds = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit():
            raise ValueError(
                f"{key}={value}: {text!r} is not a seed (a whole number >= 0). Fix: {key}=0,1,2, or {key}=3 for 0..2."
            )
        seeds.append(int(text))
    if not seeds:
        raise ValueError(f"{key}={value!r} names no seed. Fix: {key}=3 (seeds 0, 1, 2) or {key}=0,1,2.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{key}={value}: a seed appears twice. Fix: list each seed once.")
    return seeds


def expand_grid(models: Sequence[dict[str, Any]], seeds: Sequence[int], recipe: dict[str, Any]) -> list[RunSpec]:
    """Every model x seed as a :class:`RunSpec`, seed by seed (all models at the first seed, then the next).

    Args:
        models: One dict per model: ``label``, ``model`` and optionally ``kind`` (default: read from the name),
            ``placement`` and ``yaml`` (see :class:`RunSpec`).
        seeds: The seeds (:func:`parse_seeds`).
        recipe: The training settings every run shares (without ``seed``).

    Raises:
        ValueError: Two models with one label (their runs would share directories).
    """
    labels = [m["label"] for m in models]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"models= names the run {', '.join(twice)} twice; each model may appear once.")
    return [
        RunSpec(
            label=m["label"],
            model=str(m["model"]),
            seed=int(seed),
            name=run_name(m["label"], seed),
            kind=m.get("kind") or model_kind(m["model"]),
            placement=m.get("placement"),
            yaml=m.get("yaml"),
            overrides={**recipe, "seed": int(seed)},
        )
        for seed in seeds
        for m in models
    ]


def initial_recipe(data: str | Path, recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe a new ablation records: :data:`ABLATION_DEFAULTS` and the settings given (never ``seed``).

    On the sample dataset these go on top of tools/train.py's sample recipe; elsewhere Ultralytics' own defaults fill
    in everything not given.
    """
    out = {**base_recipe(data), **ABLATION_DEFAULTS, **recipe}
    out.pop("seed", None)
    return out


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


def interrupted_run(run_dir: Path) -> tuple[str, Path] | None:
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


def train_run(spec: dict[str, Any], out_dir: str, data: str, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train (or finish) ONE run of an ablation in ``<out_dir>/runs/<spec["name"]>``; return its record.

    The unit of work a backend distributes: module level and picklable, plain dicts in and out, and it writes only
    inside its own run directory (never the state file). A generated placement YAML (``spec["yaml"]``) is written
    into the run directory first, as ``spec["model"]``, and trained from there, so each run keeps the exact model it
    trained. A run directory left by a killed ablation is continued: :func:`interrupted_run`.

    Args:
        spec: :meth:`RunSpec.to_dict` of the run.
        out_dir: The ablation directory.
        data: The data YAML (absolute path).
        log: Where progress lines go.

    Returns:
        :func:`run_record` of the finished run.
    """
    out = Path(out_dir)
    run_dir = out / "runs" / spec["name"]
    model = spec["model"]
    if spec.get("yaml") is not None:
        model = str(run_dir / Path(spec["model"]).name)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not Path(model).is_file() or Path(model).read_text(encoding="utf-8") != spec["yaml"]:
            write_text_atomic(model, spec["yaml"])
    t0 = time.monotonic()
    left = interrupted_run(run_dir)
    if left is not None and left[0] == "resume":
        log(f"{spec['name']}: continuing the interrupted run from {left[1]}")
        metrics, run_dir, _ = train(resume=str(left[1]))
    elif left is not None:
        log(f"{spec['name']}: training had finished; scoring {left[1]}")
        settings = {k: spec["overrides"][k] for k in ("imgsz", "batch", "device", "workers") if k in spec["overrides"]}
        metrics, _ = validate_model(
            str(left[1]), data, project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **settings
        )
    else:
        metrics, run_dir, _ = train(
            model=model, data=data, project=str(out / "runs"), name=spec["name"], exist_ok=True, **spec["overrides"]
        )
    return run_record(spec, Path(run_dir), out, metrics, time.monotonic() - t0)


Backend = Callable[..., None]


def run_local(
    specs: Iterable[dict[str, Any]],
    run: Callable[[dict[str, Any]], dict[str, Any]],
    on_finished: Callable[[dict[str, Any], dict[str, Any]], Any],
    log: Callable[[str], Any] = print,
    out_dir: str | Path | None = None,
) -> None:
    """The local backend: run the specs one after another in this process, reporting each as it finishes.

    Args:
        specs: Pending runs (:meth:`RunSpec.to_dict`), in order.
        run: The run function, called as ``run(spec)`` (:func:`train_run` with the ablation's arguments bound).
        on_finished: Called as ``on_finished(spec, record)`` after each run; the driver saves the state there.
        log: Where progress lines go.
        out_dir: The ablation directory, which every backend is told (Ray checks that its nodes see it); the runs
            here train in this process, which does.
    """
    specs = list(specs)
    for i, spec in enumerate(specs, 1):
        log(f"[{i}/{len(specs)}] {spec['name']} ({spec['model']}, seed {spec['seed']}): training")
        on_finished(spec, run(spec))


# Backends by name, for ablate's backend= key: each takes (specs, run, on_finished, log, out_dir) as run_local does,
# and its own options (ray: attnyolo.analysis.ray_backend.KEYS) as keywords.
BACKENDS: dict[str, Backend] = {"local": run_local, "ray": run_ray}


def progress_line(done: int, total: int, durations: Sequence[float], started: float) -> str:
    """Counts, elapsed time and an estimate of the time left from the runs finished in this call."""
    elapsed = time.monotonic() - started
    line = f"{done}/{total} runs finished, {elapsed / 60:.1f} min elapsed"
    if durations and done < total:
        line += f", about {sum(durations) / len(durations) * (total - done) / 60:.1f} min left"
    return line
