"""YOLOX's own training schedule, as numbers and functions: ``attnyolo train recipe=yolox``.

The trainer that runs it is :class:`attnyolo.engine.recipes.YOLOXRecipeTrainer` (a trainer subclass, so it lives on
the engine floor); this module holds what YOLOX's code and paper fix, which it reads.

Ultralytics' recipe stays the default (``recipe=ultralytics``: its optimizer choice, linear warmup, loss times batch
size with ``nbs`` accumulation, gradient clipping, EMA 0.9999). ``recipe=yolox`` reproduces YOLOX's schedule instead,
facts from github Megvii-BaseDetection/YOLOX at commit 6ddff4824372906469a7fae2dc3206c7aa4bbaee
(``yolox/exp/yolox_base.py``, ``exps/default/yolox_<size>.py``, ``yolox/core/trainer.py``,
``yolox/utils/lr_scheduler.py``, ``yolox/utils/ema.py``) and the paper (arXiv 2107.08430, Sec. 2.1):

* SGD, momentum 0.9, Nesterov, lr = 0.01 * batch / 64, weight decay 5e-4 on weights only (not on BatchNorm, not on
  biases), one step per batch (no accumulation), no gradient clipping, the YOLOX loss itself (not times the batch);
* per-iteration ``yoloxwarmcos``: quadratic warmup from 0 over 5 epochs, cosine down to 5% of lr, then 5% for the
  last 15 epochs (:func:`yolox_lr`);
* 300 epochs; mosaic and mixup off, L1 loss on, for the final epochs (YOLOX switches at the start of epoch
  ``max_epoch - 15`` counted from 1, i.e. 16 epochs: ``close_mosaic=16``);
* EMA of every floating-point state entry with decay ``0.9998 * (1 - exp(-updates / 2000))``;
* multi-scale: a new square size every 10 iterations, uniformly among the multiples of 32 from 448 to 832 at 640
  (the paper's range; YOLOX's code default is 480 to 800) and from 320 to 640 at 416 (Nano, Tiny: ``random_size``
  (10, 20)), scaled to ``imgsz`` when it is not the official one; images resized bilinearly;
* augmentation as the exp files set it (mosaic, mixup, HSV, flip, affine with rotation 10, translation 0.1, shear 2,
  scale (0.1, 2) or for Nano/Tiny (0.5, 1.5), no mixup for Nano/Tiny, mosaic half of the time for Nano), mapped onto
  Ultralytics' settings; validation NMS IoU 0.65.

``recipe=yolox-0.3.0`` is the same with SimOTA's geometry as YOLOX 0.1.0 to 0.3.0 had it (the rules the released
weights were trained with; see :mod:`attnyolo.yolox.simota`). What Ultralytics' public API cannot express the same
way is listed in docs/yolox.md ("Departures").
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn.functional as F
from torch import nn

from ..integration.names import with_yolox_scale

# yolox/exp/yolox_base.py
YOLOX_LR_PER_IMAGE = 0.01 / 64  # basic_lr_per_img: lr = 0.01 at batch 64
YOLOX_BATCH = 64  # the batch of the model zoo's training commands (-b 64)
YOLOX_MOMENTUM = 0.9
YOLOX_WEIGHT_DECAY = 5e-4
YOLOX_EPOCHS = 300  # max_epoch
YOLOX_WARMUP_EPOCHS = 5
YOLOX_MIN_LR_RATIO = 0.05
YOLOX_NO_AUG_EPOCHS = 15
YOLOX_EMA_DECAY, YOLOX_EMA_TAU = 0.9998, 2000  # yolox/utils/ema.py ModelEMA
YOLOX_RESIZE_EVERY = 10  # iterations between multi-scale draws (yolox/core/trainer.py after_iter)
YOLOX_NMS_IOU = 0.65  # nmsthre
STRIDE = 32

# Per size: official input size and multi-scale range in strides of 32 at that size, and the augmentation the exp
# files set. Nano and Tiny: random_size (10, 20) at 416, mosaic_scale (0.5, 1.5), no mixup; Nano mosaic_prob 0.5.
# S to X: the paper's 448-832 at 640, mosaic_scale (0.1, 2), mixup on.
# NOTE: not in the official code: Ultralytics' RandomPerspective plays YOLOX's random_affine; HSV gains are
# multiplicative in Ultralytics where YOLOX adds up to +-5 (hue, of 180) and +-30 (saturation, value, of 255), so the
# saturation and value gains are the additive range at mid-scale (30 / 128).
_SIZES: dict[str, dict[str, Any]] = {
    "n": {"imgsz": 416, "strides": (10, 20), "mosaic": 0.5, "mixup": 0.0, "scale": (0.5, 1.5)},
    "t": {"imgsz": 416, "strides": (10, 20), "mosaic": 1.0, "mixup": 0.0, "scale": (0.5, 1.5)},
    **{s: {"imgsz": 640, "strides": (14, 26), "mosaic": 1.0, "mixup": 1.0, "scale": (0.1, 2.0)} for s in "smlx"},
}


def yolox_lr(
    iteration: int,
    lr: float,
    iters_per_epoch: int,
    epochs: int = YOLOX_EPOCHS,
    warmup_epochs: int = YOLOX_WARMUP_EPOCHS,
    no_aug_epochs: int = YOLOX_NO_AUG_EPOCHS,
    min_lr_ratio: float = YOLOX_MIN_LR_RATIO,
) -> float:
    """The learning rate YOLOX's ``yoloxwarmcos`` schedule gives the step of global iteration ``iteration``.

    Quadratic warmup from 0 to ``lr`` over the warmup epochs, cosine from ``lr`` to ``min_lr_ratio * lr`` until the
    last ``no_aug_epochs``, then constant. YOLOX's first step runs at the warmup start (0) and each later step at the
    schedule's value for its own iteration index.

    Args:
        iteration: Global iteration, ``epoch * iters_per_epoch + batch index``, from 0.
        lr: Peak learning rate (YOLOX: 0.01 * batch / 64).
        iters_per_epoch: Batches per epoch.
        epochs: Total epochs.
        warmup_epochs: Warmup epochs.
        no_aug_epochs: Final epochs at the minimum learning rate.
        min_lr_ratio: Minimum learning rate as a fraction of ``lr``.

    Returns:
        The learning rate.
    """
    warmup = iters_per_epoch * warmup_epochs
    total = iters_per_epoch * epochs
    no_aug = iters_per_epoch * no_aug_epochs
    low = lr * min_lr_ratio
    if iteration <= warmup:
        return lr * (iteration / warmup) ** 2 if warmup else lr
    if iteration >= total - no_aug:
        return low
    return low + 0.5 * (lr - low) * (1 + math.cos(math.pi * (iteration - warmup) / (total - warmup - no_aug)))


def multiscale_sizes(scale: str, imgsz: int) -> tuple[int, int]:
    """Smallest and largest multi-scale input size (pixels, multiples of 32) for a YOLOX size letter at ``imgsz``.

    YOLOX's ranges at the official input size (320-640 at 416 for Nano/Tiny, 448-832 at 640 otherwise), scaled to
    ``imgsz`` and rounded to strides, never below one stride.
    """
    official = _SIZES[scale]
    lo, hi = (max(1, round(s * imgsz / official["imgsz"])) for s in official["strides"])
    return lo * STRIDE, max(lo, hi) * STRIDE


def yolox_settings(scale: str, batch: int = YOLOX_BATCH) -> dict[str, Any]:
    """The Ultralytics training settings ``recipe=yolox`` starts a run from, for a YOLOX size letter.

    Args:
        scale: The model's scale key (``n``, ``t``, ``s``, ``m``, ``l``, ``x``).
        batch: The total batch size (the learning rate is 0.01 * batch / 64).

    Returns:
        Ultralytics ``train`` settings; the command line overrides any of them.
    """
    size = _SIZES[scale]
    return {
        "epochs": YOLOX_EPOCHS,
        "batch": batch,
        "imgsz": size["imgsz"],
        "optimizer": "SGD",  # built by YOLOXRecipeTrainer.build_optimizer with YOLOX's parameter groups
        "lr0": YOLOX_LR_PER_IMAGE * batch,
        "lrf": YOLOX_MIN_LR_RATIO,
        "cos_lr": True,
        "momentum": YOLOX_MOMENTUM,
        "weight_decay": YOLOX_WEIGHT_DECAY,
        "nbs": batch,  # one optimizer step per batch, weight decay unscaled
        "warmup_epochs": 0,  # Ultralytics' linear warmup off: YOLOXRecipeTrainer sets YOLOX's lr every iteration
        "warmup_bias_lr": 0.0,
        "warmup_momentum": YOLOX_MOMENTUM,
        "close_mosaic": YOLOX_NO_AUG_EPOCHS + 1,
        "multi_scale": 0.0,  # YOLOX's multi-scale is YOLOXRecipeTrainer's
        "mosaic": size["mosaic"],
        "mixup": size["mixup"],
        "scale": size["scale"],
        "degrees": 10.0,
        "translate": 0.1,
        "shear": 2.0,
        "fliplr": 0.5,
        "hsv_h": 5 / 180,
        "hsv_s": 30 / 128,
        "hsv_v": 30 / 128,
        "iou": YOLOX_NMS_IOU,
    }


def resize_batch(batch: dict, size: int | None) -> dict:
    """Resize a preprocessed batch's images to ``size`` x ``size`` (bilinear, as YOLOX's ``Exp.preprocess``).

    Ultralytics' labels are normalised to the image, so only the pixels change. ``None`` leaves the batch as it is.
    """
    if size and tuple(batch["img"].shape[2:]) != (size, size):
        batch["img"] = F.interpolate(batch["img"], size=(size, size), mode="bilinear", align_corners=False)
    return batch


def yolox_parameter_groups(model: nn.Module) -> list[dict[str, Any]]:
    """YOLOX's optimizer groups (``Exp.get_optimizer``): BatchNorm weights, other weights (decayed), biases.

    A module counts as BatchNorm when it is an ``nn.BatchNorm2d`` or its name contains ``bn``, as in YOLOX. Parameters
    that are neither a ``weight`` nor a ``bias`` attribute of a module are decayed like weights.
    """
    bn, weights, biases, seen = [], [], [], set()
    for name, module in model.named_modules():
        bias, weight = getattr(module, "bias", None), getattr(module, "weight", None)
        if isinstance(bias, nn.Parameter) and id(bias) not in seen:
            biases.append(bias)
            seen.add(id(bias))
        if isinstance(weight, nn.Parameter) and id(weight) not in seen:
            (bn if isinstance(module, nn.BatchNorm2d) or "bn" in name else weights).append(weight)
            seen.add(id(weight))
    weights += [p for p in model.parameters() if id(p) not in seen]
    return [
        {"params": bn, "weight_decay": 0.0},
        {"params": weights, "weight_decay": YOLOX_WEIGHT_DECAY},
        {"params": biases, "weight_decay": 0.0},
    ]


def yolox_scale(model: nn.Module) -> str:
    """The scale letter (``n``, ``t``, ``s``, ``m``, ``l``, ``x``) of a YOLOX model, from its YAML (``s`` if unknown).

    Ultralytics leaves ``scale`` empty for names like ``yolox-s.yaml``, so the name is read as the parser reads it.
    """
    scale = with_yolox_scale(dict(getattr(model, "yaml", None) or {})).get("scale")
    return scale if scale in _SIZES else "s"
