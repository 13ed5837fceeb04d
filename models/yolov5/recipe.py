"""YOLOv5's training recipe for classic (anchor-based) models trained by Ultralytics' trainer.

Facts restated from github.com/ultralytics/yolov5 at tag v7.0 (commit 915bbf294bb74c859f0b41f1c23bc395014ea679):
``data/hyps/hyp.scratch-low.yaml`` (the default of ``train.py``) and ``train.py``'s scaling of the loss gains after
AutoAnchor: ``box *= 3 / nl``, ``cls *= nc / 80 * 3 / nl``, ``obj *= (imgsz / 640) ** 2 * 3 / nl``.

Three groups of settings:

* :data:`ULTRALYTICS_DEFAULTS`: hyp.scratch-low values of keys Ultralytics' trainer also has (optimizer, learning
  rate, warmup, augmentation). A classic model trained with :class:`attnyolo.engine.trainer.AttnDetectionTrainer`
  gets them for every key the user did not set (:func:`apply_defaults`).
* :data:`LOSS_KEYS`: keys only the YOLOv5 loss and AutoAnchor read (``obj``, ``anchor_t``, ...). Ultralytics' config
  rejects them, so ``attnyolo train`` accepts them itself and writes them into the model dict's ``hyp:`` entry, which
  a model YAML may also carry.
* the gains: ``box`` and ``cls`` come from the trainer's arguments (hyp.scratch-low's 0.05 and 0.5 unless set),
  ``obj`` from ``hyp:``; all three are scaled as train.py scales them (:func:`loss_hyp`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from torch import nn
from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER
from ultralytics.utils import RANK, YAML
from ultralytics.utils.torch_utils import unwrap_model

from ..integration.datasets import training_labels
from ..utils.atomic import atomic_path
from .autoanchor import check_anchors
from .head import YOLOv5Detect

# hyp.scratch-low values of keys Ultralytics' trainer shares with YOLOv5.
ULTRALYTICS_DEFAULTS: dict[str, Any] = {
    "optimizer": "SGD",
    "lr0": 0.01,
    "lrf": 0.01,
    "momentum": 0.937,
    "weight_decay": 0.0005,
    "warmup_epochs": 3.0,
    "warmup_momentum": 0.8,
    "warmup_bias_lr": 0.1,
    "box": 0.05,
    "cls": 0.5,
    "hsv_h": 0.015,
    "hsv_s": 0.7,
    "hsv_v": 0.4,
    "degrees": 0.0,
    "translate": 0.1,
    "scale": 0.5,
    "shear": 0.0,
    "perspective": 0.0,
    "flipud": 0.0,
    "fliplr": 0.5,
    "mosaic": 1.0,
    "mixup": 0.0,
    "copy_paste": 0.0,
    "close_mosaic": 0,  # YOLOv5 trains with mosaic to the end
    "cls_pw": 0.0,  # Ultralytics' class-weight power (a different meaning from YOLOv5's cls_pw): off, as in YOLOv5
}

# Keys only the YOLOv5 loss and AutoAnchor read, with their hyp.scratch-low defaults. ``cls_pw``/``obj_pw`` are
# YOLOv5's BCE positive weights (Ultralytics' own ``cls_pw`` key means something else, so on the command line
# YOLOv5's class weight is ``cls_pos_weight``); ``autoanchor`` is train.py's --noautoanchor switch inverted.
LOSS_KEYS: dict[str, Any] = {
    "obj": 1.0,
    "obj_pw": 1.0,
    "cls_pos_weight": 1.0,
    "anchor_t": 4.0,
    "fl_gamma": 0.0,
    "label_smoothing": 0.0,
    "autoanchor": True,
}

# On the offline sample dataset, classic models start from the sample recipe (attnyolo.engine.trainer.DEFAULT_RECIPE,
# tuned for that tiny dataset: AdamW, 15 epochs at 160 px, ...) with these changes on top. Classic YOLOv5 learns more
# slowly there than the anchor-free heads; on 2 CPU cores (measured, docs/yolov5.md) 15 epochs gave COCO AP50 0.31,
# without mosaic 0.40 (mosaic at 160 px shrinks the shapes to a few pixels), 20 epochs without mosaic 0.48,
# 25 epochs 0.47-0.54 (it moved between code versions of one day: too close to 0.5) and 30 epochs 0.60 (seed 0)
# and 0.61 (seed 1), in 3-3.5 minutes.
SAMPLE_RECIPE: dict[str, Any] = {"epochs": 30, "mosaic": 0.0}

# The loss's hyperparameters before train.py's scaling (what the loss uses outside a trainer): hyp.scratch-low's gains
# and loss keys, under the names YOLOv5Loss reads (YOLOv5's `cls_pw` is `cls_pos_weight` here, see LOSS_KEYS).
SCRATCH_LOW_LOSS: dict[str, float] = {
    "box": ULTRALYTICS_DEFAULTS["box"],
    "obj": LOSS_KEYS["obj"],
    "cls": ULTRALYTICS_DEFAULTS["cls"],
    "cls_pw": LOSS_KEYS["cls_pos_weight"],
    **{key: LOSS_KEYS[key] for key in ("obj_pw", "anchor_t", "fl_gamma", "label_smoothing")},
}


def check_hyp(hyp: dict | None, source: str) -> dict:
    """Validate a ``hyp:`` dict (keys of :data:`LOSS_KEYS`); return it merged over the defaults.

    Raises:
        ValueError: An unknown key or a value of the wrong type, naming ``source``, the key and the fix.
    """
    hyp = dict(hyp or {})
    for key, value in hyp.items():
        if key not in LOSS_KEYS:
            close = difflib.get_close_matches(str(key), list(LOSS_KEYS), n=2, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"{source}: unknown YOLOv5 loss key {key!r}.{hint} Known keys: {', '.join(LOSS_KEYS)} (Ultralytics "
                "training keys such as lr0 or box are set as training arguments instead)."
            )
        default = LOSS_KEYS[key]
        ok = isinstance(value, bool) if isinstance(default, bool) else isinstance(value, (int, float))
        if not ok or (not isinstance(default, bool) and (isinstance(value, bool) or value < 0)):
            kind = "true or false" if isinstance(default, bool) else "a number >= 0"
            raise ValueError(f"{source}: {key}={value!r} must be {kind} (YOLOv5's default is {default}).")
    return {**LOSS_KEYS, **hyp}


def scaled_gains(box: float, cls: float, obj: float, nc: int, imgsz: int, nl: int) -> dict[str, float]:
    """The loss gains as YOLOv5's train.py scales them for ``nc`` classes, image size ``imgsz`` and ``nl`` levels.

    Examples:
        >>> scaled_gains(0.05, 0.5, 1.0, nc=3, imgsz=160, nl=3)
        {'box': 0.05, 'cls': 0.01875, 'obj': 0.0625}
    """
    per_level = 3 / nl
    return {"box": box * per_level, "cls": cls * nc / 80 * per_level, "obj": obj * (imgsz / 640) ** 2 * per_level}


def loss_hyp(args: Any, hyp: dict | None, nc: int, nl: int) -> dict[str, float]:
    """The hyperparameters the YOLOv5 loss trains with.

    Args:
        args: The trainer's arguments (``box``, ``cls``, ``imgsz``).
        hyp: The model dict's ``hyp:`` entry (:data:`LOSS_KEYS`).
        nc: Number of classes.
        nl: Number of detection levels.

    Returns:
        The keys of :data:`SCRATCH_LOW_LOSS`, gains scaled by :func:`scaled_gains`.
    """
    hyp = check_hyp(hyp, "hyp")
    imgsz = args.imgsz if isinstance(args.imgsz, int) else max(args.imgsz)
    gains = scaled_gains(float(args.box), float(args.cls), float(hyp["obj"]), nc, imgsz, nl)
    return {
        **gains,
        "cls_pw": float(hyp["cls_pos_weight"]),
        "obj_pw": float(hyp["obj_pw"]),
        "anchor_t": float(hyp["anchor_t"]),
        "fl_gamma": float(hyp["fl_gamma"]),
        "label_smoothing": float(hyp["label_smoothing"]),
    }


def apply_defaults(args: Any, user_keys: set[str]) -> list[str]:
    """Set hyp.scratch-low's value of every :data:`ULTRALYTICS_DEFAULTS` key the user did not set.

    Args:
        args: The trainer's arguments (modified in place).
        user_keys: Keys given explicitly (the trainer's overrides).

    Returns:
        The keys that were set.
    """
    changed = []
    for key, value in ULTRALYTICS_DEFAULTS.items():
        if key not in user_keys and getattr(args, key, value) != value:
            setattr(args, key, value)
            changed.append(key)
    return changed


def classic_head(model: Any):
    """The model's :class:`~attnyolo.yolov5.head.YOLOv5Detect`, or None for any other model."""
    layers = getattr(model, "model", None)
    head = layers[-1] if isinstance(layers, nn.Sequential) and len(layers) else None
    return head if isinstance(head, YOLOv5Detect) else None


def _rewrite_run_args(trainer: Any) -> None:
    """Rewrite the run's ``args.yaml`` (written by the trainer before the recipe was known) with the arguments used."""
    path = Path(trainer.save_dir) / "args.yaml"
    if path.is_file():
        with atomic_path(path) as tmp:
            YAML.save(tmp, vars(trainer.args))


def prepare_model(trainer: Any, model: Any, user_keys: set[str]) -> None:
    """Before the optimizer and dataloaders exist: hyp.scratch-low for the keys the user left unset.

    Called by the trainer's ``get_model``; does nothing for models without a classic head, and nothing to the
    arguments when resuming (the checkpoint's arguments are the run's).

    Args:
        trainer: The Ultralytics trainer.
        model: The model ``get_model`` built.
        user_keys: Keys the user set explicitly.
    """
    head = classic_head(model)
    if head is None:
        return
    check_hyp(model.yaml.get("hyp"), f"{model.yaml.get('yaml_file', 'model')}: hyp")
    if not trainer.args.resume:
        changed = apply_defaults(trainer.args, user_keys)
        if changed and RANK in {-1, 0}:
            values = ", ".join(f"{k}={getattr(trainer.args, k)}" for k in changed)
            ULTRALYTICS_LOGGER.info(f"YOLOv5 recipe (hyp.scratch-low) for keys you did not set: {values}")
            _rewrite_run_args(trainer)
    model.yolov5_hyp = loss_hyp(trainer.args, model.yaml.get("hyp"), head.nc, head.nl)


def before_training(trainer: Any) -> None:
    """After the dataloaders are built, before the EMA copy: the loss's gains for the checked image size, AutoAnchor.

    AutoAnchor runs as YOLOv5's train.py runs it: not when resuming, and not with ``autoanchor: false`` in the model
    dict's ``hyp`` (``attnyolo train autoanchor=False``); its result is logged.
    """
    model = unwrap_model(trainer.model)
    head = classic_head(model)
    if head is None:
        return
    hyp = check_hyp(model.yaml.get("hyp"), "hyp")
    # NOTE: not in the official code: train.py also rounds every weight to fp16 once here ("pre-reduce anchor
    # precision", model.half().float()); weights and anchors stay as they are.
    model.yolov5_hyp = loss_hyp(trainer.args, hyp, head.nc, head.nl)
    model.criterion = None  # built from yolov5_hyp on the first batch
    if RANK in {-1, 0}:
        gains = ", ".join(f"{k}={model.yolov5_hyp[k]:.4g}" for k in ("box", "obj", "cls"))
        ULTRALYTICS_LOGGER.info(f"YOLOv5 loss gains for nc={head.nc}, imgsz={trainer.args.imgsz}: {gains}")
    if trainer.args.resume or not hyp["autoanchor"]:
        return
    imgsz = trainer.args.imgsz if isinstance(trainer.args.imgsz, int) else max(trainer.args.imgsz)
    seed = int(getattr(trainer.args, "seed", 0) or 0)
    report = check_anchors(head, training_labels(trainer), imgsz, model.yolov5_hyp["anchor_t"], seed)
    if RANK in {-1, 0}:
        ULTRALYTICS_LOGGER.info(report.summary())
    trainer.autoanchor_report = report
