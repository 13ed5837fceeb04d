"""YOLOv5's training recipe: hyp.scratch-low defaults, train.py's gain scaling, the loss keys Ultralytics lacks."""

from types import SimpleNamespace

import pytest
import torch
from ultralytics import YOLO
from yolov5_helpers import fixture_json

import attnyolo  # noqa: F401
from attnyolo.engine.trainer import set_yolov5_loss_keys
from attnyolo.yolov5 import recipe

LOSS_CASES = fixture_json("loss.json")["cases"]


def test_gains_are_scaled_as_train_py_scales_them():
    # the fixture's case ii used train.py's gains for nc=3 at imgsz 160 with 3 levels
    hyp = LOSS_CASES["ii"]["hyp"]
    assert recipe.scaled_gains(0.05, 0.5, 1.0, nc=3, imgsz=160, nl=3) == pytest.approx(
        {"box": hyp["box"], "cls": hyp["cls"], "obj": hyp["obj"]}
    )
    assert recipe.scaled_gains(0.05, 0.5, 1.0, nc=80, imgsz=640, nl=3) == {"box": 0.05, "cls": 0.5, "obj": 1.0}
    # four levels (P3-P6): every gain times 3/4
    assert recipe.scaled_gains(0.05, 0.5, 1.0, nc=80, imgsz=640, nl=4) == pytest.approx(
        {"box": 0.0375, "cls": 0.375, "obj": 0.75}
    )


def test_loss_hyp_reads_box_and_cls_from_the_trainer_and_the_rest_from_hyp():
    args = SimpleNamespace(box=0.05, cls=0.5, imgsz=320)
    hyp = recipe.loss_hyp(args, {"obj": 0.7, "anchor_t": 2.91, "cls_pos_weight": 2.0}, nc=20, nl=3)
    assert hyp == pytest.approx(
        {
            "box": 0.05,
            "cls": 0.125,
            "obj": 0.7 * 0.25,
            "cls_pw": 2.0,
            "obj_pw": 1.0,
            "anchor_t": 2.91,
            "fl_gamma": 0.0,
            "label_smoothing": 0.0,
        }
    )


def test_scratch_low_values_are_what_the_real_train_py_read():
    # opt.hyp of a checkpoint the real train.py wrote (tests/fixtures/yolov5/checkpoints.json) is hyp.scratch-low as
    # loaded, before the gain scaling; every default here is derived from ULTRALYTICS_DEFAULTS and LOSS_KEYS.
    opt = fixture_json("checkpoints.json")["tiny_official_train.pt"]["opt"]
    file_names = {"cls_pw": "cls_pw"}  # the loss's key -> hyp.scratch-low's (YOLOv5Loss reads YOLOv5's names)
    expected = {k: opt["hyp"][file_names.get(k, k)] for k in recipe.SCRATCH_LOW_LOSS if k != "label_smoothing"}
    assert recipe.SCRATCH_LOW_LOSS == {**expected, "label_smoothing": opt["label_smoothing"]}
    shared = [k for k in recipe.ULTRALYTICS_DEFAULTS if k in opt["hyp"] and k != "cls_pw"]  # cls_pw: another meaning
    assert {k: recipe.ULTRALYTICS_DEFAULTS[k] for k in shared} == {k: opt["hyp"][k] for k in shared}
    # at train.py's reference point (80 classes, 640 px, 3 levels) the scaled gains are the unscaled ones
    args = SimpleNamespace(box=recipe.ULTRALYTICS_DEFAULTS["box"], cls=recipe.ULTRALYTICS_DEFAULTS["cls"], imgsz=640)
    assert recipe.loss_hyp(args, None, nc=80, nl=3) == recipe.SCRATCH_LOW_LOSS


def test_defaults_fill_only_the_keys_the_user_did_not_set():
    args = SimpleNamespace(optimizer="auto", lr0=0.02, box=7.5, mosaic=1.0, close_mosaic=10)
    changed = recipe.apply_defaults(args, user_keys={"lr0"})
    assert (args.optimizer, args.lr0, args.box, args.close_mosaic) == ("SGD", 0.02, 0.05, 0)
    assert set(changed) >= {"optimizer", "box", "close_mosaic"} and "lr0" not in changed and "mosaic" not in changed


@pytest.mark.parametrize(
    ("hyp", "match"),
    [({"objj": 1.0}, "unknown YOLOv5 loss key 'objj'. Did you mean obj"), ({"anchor_t": "4"}, "must be a number")],
)
def test_bad_loss_keys_fail_in_one_line(hyp, match):
    with pytest.raises(ValueError, match=match):
        recipe.check_hyp(hyp, "train")


def test_loss_keys_go_into_the_classic_model_dict_and_are_refused_for_other_models():
    classic = YOLO("yolov5n-classic.yaml")
    set_yolov5_loss_keys(classic, {"obj": 0.5, "autoanchor": False}, "yolov5n-classic.yaml")
    assert classic.model.yaml["hyp"] == {"obj": 0.5, "autoanchor": False}
    with pytest.raises(ValueError, match="obj=0.5: YOLOv5 loss settings apply to classic YOLOv5 models only"):
        set_yolov5_loss_keys(YOLO("yolov8n.yaml"), {"obj": 0.5}, "yolov8n.yaml")


def test_the_train_tool_accepts_the_loss_keys():
    from attnyolo.commands import train
    from attnyolo.utils.cli import parse_kv_args, ultralytics_keys

    args = parse_kv_args(
        ["anchor_t=3.0", "autoanchor=false"], train.DEFAULTS, "", ultralytics_keys() | set(recipe.LOSS_KEYS)
    )
    assert args["anchor_t"] == 3.0 and args["autoanchor"] is False


def _fake_trainer(tmp_path, resume, labels, **args):
    from ultralytics.cfg import get_cfg

    cfg = get_cfg(overrides={"imgsz": 64, "resume": resume, **args})
    loader = SimpleNamespace(dataset=SimpleNamespace(labels=labels))
    return SimpleNamespace(args=cfg, save_dir=tmp_path, train_loader=loader)


def test_resuming_keeps_the_runs_arguments_and_anchors(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov5n-classic.yaml", nc=3, verbose=False)
    anchors = model.model[-1].anchors.clone()
    tiny = [{"shape": (64, 64), "bboxes": [[0.5, 0.5, 0.05, 0.9]]}] * 4  # a shape no default anchor recalls
    trainer = _fake_trainer(tmp_path, "last.pt", tiny, lr0=0.02)
    trainer.model = model
    recipe.prepare_model(trainer, model, user_keys={"resume"})
    assert trainer.args.optimizer == "auto" and trainer.args.box == 7.5  # the checkpoint's arguments, untouched
    recipe.before_training(trainer)
    assert torch.equal(model.model[-1].anchors, anchors) and not hasattr(trainer, "autoanchor_report")
    # a new run on the same labels: YOLOv5's defaults, and AutoAnchor replaces anchors that recall nothing
    trainer = _fake_trainer(tmp_path, False, tiny)
    trainer.model = model
    recipe.prepare_model(trainer, model, user_keys=set())
    assert (trainer.args.optimizer, trainer.args.box, trainer.args.warmup_bias_lr) == ("SGD", 0.05, 0.1)
    recipe.before_training(trainer)
    assert trainer.autoanchor_report.replaced and not torch.equal(model.model[-1].anchors, anchors)
    # hyp.scratch-low scaled as train.py scales it for nc=3 at imgsz 64 with 3 levels: box 0.05 · 3/3,
    # cls 0.5 · 3/80 · 3/3, obj 1.0 · (64/640)² · 3/3; the other loss keys at hyp.scratch-low's values
    assert model.yolov5_hyp == pytest.approx(
        {
            "box": 0.05,
            "cls": 0.01875,
            "obj": 0.01,
            "cls_pw": 1.0,
            "obj_pw": 1.0,
            "anchor_t": 4.0,
            "fl_gamma": 0.0,
            "label_smoothing": 0.0,
        }
    )


def test_the_sample_recipe_has_a_classic_overlay_and_other_data_get_none(tmp_path):
    from attnyolo.engine.trainer import DEFAULT_RECIPE, base_recipe
    from attnyolo.utils.paths import sample_data_dir

    sample = sample_data_dir() / "data.yaml"
    classic, v8 = YOLO("yolov5n-classic-CoordAtt.yaml").model, YOLO("yolov8n.yaml").model
    # docs/yolov5.md's measured classic run: the sample recipe (AdamW lr0 0.003, batch 4 with nbs 4, 160 px, warmup
    # 1 epoch, mosaic closed for the last 5, no per-epoch validation) with 30 epochs and no mosaic
    settings = base_recipe(sample, classic)
    assert (settings["epochs"], settings["mosaic"]) == (30, 0.0)
    assert {k: settings[k] for k in ("optimizer", "lr0", "batch", "nbs", "imgsz", "warmup_epochs", "val")} == {
        "optimizer": "AdamW",
        "lr0": 0.003,
        "batch": 4,
        "nbs": 4,
        "imgsz": 160,
        "warmup_epochs": 1,
        "val": False,
    }
    assert set(settings) == set(DEFAULT_RECIPE) | {"mosaic"}  # nothing else changes for classic models
    # docs/results.md: the anchor-free models train 15 epochs with mosaic (Ultralytics' default) on the sample data
    assert base_recipe(sample, v8) == base_recipe(sample) == DEFAULT_RECIPE
    assert DEFAULT_RECIPE["epochs"] == 15 and "mosaic" not in DEFAULT_RECIPE
    assert base_recipe(tmp_path / "data.yaml", classic) == {}
