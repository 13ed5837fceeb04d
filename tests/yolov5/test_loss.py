"""YOLOv5's loss: build_targets and CIoU worked out by hand, and every case the real ComputeLoss computed."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from yolov5_helpers import FIXTURES, fixture_json, fixture_npz, load_classic

import attnyolo  # noqa: F401
from attnyolo.yolov5.loss import YOLOv5Loss, batch_targets, build_targets, ciou
from attnyolo.yolov5.recipe import SCRATCH_LOW_LOSS

CASES = fixture_json("loss.json")["cases"]
LOSS_KEYS = ("box", "obj", "cls", "cls_pw", "obj_pw", "anchor_t", "fl_gamma")


def case_hyp(case: dict) -> dict:
    return {**{k: case["hyp"][k] for k in LOSS_KEYS}, "label_smoothing": case["hyp"].get("label_smoothing", 0.0)}


@pytest.fixture(scope="module")
def models():
    """Each fixture checkpoint's model, loaded once (train-mode forwards do not depend on running statistics)."""
    return {name: load_classic(name)[0] for name in ("tiny_official_stripped.pt", "tiny_ca_fork.pt")}


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(fixture_npz("loss.npz")["images_u8"]).float() / 255


# ------------------------------------------------------------------------------------------------- worked by hand
def test_ciou_by_hand():
    # identical boxes: IoU 1, no centre distance, same aspect -> 1 (up to eps)
    assert float(ciou(torch.tensor([[5.0, 5.0, 2.0, 4.0]]), torch.tensor([[5.0, 5.0, 2.0, 4.0]]))) == pytest.approx(1.0)
    # side by side, same size: IoU 0; enclosing box 5 x 2 -> c^2 = 29; centre distance^2 = 9; v = 0
    value = ciou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[3.0, 0.0, 2.0, 2.0]]))
    assert float(value) == pytest.approx(-9 / 29, rel=1e-6)
    # same centre, 2x2 inside 4x2: IoU 4/8; c^2 = 16 + 4; rho = 0; v = 4/pi^2 (atan 2 - atan 1)^2, alpha = v/(v+0.5)
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(1)) ** 2
    value = ciou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[0.0, 0.0, 4.0, 2.0]]))
    assert float(value) == pytest.approx(0.5 - v * v / (v + 0.5), rel=1e-5)


def test_build_targets_one_target_by_hand():
    # One 8x8 grid, one anchor of 2x2 cells and one of 8x8. Target: class 1 in image 0, centre (0.3, 0.6), size
    # 0.25 x 0.25 -> in grid units centre (2.4, 4.8), size 2 x 2.
    shapes = [(1, 2, 8, 8, 7)]
    anchors = torch.tensor([[[2.0, 2.0], [8.0, 8.0]]])
    targets = torch.tensor([[0.0, 1.0, 0.3, 0.6, 0.25, 0.25]])
    (t,) = build_targets(shapes, targets, anchors, anchor_t=4.0)
    # anchor 0 matches (ratio 1); anchor 1 does not (ratio 4 is not < 4).
    # x: frac 0.4 < 0.5 and x > 1 -> the left neighbour (gi 1); y: frac 0.8, so from the far edge (8 - 4.8 = 3.2,
    # frac 0.2 < 0.5) -> the lower neighbour (gj 5). Order: own cell, x-1, y-1 (none), x+1 (none), y+1.
    assert t.anchor.tolist() == [0, 0, 0]
    assert list(zip(t.gi.tolist(), t.gj.tolist())) == [(2, 4), (1, 4), (2, 5)]
    expected = [[0.4, 0.8, 2, 2], [1.4, 0.8, 2, 2], [0.4, -0.2, 2, 2]]  # centre from the cell's corner, size; cells
    assert t.box.flatten().tolist() == pytest.approx(sum(expected, []), abs=1e-5)
    assert t.cls.tolist() == [1, 1, 1] and t.image.tolist() == [0, 0, 0]
    assert t.anchor_wh.tolist() == [[2, 2]] * 3


def test_build_targets_clamps_a_centre_on_the_far_border_before_forming_the_box():
    # x = 1.0 exactly: the own cell would be column 8 of an 8-wide grid; YOLOv5 clamps it to 7 first, so the box
    # target's x is 8 - 7 = 1.
    (t,) = build_targets(
        [(1, 1, 8, 8, 6)], torch.tensor([[0.0, 0.0, 1.0, 0.5625, 0.25, 0.25]]), torch.ones(1, 1, 2) * 2, 4.0
    )
    own = (t.gi == 7) & (t.gj == 4)
    assert own.any() and t.box[own][0, 0].item() == pytest.approx(1.0)


def test_build_targets_no_targets_gives_empty_levels():
    levels = build_targets([(2, 3, 4, 4, 7), (2, 3, 2, 2, 7)], torch.zeros(0, 6), torch.ones(2, 3, 2), 4.0)
    assert [len(t) for t in levels] == [0, 0]


def test_focal_modulation_follows_its_formula():
    from attnyolo.yolov5.loss import _bce

    logits, target = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0])
    p = logits.sigmoid()
    p_t = target * p + (1 - target) * (1 - p)
    alpha = target * 0.25 + (1 - target) * 0.75
    expected = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * alpha * (1 - p_t) ** 1.5).mean()
    assert float(_bce(logits, target, 1.0, 1.5)) == pytest.approx(float(expected), rel=1e-6)
    assert float(_bce(logits, target, 1.0, 0.0)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, target))
    )


# -------------------------------------------------------------------------------- against the real ComputeLoss
@pytest.mark.parametrize("name", ["i", "ii"])
def test_build_targets_equal_the_real_code(models, images, name):
    case, arrays = CASES[name], fixture_npz("loss.npz")
    model = models[case["checkpoint"]].train()
    p = model(images)["raw"]
    levels = YOLOv5Loss(model, case_hyp(case)).build_targets(p, torch.from_numpy(arrays[f"{name}_targets"]))
    assert [len(t) for t in levels] == case["build_targets_counts_per_level"]
    for i, t in enumerate(levels):
        key = f"{name}_bt_L{i}"
        indices = np.stack([t.image.numpy(), t.anchor.numpy(), t.gj.numpy(), t.gi.numpy()])
        assert (indices == arrays[f"{key}_indices_b_a_gj_gi"]).all()
        assert (t.cls.numpy() == arrays[f"{key}_tcls"]).all()
        assert np.allclose(t.box.numpy(), arrays[f"{key}_tbox"], atol=1e-6)
        assert np.allclose(t.anchor_wh.numpy(), arrays[f"{key}_anch"], atol=1e-6)


@pytest.mark.parametrize("name", ["i", "ii", "iii", "iv", "v"])
def test_loss_equals_the_real_code(models, images, name):
    case = CASES[name]
    model = models[case["checkpoint"]].train()  # BatchNorm on batch statistics, as the fixture ran
    with torch.no_grad():
        p = model(images)["raw"]
    targets = torch.from_numpy(fixture_npz("loss.npz")[f"{name}_targets"])
    loss, items = YOLOv5Loss(model, case_hyp(case)).compute(p, targets)
    assert loss.shape == (1,) and items.shape == (3,)
    assert float(loss) == pytest.approx(float(case["loss"]), rel=1e-4)
    for got, expected in zip(items.tolist(), case["items_box_obj_cls"]):
        assert got == pytest.approx(float(expected), rel=1e-4, abs=1e-12)


def test_loss_on_stored_logits_equals_the_real_code(models):
    case, arrays = CASES["vi"], fixture_npz("loss.npz")
    model = models["tiny_ca_fork.pt"]
    hyp = {**SCRATCH_LOW_LOSS, **{k: case["hyp"][k] for k in LOSS_KEYS if k in case.get("hyp", {})}}
    p = [torch.from_numpy(arrays[f"vi_p_L{i}"]) for i in range(3)]
    loss, items = YOLOv5Loss(model, hyp).compute(p, torch.from_numpy(arrays["vi_targets"]))
    assert float(loss) == pytest.approx(float(case["loss"]), rel=1e-4)
    assert items.tolist() == pytest.approx([float(v) for v in case["items_box_obj_cls"]], rel=1e-4)


def test_model_loss_on_an_ultralytics_batch_uses_scratch_low_gains(models, images):
    # Case i used hyp.scratch-low's gains unscaled; an Ultralytics batch of the same targets must give its loss.
    case = CASES["i"]
    assert case_hyp(case) == {k: SCRATCH_LOW_LOSS[k] for k in case_hyp(case)}
    targets = torch.from_numpy(fixture_npz("loss.npz")["i_targets"])
    batch = {"img": images, "batch_idx": targets[:, 0], "cls": targets[:, 1:2], "bboxes": targets[:, 2:]}
    assert torch.equal(batch_targets(batch), targets)
    model = models["tiny_official_stripped.pt"].train()
    model.criterion = None
    loss, items = model.loss(batch)
    loss = loss.detach()
    assert list(items) == ["box_loss", "obj_loss", "cls_loss"]
    assert float(loss) == pytest.approx(float(case["loss"]), rel=1e-4)
    assert [float(v) for v in items.values()] == pytest.approx([float(v) for v in case["items_box_obj_cls"]], rel=1e-4)
    # validators pass (inference output, raw) tuples
    model.eval()
    with torch.no_grad():
        y = model(images)
    assert set(model.loss(batch, y)[1]) == {"box_loss", "obj_loss", "cls_loss"}


def test_model_loss_of_a_checkpoint_trained_here_uses_the_gains_it_was_trained_with(models, images, tmp_path):
    # docs/yolov5.md: the trainer stores its scaled gains on the model (recipe.prepare_model/before_training); case ii
    # is the real ComputeLoss with the gains train.py scales for this model (nc=3, 160 px, 3 levels)
    import copy

    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    from attnyolo.engine.importing import native_checkpoint
    from attnyolo.yolov5 import recipe

    case = CASES["ii"]
    args = get_cfg(overrides={"imgsz": 160})
    recipe.apply_defaults(args, user_keys={"imgsz"})  # hyp.scratch-low for the keys a user leaves unset
    trained = copy.deepcopy(models["tiny_ca_fork.pt"])
    trained.yolov5_hyp = recipe.loss_hyp(args, None, nc=3, nl=3)
    assert {k: trained.yolov5_hyp[k] for k in ("box", "obj", "cls")} == pytest.approx(
        {"box": case["hyp"]["box"], "obj": case["hyp"]["obj"], "cls": case["hyp"]["cls"]}
    )
    path = tmp_path / "best.pt"
    torch.save(native_checkpoint(trained), path)  # the weights were fp16 already: nothing is rounded
    targets = torch.from_numpy(fixture_npz("loss.npz")["ii_targets"])
    batch = {"img": images, "batch_idx": targets[:, 0], "cls": targets[:, 1:2], "bboxes": targets[:, 2:]}
    reloaded = YOLO(str(path)).model.float().train()
    loss, items = reloaded.loss(batch)
    assert float(loss.detach()) == pytest.approx(float(case["loss"]), rel=1e-4)
    assert [float(v) for v in items.values()] == pytest.approx([float(v) for v in case["items_box_obj_cls"]], rel=1e-4)
    # imported from the fork's own file (no gains stored): hyp.scratch-low's, unscaled, so another loss
    imported = YOLO(str(FIXTURES / "tiny_ca_fork.pt")).model.float().train()
    other, _ = imported.loss(batch)
    assert {k: imported.criterion.hyp[k] for k in SCRATCH_LOW_LOSS} == SCRATCH_LOW_LOSS
    assert float(other.detach()) != pytest.approx(float(case["loss"]), rel=1e-2)


def test_a_single_class_model_has_no_class_loss(models, images):
    model = models["tiny_ca_fork.pt"].train()
    head = model.model[-1]
    head.nc = 1  # only the loss's rule is under test; the logits keep their width
    try:
        with torch.no_grad():
            p = model(images)["raw"]
        _, items = YOLOv5Loss(model).compute(p, torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.2, 0.2]]))
    finally:
        head.nc = 3
    assert items[2] == 0 and items[0] > 0
