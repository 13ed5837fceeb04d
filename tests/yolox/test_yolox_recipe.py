"""recipe=yolox: which settings and trainer a run gets, and YOLOX's schedule, optimizer, EMA and multi-scale.

Expected values are YOLOX's (yolox/exp/yolox_base.py, exps/default/*.py, yolox/utils/lr_scheduler.py, ema.py at
commit 6ddff48) worked out by hand, not taken from the code under test.
"""

import json
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from ultralytics.engine.model import Model
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import ModelEMA

from attnyolo.engine.recipes import YOLOX030RecipeTrainer, YOLOXRecipeTrainer, resolve_recipe
from attnyolo.engine.trainer import AttnDetectionTrainer, recipe_trainer_of, train
from attnyolo.yolox.recipe import (
    multiscale_sizes,
    resize_batch,
    yolox_lr,
    yolox_parameter_groups,
    yolox_settings,
)
from attnyolo.yolox.simota import LEGACY_RULES, OFFICIAL_RULES


def test_learning_rate_is_yoloxwarmcos():
    lr, nb = 0.01, 10  # 300 epochs of 10 iterations: warmup 50, cosine until 2850, then 15 epochs at 5%
    assert yolox_lr(0, lr, nb) == 0.0  # YOLOX's first step runs at warmup_lr = 0
    assert yolox_lr(25, lr, nb) == pytest.approx(lr / 4)  # quadratic: (25 / 50) ** 2
    assert yolox_lr(50, lr, nb) == pytest.approx(lr)
    assert yolox_lr(50 + 1400, lr, nb) == pytest.approx((lr + 0.05 * lr) / 2)  # half way down the cosine
    assert yolox_lr(2849, lr, nb) == pytest.approx(0.05 * lr, rel=1e-4)
    assert yolox_lr(2850, lr, nb) == yolox_lr(2999, lr, nb) == pytest.approx(0.05 * lr)
    assert yolox_lr(51, lr, nb) < lr


def test_settings_follow_the_official_exp_files():
    s = yolox_settings("s")
    assert s["optimizer"] == "SGD" and s["momentum"] == 0.9 and s["weight_decay"] == 5e-4
    assert s["batch"] == 64 and s["lr0"] == pytest.approx(0.01) and s["nbs"] == 64
    assert yolox_settings("s", batch=32)["lr0"] == pytest.approx(0.005)  # 0.01 * batch / 64
    assert s["epochs"] == 300 and s["imgsz"] == 640 and s["warmup_epochs"] == 0 and s["lrf"] == 0.05
    assert s["close_mosaic"] == 16  # YOLOX closes mosaic when epoch + 1 == 300 - 15: the last 16 epochs
    assert (s["mosaic"], s["mixup"], s["scale"]) == (1.0, 1.0, (0.1, 2.0))
    assert (s["degrees"], s["translate"], s["shear"], s["fliplr"], s["iou"]) == (10.0, 0.1, 2.0, 0.5, 0.65)
    nano, tiny = yolox_settings("n"), yolox_settings("t")
    assert (nano["imgsz"], nano["mosaic"], nano["mixup"], nano["scale"]) == (416, 0.5, 0.0, (0.5, 1.5))
    assert (tiny["imgsz"], tiny["mosaic"], tiny["mixup"], tiny["scale"]) == (416, 1.0, 0.0, (0.5, 1.5))


def test_multiscale_ranges():
    assert multiscale_sizes("s", 640) == (448, 832)  # the paper's range for S to X
    assert multiscale_sizes("x", 640) == (448, 832)
    assert multiscale_sizes("n", 416) == (320, 640)  # Nano and Tiny: random_size (10, 20)
    assert multiscale_sizes("s", 320) == (224, 416)  # scaled with imgsz: 7..13 strides
    assert multiscale_sizes("n", 32) == (32, 64)


def test_resolve_recipe_picks_trainer_and_settings():
    nano = DetectionModel("yolox-nano.yaml", verbose=False)
    assert resolve_recipe("ultralytics", nano, {}) == ({}, AttnDetectionTrainer)
    settings, trainer = resolve_recipe("yolox", nano, {"epochs": 5, "batch": 16})
    assert trainer is YOLOXRecipeTrainer and settings["epochs"] == 5 and settings["batch"] == 16
    assert settings["imgsz"] == 416 and settings["lr0"] == pytest.approx(0.01 * 16 / 64)  # Nano's exp, batch 16
    assert resolve_recipe("yolox-0.3.0", nano, {})[1] is YOLOX030RecipeTrainer
    assert YOLOXRecipeTrainer.simota_rules is OFFICIAL_RULES and YOLOX030RecipeTrainer.simota_rules is LEGACY_RULES
    with pytest.raises(ValueError, match="recipe='yolo' is unknown. Fix: use one of ultralytics, yolox, yolox-0.3.0"):
        resolve_recipe("yolo", nano, {})
    with pytest.raises(ValueError, match="recipe=yolox is YOLOX's training schedule, but the model has no YOLOX head"):
        resolve_recipe("yolox", DetectionModel("yolov8n.yaml", verbose=False), {})


class Captured(Exception):
    """Raised by the stand-in for YOLO.train, carrying what train() handed to Ultralytics."""


@pytest.mark.parametrize("recipe", ["ultralytics", "yolox"])
def test_train_hands_ultralytics_the_recipe(monkeypatch, tmp_path, recipe):
    def capture(self, trainer=None, **settings):
        raise Captured(trainer, settings)

    monkeypatch.setattr(Model, "train", capture)
    data = tmp_path / "data.yaml"
    (tmp_path / "images").mkdir()  # train() checks that the splits exist before any work starts
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    data.write_text(f"path: {tmp_path}\ntrain: images\nval: images\nnames: {{0: a}}\n")
    with pytest.raises(Captured) as got:
        train("yolox-s.yaml", data=str(data), recipe=recipe, epochs=7, project=str(tmp_path / "runs"))
    trainer, settings = got.value.args
    assert settings["epochs"] == 7 and settings["project"] == str((tmp_path / "runs").resolve())
    if recipe == "ultralytics":  # Ultralytics' defaults stand: train() adds nothing
        assert trainer is AttnDetectionTrainer and "optimizer" not in settings and "close_mosaic" not in settings
    else:
        assert trainer is YOLOXRecipeTrainer
        assert {k: settings[k] for k in ("optimizer", "lr0", "batch", "imgsz", "close_mosaic", "warmup_epochs")} == {
            "optimizer": "SGD",
            "lr0": pytest.approx(0.01),
            "batch": 64,
            "imgsz": 640,
            "close_mosaic": 16,
            "warmup_epochs": 0,
        }


def test_a_resumed_run_keeps_its_recipe(tmp_path):
    assert recipe_trainer_of(tmp_path) is AttnDetectionTrainer
    (tmp_path / "recipe.json").write_text(json.dumps({"recipe": "yolox-0.3.0"}))
    assert recipe_trainer_of(tmp_path) is YOLOX030RecipeTrainer


def test_optimizer_has_yoloxs_groups():
    model = DetectionModel("yolox-nano-ELA-S.yaml", verbose=False)
    optimizer = YOLOXRecipeTrainer.build_optimizer(None, model, lr=0.1)
    assert isinstance(optimizer, torch.optim.SGD)
    bn, weights, biases = optimizer.param_groups
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    n_biases = sum(isinstance(getattr(m, "bias", None), nn.Parameter) for m in model.modules())
    assert len(bn["params"]) == n_bn and bn["weight_decay"] == 0.0
    assert len(biases["params"]) == n_biases and biases["weight_decay"] == 0.0
    # decayed: every other module weight, the attention layers' GroupNorm weights included (YOLOX spares only BN)
    n_weights = sum(
        isinstance(getattr(m, "weight", None), nn.Parameter) and not isinstance(m, nn.BatchNorm2d)
        for m in model.modules()
    )
    assert len(weights["params"]) == n_weights and weights["weight_decay"] == 5e-4
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert all(g["momentum"] == 0.9 and g["nesterov"] for g in optimizer.param_groups)
    grouped = [id(p) for g in yolox_parameter_groups(model) for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # every parameter exactly once


def fake_trainer(tmp_path, nb=25, batch=16, imgsz=640, epochs=300):
    model = DetectionModel("yolox-nano.yaml", verbose=False)
    weight = nn.Parameter(torch.zeros(3))
    return SimpleNamespace(
        model=model,
        optimizer=torch.optim.SGD([{"params": [weight]}, {"params": []}], lr=1.0),
        train_loader=[None] * nb,
        batch_size=batch,
        epochs=epochs,
        epoch=0,
        args=SimpleNamespace(imgsz=imgsz),
        accumulate=4,
        yolox_iteration=0,
        yolox_imgsz=None,
        ema=ModelEMA(model),
        save_dir=tmp_path,
        recipe="yolox",
        simota_rules=LEGACY_RULES,
    )


def test_every_iteration_gets_yoloxs_learning_rate_and_sizes_change_every_ten(tmp_path):
    t = fake_trainer(tmp_path, imgsz=416)  # Nano: 320..640
    sizes = []
    for it in range(60):
        YOLOXRecipeTrainer._batch_start(t)
        assert [g["lr"] for g in t.optimizer.param_groups] == [yolox_lr(it, 0.01 * 16 / 64, 25, 300)] * 2
        assert t.accumulate == 1
        sizes.append(t.yolox_imgsz)
    assert sizes[:10] == [416] * 10  # YOLOX's first draw comes after 10 iterations
    blocks = [sizes[i : i + 10] for i in range(10, 60, 10)]
    assert all(len(set(b)) == 1 and b[0] % 32 == 0 and 320 <= b[0] <= 640 for b in blocks)
    assert len({b[0] for b in blocks}) > 1  # five draws from 11 sizes are not all equal (seeded below)

    batch = {"img": torch.rand(2, 3, 416, 416)}
    assert resize_batch(batch, 320)["img"].shape == (2, 3, 320, 320)
    assert resize_batch(batch, None)["img"].shape == (2, 3, 320, 320)


def test_start_uses_yoloxs_ema_and_records_the_recipe(tmp_path):
    t = fake_trainer(tmp_path)
    t.ema.updates = 1234
    with torch.no_grad():
        next(t.ema.ema.parameters()).fill_(0.5)  # resumed EMA weights must survive the swap
    YOLOXRecipeTrainer._start(t)
    assert t.ema.updates == 1234 and float(next(t.ema.ema.parameters()).mean()) == 0.5
    assert t.ema.decay(4000) == pytest.approx(0.9998 * (1 - math.exp(-2)))
    assert json.loads((tmp_path / "recipe.json").read_text()) == {"recipe": "yolox"}
    YOLOXRecipeTrainer._epoch_start(t)
    assert t.model.criterion.scaling == "yolox" and t.model.criterion.rules is LEGACY_RULES


def test_optimizer_step_does_not_clip_gradients():
    p = nn.Parameter(torch.zeros(4))
    t = SimpleNamespace(
        optimizer=torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True),
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        ema=None,
        model=None,
    )
    p.grad = torch.full((4,), 1000.0)  # norm 2000: Ultralytics would clip it to 10
    YOLOXRecipeTrainer.optimizer_step(t)
    # first Nesterov step: buffer = g, update = g + 0.9 * g
    torch.testing.assert_close(p.detach(), torch.full((4,), -0.1 * 1.9 * 1000.0))
    assert p.grad is None or not p.grad.any()


@pytest.fixture(autouse=True)
def seeded_random():
    import random

    state = random.getstate()
    random.seed(0)
    yield
    random.setstate(state)
