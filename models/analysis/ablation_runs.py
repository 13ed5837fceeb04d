"""The runs of an ablation: the grid as run specs, one function that trains one run, backends that run many.

An ablation is a grid, models x seeds, trained with one recipe. This module is its engine, in three parts that a
distributed backend (e.g. Ray) can reuse as they are:

1. :func:`expand_grid` turns the grid into a list of :class:`RunSpec` (plain, picklable data: the model YAML or name,
   the generated YAML text of a placement variant, the seed, the placement, the run directory name and the training
   settings of the run). The list is in execution order, seed by seed (every model at seed 0 first), so an
   ablation stopped early holds complete seeds to compare.
2. :func:`train_run` trains ONE run into ``<ablation>/runs/<spec.name>`` (or continues it: an interrupted training
   resumes from its ``last.pt``, a run killed between training and scoring is scored) and returns its finished-run
   record (:func:`~attnyolo.analysis.ablation_state.run_record`: metrics, files, wall time, settings). It is module
   level, takes and returns plain dicts and touches nothing outside its own run directory, so it can run in another
   process or on another machine that sees the ablation directory.
3. A backend (:data:`BACKENDS`; :func:`run_local` is a loop) takes the pending specs, the run function and an
   ``on_finished(spec, record)`` callback, and calls the callback in the driver process as each run finishes. Only
   the driver writes the state file ``ablation_state.json`` (atomically, in that callback), so a kill at any moment
   loses at most the runs in progress, and those continue from their own checkpoints next time.

The state file, the driver's lock and the run records are :mod:`attnyolo.analysis.ablation_state`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.runs import FINISHED, run_epoch
from ..engine.trainer import base_recipe, train
from ..evaluation.validator import validate_model
from ..utils.atomic import write_text_atomic
from .ablation_state import run_name, run_record
from .models import model_kind
from .ray_backend import run_ray

# Settings every ablation fixes unless told otherwise: deterministic training (with one seed per run, two runs of one
# spec train the same model) and no plots (they need a font download). On the sample dataset the ablation starts from
# tools/train.py's sample recipe (attnyolo.engine.trainer.base_recipe), on other data from Ultralytics' defaults.
ABLATION_DEFAULTS = {"deterministic": True, "plots": False}
DEFAULT_SEEDS = (0,)


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
