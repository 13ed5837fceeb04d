"""The training recipes ``attnyolo train recipe=...`` offers, and the trainer class of each (:data:`TRAINERS`).

``ultralytics`` (the default) is :class:`~attnyolo.engine.detection_trainer.AttnDetectionTrainer` with Ultralytics'
recipe. ``yolox`` and ``yolox-0.3.0`` run YOLOX's own schedule (:mod:`attnyolo.yolox.recipe` holds its numbers and
functions; :class:`YOLOXRecipeTrainer` applies them through the trainer's public hooks). A recipe's trainer subclasses
the engine's trainer, so recipes live here, on the engine floor: a family adds one by adding its trainer class to
:data:`TRAINERS`. The recipe a run used is recorded in its folder (:data:`RECIPE_FILE`), so ``resume`` continues it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.utils import LOGGER, RANK
from ultralytics.utils.torch_utils import ModelEMA, unwrap_model

from ..utils.atomic import write_json_atomic
from ..yolox.head import YOLOXDetect
from ..yolox.recipe import (
    STRIDE,
    YOLOX_BATCH,
    YOLOX_EMA_DECAY,
    YOLOX_EMA_TAU,
    YOLOX_LR_PER_IMAGE,
    YOLOX_MOMENTUM,
    YOLOX_RESIZE_EVERY,
    multiscale_sizes,
    resize_batch,
    yolox_lr,
    yolox_parameter_groups,
    yolox_scale,
    yolox_settings,
)
from ..yolox.simota import LEGACY_RULES, OFFICIAL_RULES
from .detection_trainer import AttnDetectionTrainer

RECIPE_FILE = "recipe.json"  # written into the run directory, so resume=True continues with the same recipe


def _criterion(trainer):
    """The YOLOX criterion of the model being trained (built now if the first batch has not built it yet)."""
    model = unwrap_model(trainer.model)
    if getattr(model, "criterion", None) is None:
        model.criterion = model.init_criterion()
    return model.criterion


class YOLOXRecipeTrainer(AttnDetectionTrainer):
    """:class:`~attnyolo.engine.trainer.AttnDetectionTrainer` with YOLOX's optimizer, schedule, EMA and multi-scale.

    Everything is set through the trainer's public hooks (``build_optimizer``, ``optimizer_step``,
    ``preprocess_batch`` and callbacks); the settings of :func:`yolox_settings` do the rest.

    Attributes:
        simota_rules (SimOTARules): The SimOTA geometry the loss uses.
        recipe (str): The recipe name, recorded in the run directory.
    """

    simota_rules = OFFICIAL_RULES
    recipe = "yolox"

    def __init__(self, *args, **kwargs):
        """Set up the trainer and register YOLOX's per-epoch and per-iteration schedule."""
        super().__init__(*args, **kwargs)
        self.yolox_iteration = 0
        self.yolox_imgsz = None  # the current multi-scale size; None until the first batch
        self.add_callback("on_pretrain_routine_end", YOLOXRecipeTrainer._start)
        self.add_callback("on_train_epoch_start", YOLOXRecipeTrainer._epoch_start)
        self.add_callback("on_train_batch_start", YOLOXRecipeTrainer._batch_start)

    def _start(self) -> None:
        """Use YOLOX's EMA decay (keeping any resumed EMA weights) and record the recipe in the run directory."""
        if self.ema is not None:
            ema = ModelEMA(self.model, decay=YOLOX_EMA_DECAY, tau=YOLOX_EMA_TAU, updates=self.ema.updates)
            ema.ema.load_state_dict(self.ema.ema.state_dict())
            self.ema = ema
        if RANK in {-1, 0}:
            write_json_atomic(Path(self.save_dir) / RECIPE_FILE, {"recipe": self.recipe})
            LOGGER.info(f"recipe={self.recipe}: YOLOX's SGD, schedule, EMA and multi-scale (docs/yolox.md)")

    def _epoch_start(self) -> None:
        """Point the iteration counter at the epoch's first batch; the loss takes YOLOX's scale and SimOTA rules."""
        self.yolox_iteration = self.epoch * len(self.train_loader)
        criterion = _criterion(self)
        criterion.scaling = "yolox"
        criterion.rules = self.simota_rules

    def _batch_start(self) -> None:
        """Set YOLOX's learning rate for this iteration and, every 10 iterations, draw a new input size."""
        it = self.yolox_iteration
        lr = yolox_lr(it, YOLOX_LR_PER_IMAGE * self.batch_size, len(self.train_loader), self.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.accumulate = 1  # YOLOX steps every batch
        if self.yolox_imgsz is None or (it and it % YOLOX_RESIZE_EVERY == 0):
            lo, hi = multiscale_sizes(yolox_scale(unwrap_model(self.model)), self.args.imgsz)
            # YOLOX trains its first 10 iterations at the input size, then draws
            draw = STRIDE * random.randint(lo // STRIDE, hi // STRIDE)
            self.yolox_imgsz = self.args.imgsz if it < YOLOX_RESIZE_EVERY else draw
        self.yolox_iteration += 1

    def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
        """SGD with YOLOX's parameter groups, momentum 0.9 and Nesterov; the learning rate is set every iteration."""
        return torch.optim.SGD(yolox_parameter_groups(model), lr=lr, momentum=YOLOX_MOMENTUM, nesterov=True)

    def optimizer_step(self):
        """One optimizer step and EMA update, without Ultralytics' gradient-norm clipping (YOLOX clips nothing)."""
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        if self.ema:
            self.ema.update(self.model)

    def preprocess_batch(self, batch: dict) -> dict:
        """Ultralytics' preprocessing, then the batch resized (bilinear) to the current multi-scale size."""
        return resize_batch(super().preprocess_batch(batch), self.yolox_imgsz)


class YOLOX030RecipeTrainer(YOLOXRecipeTrainer):
    """``recipe=yolox-0.3.0``: :class:`YOLOXRecipeTrainer` with SimOTA's geometry of YOLOX 0.1.0 to 0.3.0."""

    simota_rules = LEGACY_RULES
    recipe = "yolox-0.3.0"


TRAINERS = {"ultralytics": AttnDetectionTrainer, "yolox": YOLOXRecipeTrainer, "yolox-0.3.0": YOLOX030RecipeTrainer}
RECIPES = tuple(TRAINERS)  # the recipe= choices


def resolve_recipe(recipe: str, model: nn.Module, overrides: dict[str, Any]) -> tuple[dict[str, Any], type]:
    """The settings and trainer class a run with ``recipe=`` gets.

    Args:
        recipe: ``ultralytics`` (the default), ``yolox`` or ``yolox-0.3.0``.
        model: The model to train (a ``DetectionModel``), to check it is a YOLOX and read its size.
        overrides: The settings given on the command line; they win over the recipe's.

    Returns:
        ``(settings, trainer class)``: the recipe's settings updated with ``overrides`` ({} for ``ultralytics``:
        the caller's settings stand).

    Raises:
        ValueError: An unknown recipe, or a YOLOX recipe for a model without a YOLOX head.
    """
    if recipe not in TRAINERS:
        raise ValueError(f"recipe={recipe!r} is unknown. Fix: use one of {', '.join(RECIPES)}.")
    if recipe == "ultralytics":
        return {}, TRAINERS[recipe]
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential) or not isinstance(layers[-1], YOLOXDetect):
        raise ValueError(
            f"recipe={recipe} is YOLOX's training schedule, but the model has no YOLOX head. Fix: train a YOLOX model "
            "(model=yolox-s.yaml, yolox-nano-ELA-S.yaml, ...) or leave recipe= out for Ultralytics' recipe."
        )
    scale = yolox_scale(model)
    batch = overrides.get("batch", YOLOX_BATCH)
    batch = batch if isinstance(batch, int) and batch > 0 else YOLOX_BATCH  # auto batch: the lr follows at run time
    return {**yolox_settings(scale, batch), **overrides}, TRAINERS[recipe]


def recipe_settings(recipe: str, model, settings: dict, overrides: dict) -> tuple[dict, type]:
    """A run's settings and trainer class under ``recipe=`` (:func:`resolve_recipe`).

    The recipe's settings replace the base ones; the command line's ``overrides`` and the run's ``project`` stay.
    """
    chosen, trainer_class = resolve_recipe(recipe, model, overrides)
    return {**settings, **chosen, "project": settings["project"]}, trainer_class


def recipe_trainer_of(run_dir: str | Path) -> type:
    """The trainer class a run was started with: its recorded recipe (``recipe.json``), else Ultralytics'."""
    path = Path(run_dir) / RECIPE_FILE
    recipe = json.loads(path.read_text(encoding="utf-8")).get("recipe") if path.is_file() else "ultralytics"
    return TRAINERS.get(recipe, AttnDetectionTrainer)
