"""Ultralytics' detection trainer with row-aligned transfer and atomic writes: :class:`AttnDetectionTrainer`.

:class:`AttnDetectionTrainer` changes four things and nothing else:

* pretrained weights are transferred by aligned YAML rows (:mod:`attnyolo.engine.transfer`), not by state-dict key;
* ``last.pt``/``best.pt`` are written to a temporary file and renamed into place, so a crash mid-write never leaves
  a truncated checkpoint, and a failed write (of them, results.csv or args.yaml) names its file;
* so are its plots, and a plot that fails in Ultralytics' plot thread is one warning line, not a traceback
  (:func:`attnyolo.integration.plots.atomic_plots`);
* it lives in this package, so Ultralytics' multi-GPU launcher, which re-imports the trainer's module in every
  worker, imports ``attnyolo`` there and with it the layer registration.

For YOLOX models it also switches the YOLOX loss's L1 term on for the final ``close_mosaic`` epochs
(:func:`switch_yolox_l1`), the epochs YOLOX trains without mosaic and with L1 (its last 15). Classic YOLOv5 models
train with YOLOv5's recipe for every key the user did not set, and AutoAnchor (:mod:`attnyolo.yolov5.recipe`).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK
from ultralytics.utils.torch_utils import unwrap_model

from ..integration.checkpoints import save_model_atomically
from ..integration.plots import atomic_plots
from ..integration.training import drop_unsaved_epochs
from ..utils.atomic import failures_name, name_failure
from ..yolov5 import recipe as yolov5_recipe
from ..yolox.head import YOLOXDetect
from .transfer import transfer_by_rows


def switch_yolox_l1(trainer) -> None:
    """``on_train_epoch_start`` callback: turn the YOLOX L1 box loss on once the run enters its no-mosaic epochs.

    Uses Ultralytics' own condition for closing mosaic, ``epoch >= epochs - close_mosaic`` (``close_mosaic=0``: never),
    so L1 starts exactly when augmentation is reduced, as in YOLOX. Models without a YOLOX head are left alone.

    Args:
        trainer: The running Ultralytics trainer.
    """
    model = unwrap_model(trainer.model)
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential) or not isinstance(layers[-1], YOLOXDetect):
        return
    if getattr(model, "criterion", None) is None:
        model.criterion = model.init_criterion()  # built lazily on the first batch otherwise; the flag lives on it
    close = trainer.args.close_mosaic
    use_l1 = bool(close) and trainer.epoch >= trainer.epochs - close
    if use_l1 and not model.criterion.use_l1 and RANK in {-1, 0}:
        LOGGER.info("YOLOX: L1 box loss on for the final no-mosaic epochs")
    model.criterion.use_l1 = use_l1


class AttnDetectionTrainer(DetectionTrainer):
    """Ultralytics ``DetectionTrainer`` with row-aligned pretrained transfer and atomic checkpoint writes.

    Examples:
        >>> import attnyolo
        >>> from ultralytics import YOLO
        >>> from attnyolo.engine.detection_trainer import AttnDetectionTrainer
        >>> model = YOLO("yolov8n-CoordAtt.yaml")
        >>> model.train(trainer=AttnDetectionTrainer, data="data/sample/data.yaml")  # doctest: +SKIP
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None):
        """Set up Ultralytics' detection trainer and add the YOLOX L1 switch (:func:`switch_yolox_l1`)."""
        self.user_keys = set(overrides or {})  # what the run sets explicitly; classic YOLOv5 defaults fill the rest
        try:
            super().__init__(cfg, overrides, _callbacks)
        except OSError as error:
            # The one file Ultralytics writes here is <save_dir>/args.yaml (through its YAML saver), and a failed write
            # names no file. Other OS errors here (a dataset download or unzip) are not about that file.
            saving = any(frame.name in {"save", "yaml_save"} for frame in traceback.extract_tb(error.__traceback__))
            if saving and getattr(self, "save_dir", None) is not None:
                name_failure(error, Path(self.save_dir) / "args.yaml")
            raise
        self.add_callback("on_train_epoch_start", switch_yolox_l1)

    def get_model(self, cfg=None, weights=None, verbose=True):
        """Build the model from ``cfg`` and transfer ``weights`` into it by aligned rows, logging what moved."""
        model = super().get_model(cfg=cfg, weights=None, verbose=verbose)
        if weights:
            report = transfer_by_rows(model, weights)
            if RANK in {-1, 0}:
                LOGGER.info(f"Pretrained weights (row-aligned): {report.summary()}")
            self.transfer_report = report
        keys = getattr(self, "yolov5_loss_keys", None)  # attnyolo train's YOLOv5 loss keys (set_yolov5_loss_keys)
        if keys and yolov5_recipe.classic_head(model) is not None:
            model.yaml["hyp"] = {**(model.yaml.get("hyp") or {}), **keys}
        yolov5_recipe.prepare_model(self, model, self.user_keys)
        return model

    def set_class_weights(self):
        """Ultralytics' class weights, then, for classic YOLOv5 models, the loss gains and AutoAnchor.

        Ultralytics calls this once the dataloaders exist and before it copies the model for the EMA, which is where
        YOLOv5's train.py checks its anchors.
        """
        super().set_class_weights()
        yolov5_recipe.before_training(self)

    def resume_training(self, ckpt):
        """Resume as Ultralytics does, then drop results.csv rows of epochs the checkpoint does not contain.

        A run killed after logging an epoch but before its checkpoint was written would otherwise log that epoch twice.
        """
        super().resume_training(ckpt)
        if ckpt is not None and self.resume:
            drop_unsaved_epochs(self.csv, ckpt)  # self.csv: BaseTrainer's documented results.csv path

    def save_metrics(self, metrics):
        """Append the epoch's row to results.csv as Ultralytics does; a failed write names the file."""
        with failures_name(self.csv):  # self.csv: BaseTrainer's documented results.csv path
            return super().save_metrics(metrics)

    def save_model(self):
        """Save checkpoints as Ultralytics does, but through temporary files renamed into place."""
        return save_model_atomically(self, super().save_model)

    def train(self):
        """Train as Ultralytics does; its plots are written atomically, a failed plot is one warning line at most."""
        with atomic_plots(self.save_dir):
            return super().train()
