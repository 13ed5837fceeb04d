"""The library behind tools/train.py: :func:`train` and the checks it runs before any work.

The trainer class is :class:`~attnyolo.engine.detection_trainer.AttnDetectionTrainer` (Ultralytics' detection
trainer with row-aligned transfer and atomic writes); ``recipe=`` picks another registered one
(:mod:`attnyolo.engine.recipes`, e.g. YOLOX's own schedule). Classic YOLOv5 models train with YOLOv5's recipe for
every key the user did not set, and AutoAnchor (:mod:`attnyolo.yolov5.recipe`).
"""

from __future__ import annotations

import inspect
import warnings
from contextlib import nullcontext
from pathlib import Path

from ultralytics import YOLO
from ultralytics.utils import LOGGER, RANK
from ultralytics.utils.checks import check_file

from ..data.data_yaml import locate_data_yaml, read_data_yaml, resolve_data_yaml
from ..data.sample import make_sample_dataset
from ..evaluation.validator import validate_model
from ..integration.checkpoints import check_checkpoint_file, checkpoint_label, load_model, screen_checkpoint
from ..integration.names import check_model_source
from ..utils.cli import set_interrupt_advice
from ..utils.paths import runs_dir, sample_data_dir
from ..yolov5 import recipe as yolov5_recipe
from .detection_trainer import AttnDetectionTrainer, switch_yolox_l1  # noqa: F401  (re-exported: their old home)
from .importing import detect_format, import_weights
from .recipes import recipe_settings, recipe_trainer_of  # noqa: F401  (recipe_trainer_of: re-exported)
from .runs import interrupt_advice, latest_interrupted_checkpoint, resumable_epoch

DEFAULT_MODEL = "yolov8n-CoordAtt.yaml"
# The recipe tools/train.py uses when run without arguments: the sample dataset on 2 CPU cores in a few minutes
# (measured numbers in docs/results.md). Every key can be overridden on the command line.
DEFAULT_RECIPE = {
    "epochs": 15,
    "imgsz": 160,
    "batch": 4,
    "nbs": 4,  # one optimizer step per batch: with Ultralytics' nbs=64, 15 short epochs are far too few steps
    "optimizer": "AdamW",
    "lr0": 0.003,
    "warmup_epochs": 1,
    "close_mosaic": 5,
    "val": False,  # per-epoch validation costs a third of the budget; the final epoch and best.pt are validated
    "workers": 0,
    "plots": False,  # plots need a font download; a default run must work offline
}


def base_recipe(data: str | Path, model=None) -> dict:
    """The settings a run on ``data`` starts from.

    :data:`DEFAULT_RECIPE` for the sample dataset, which it is tuned for, with
    :data:`attnyolo.yolov5.recipe.SAMPLE_RECIPE` on top for a classic YOLOv5 ``model``; nothing (Ultralytics'
    defaults, or YOLOv5's for classic models) elsewhere.
    """
    if Path(data).resolve() != (sample_data_dir() / "data.yaml").resolve():
        return {}
    if model is not None and yolov5_recipe.classic_head(model) is not None:
        return {**DEFAULT_RECIPE, **yolov5_recipe.SAMPLE_RECIPE}
    return dict(DEFAULT_RECIPE)


def check_data_source(data: str | Path) -> str:
    """Fail with one line, before any work, if ``data`` is neither a file nor a dataset name Ultralytics resolves.

    ``coco.yaml`` and ``VOC.yaml`` (bare or under ``data/``) are this project's own
    (:func:`attnyolo.data.data_yaml.shipped_data_yaml`); other bare names Ultralytics ships (``coco8.yaml``) and URLs
    resolve as Ultralytics resolves them, so its downloads still work. Returns the local path.
    """
    try:
        # The local path: a URL is fetched once, here, not again by the trainer.
        local = str(check_file(locate_data_yaml(data)))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"data={data} does not exist, and Ultralytics has no dataset of that name. Fix: pass a data YAML (e.g. "
            "data/VOC.yaml), or leave data= out for the sample dataset."
        ) from None
    check_data_splits(local, data)
    return local


def check_data_splits(path: str | Path, data: str | Path | None = None) -> None:
    """Fail with one line, before any work, if the train or val images a data YAML names are missing.

    A YAML with a ``download:`` key is left to Ultralytics, which downloads missing images with it (as for
    ``data/coco.yaml``); Ultralytics would otherwise fail mid-start with a multi-line traceback.

    Args:
        path: The local data YAML.
        data: The value the user gave, for messages (default: ``path``).
    """
    data = data or path
    if read_data_yaml(path, data).get("download"):
        return
    resolved = resolve_data_yaml(path, data)
    train = resolved.get("train")
    missing = [p for p in (train if isinstance(train, list) else [train]) if p and not Path(p).exists()]
    if not train or missing:
        raise FileNotFoundError(
            f"data={data}: the train images {missing[0] if missing else '(none given)'} do not exist. Fix: correct "
            f"'train:' in {path} or add the images."
        )


def ensure_sample_data(data_dir: str | Path | None = None) -> Path:
    """Return the sample dataset's data.yaml (default ``data/sample``), generating the dataset first if needed."""
    data_dir = Path(data_dir) if data_dir is not None else sample_data_dir()
    data_yaml = data_dir / "data.yaml"
    if not data_yaml.exists():
        LOGGER.info(f"Generating the sample dataset in {data_dir} (no download needed)...")
        data_yaml = Path(make_sample_dataset(data_dir))
    return data_yaml


def set_yolov5_loss_keys(yolo, keys: dict, name: str) -> None:
    """Hand YOLOv5 loss keys (``obj``, ``anchor_t``, ``autoanchor``, ...) to the classic model ``yolo`` will train.

    Ultralytics' configuration rejects these keys, so ``attnyolo train`` takes them itself. They go into the model
    dict's ``hyp:`` entry, which the trainer reads (:func:`attnyolo.yolov5.recipe.before_training`) and checkpoints
    keep for ``resume``: into ``yolo.model.yaml`` (the dict a checkpoint's model is rebuilt from) and, through an
    ``on_pretrain_routine_start`` callback, into the trainer, which adds them to a model it builds from a YAML file.

    Raises:
        ValueError: A key for a model without a classic YOLOv5 head, or an unknown or ill-typed value.
    """
    model = yolo.model
    if yolov5_recipe.classic_head(model) is None:
        given = ", ".join(f"{k}={v}" for k, v in keys.items())
        raise ValueError(
            f"{given}: YOLOv5 loss settings apply to classic YOLOv5 models only, and model={name} is not one. Fix: "
            "drop them, or train a classic model (yolov5s-classic.yaml, yolov5s_Coordinate_attention.yaml)."
        )
    hyp = {**(model.yaml.get("hyp") or {}), **keys}
    yolov5_recipe.check_hyp(hyp, "train")
    model.yaml["hyp"] = hyp

    def hand_over(trainer):
        """Give the trainer the keys, for the model its get_model builds."""
        trainer.yolov5_loss_keys = dict(keys)

    yolo.add_callback("on_pretrain_routine_start", hand_over)


def import_foreign_pretrained(pretrained: str | Path, folder: str | Path) -> str | Path:
    """A ``pretrained=`` checkpoint another project wrote (an official YOLOX .pth, ...), converted to ours first.

    Files in a registered format (:mod:`attnyolo.integration.checkpoints.formats`) are converted into
    ``folder/<name>.pt`` (kept, so the run's exact starting weights stay on disk) and that path is returned; anything
    else is returned unchanged.
    """
    path = Path(str(pretrained))
    if not path.is_file() or detect_format(path) is None:
        return pretrained
    out = Path(folder) / f"{path.stem}.pt"
    report = import_weights(path, out)
    if RANK in {-1, 0}:
        LOGGER.info(f"pretrained={path}: {report['format']} checkpoint converted to {out} ({report.get('tensors')})")
    return out


def warn_resume_ignores(last: str | Path, given: dict) -> list[str]:
    """Warn in one line about the settings given with ``resume``, which the resumed run does not use; return them.

    Ultralytics resumes with the arguments saved in the checkpoint (``epochs``, ``lr0``, ... and the data); only
    ``project`` is used, to find the run. ``data``, ``pretrained`` and ``recipe`` at their defaults are not "given".
    """
    signature = inspect.signature(train).parameters
    defaults = {key: signature[key].default for key in ("data", "pretrained", "recipe")}
    ignored = [f"{k}={v}" for k, v in given.items() if k != "project" and (k not in defaults or v != defaults[k])]
    if ignored:
        warnings.warn(
            f"resume ignores {', '.join(ignored)}: a resumed run continues with the settings saved in {last}. Fix: "
            "leave them out, or start a new run (model=<its last.pt> to fine-tune from it) to change them.",
            UserWarning,
            stacklevel=3,
        )
    return ignored


def train(
    model: str = DEFAULT_MODEL,
    data: str | None = None,
    pretrained=None,
    resume=False,
    evaluate=True,
    recipe: str = "ultralytics",
    **kw,
):
    """Train a detector with :class:`AttnDetectionTrainer` and score its best checkpoint with the evaluators.

    Args:
        model: Model YAML (shipped, Ultralytics stock, or a path) or a checkpoint to fine-tune.
        data: Data YAML; None means the offline sample dataset (generated on first use).
        pretrained: A checkpoint whose weights are transferred by aligned rows (e.g. a stock ``yolov8n.pt``).
        resume: True to continue the newest interrupted run under ``project``, or the path of its ``last.pt``. The
            run continues with its saved settings; others given here are named in one warning
            (:func:`warn_resume_ignores`).
        evaluate: Score ``best.pt`` with pycocotools and the VOC protocol afterwards and write ``metrics.json``.
        recipe: ``ultralytics`` (Ultralytics' training recipe), or ``yolox`` / ``yolox-0.3.0`` for YOLOX's own
            schedule (YOLOX models only; :mod:`attnyolo.yolox.recipe`). A resumed run keeps its recipe.
        **kw: Any Ultralytics training setting (epochs, imgsz, batch, device, project, name, ...). These win over
            the sample recipe (:func:`base_recipe`) and every per-model default; the defaults of classic YOLOv5 models
            (the sample recipe's overlay, hyp.scratch-low) apply only to keys not given here.

    Returns:
        ``(metrics, run_dir, transfer)``: metrics is None when ``evaluate`` is False; transfer is the
        :class:`~attnyolo.engine.transfer.TransferReport` of ``pretrained`` weights, or None.
    """
    project = kw.get("project") or runs_dir("train")
    state: dict = {"data": data}  # what the Ctrl-C message looks at: the run's files decide what will work
    set_interrupt_advice(lambda: interrupt_advice(state))
    if resume:
        last = latest_interrupted_checkpoint(project) if resume is True else Path(resume)
        check_checkpoint_file(last, "resume")
        yolo = state["yolo"] = load_model(last, "resume")  # a damaged file fails here, with its own message
        epoch = resumable_epoch(last)
        if epoch is None:
            raise ValueError(
                f"resume={last} is from a finished run (no optimizer state): nothing to resume. Fix: start a new run, "
                "or fine-tune it with model=<its best.pt>."
            )
        which = f" (the newest interrupted run under {project})" if resume is True else ""
        print(f"resuming {last} after epoch {epoch + 1}{which}")
        warn_resume_ignores(last, {"data": data, "pretrained": pretrained, "recipe": recipe, **kw})
        yolo.train(resume=True, trainer=recipe_trainer_of(Path(last).parents[1]))
    else:
        check_model_source(model)
        loss_keys = {k: kw.pop(k) for k in list(kw) if k in yolov5_recipe.LOSS_KEYS}
        # Build the model first: a YAML row that cannot be built fails before the sample dataset is generated.
        with checkpoint_label(f"model={model}"):  # messages about a checkpoint name the argument it came from
            yolo = state["yolo"] = YOLO(model)
        data = check_data_source(data) if data else None
        if pretrained not in (None, True, False):
            pretrained = import_foreign_pretrained(pretrained, Path(project) / "imported")
            check_checkpoint_file(pretrained, "pretrained")
            # The trainer reads it only after making the run folder; a file it would refuse is refused before that.
            screen_checkpoint(pretrained, f"pretrained={pretrained}")
        data = data or str(ensure_sample_data())  # generated once the arguments are known to be good
        state["data"] = data
        settings = {**base_recipe(data, yolo.model), **kw}
        settings["project"] = str(Path(project).resolve())
        if pretrained not in (None, True, False):
            settings["pretrained"] = str(pretrained)
        elif pretrained is not None:
            settings["pretrained"] = pretrained
        if loss_keys:
            set_yolov5_loss_keys(yolo, loss_keys, model)
        trainer_class = AttnDetectionTrainer
        if recipe != "ultralytics":
            settings, trainer_class = recipe_settings(recipe, yolo.model, settings, kw)
        with checkpoint_label(f"pretrained={pretrained}") if isinstance(pretrained, (str, Path)) else nullcontext():
            yolo.train(data=data, trainer=trainer_class, **settings)
    trainer = yolo.trainer
    run_dir = Path(trainer.save_dir)
    # Resuming also rebuilds the model from its checkpoint through get_model; only report a real pretrained transfer.
    transfer = getattr(trainer, "transfer_report", None) if isinstance(pretrained, (str, Path)) else None
    if not evaluate:
        return None, run_dir, transfer

    best = trainer.best if trainer.best.exists() else trainer.last
    val_kw = {k: trainer.args.__dict__[k] for k in ("imgsz", "batch", "device", "workers")}
    # Validate into the training run's own directory, so metrics.json sits beside weights/ as val.py writes it.
    metrics, _ = validate_model(
        str(best), trainer.args.data, project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **val_kw
    )
    return metrics, run_dir, transfer
