"""The YOLOX loss equals the official ``YOLOXHead.get_losses``, term by term, with the same SimOTA assignments.

tests/fixtures/yolox/loss_cases.* hold what the official code computed for YOLOX-Nano with the seeded weights in train
mode on a batch of 3 images (128x160, N = 420 points) in five cases: one GT per image; overlapping GTs with dynamic
k = 2 and contested points; an image without GTs; the overlap case with the L1 term on; no GT at all. The official
decisions closest to a flip are 1e-3 away (case 2, image 0: top-10 IoU sum 2.0010, k = 2). loss_cases_s.json holds the
same cases for YOLOX-S.
"""

import json

import numpy as np
import pytest
import torch
from official_helpers import FIXTURES, loss_cases, stored
from ultralytics import YOLO

from attnyolo.yolox.loss import YOLOXLoss

CASES = ["case1_one_gt", "case2_overlap", "case3_empty_image", "case4_overlap_l1", "case5_all_empty"]
H, W = 128, 160
LEVELS = [(16, 20), (8, 10), (4, 5)]  # strides 8, 16, 32


def batch_of(case: str, data: dict) -> dict:
    """The case's labels as an Ultralytics batch (normalised xywh), GTs of each image in the official row order."""
    rows = [(b, row) for b, image in enumerate(data[f"{case}_labels"]) for row in image if row.sum() > 0]
    scale = np.array([W, H, W, H], dtype=np.float32)
    return {
        "batch_idx": torch.tensor([b for b, _ in rows], dtype=torch.float32),
        "cls": torch.tensor([[row[0]] for _, row in rows], dtype=torch.float32).reshape(-1, 1),
        "bboxes": torch.tensor(np.array([row[1:] / scale for _, row in rows]), dtype=torch.float32).reshape(-1, 4),
    }


def official_losses(case: str, data: dict) -> dict[str, float]:
    """total, iou (x5), obj, cls, l1 as the official get_losses returned them."""
    total, iou, obj, cls, l1, _ = data[f"{case}_losses"]
    return {"total": total, "iou_loss": iou, "obj_loss": obj, "cls_loss": cls, "l1_loss": l1}


def assert_same_assignment(assignment, case: str, data: dict, iou_atol: float = 1e-5) -> None:
    """Foreground points, matched GT, IoU targets and dynamic k of every image equal the official ones."""
    result = assignment.result
    for b in range(3):
        fg = result.fg_mask[b]
        np.testing.assert_array_equal(fg.nonzero().squeeze(1).numpy(), data[f"{case}_fg_idx_b{b}"])
        np.testing.assert_array_equal(result.gt_index[b][fg].numpy(), data[f"{case}_matched_gt_b{b}"])
        np.testing.assert_allclose(result.iou[b][fg].numpy(), data[f"{case}_iou_target_b{b}"], rtol=0, atol=iou_atol)
        if f"{case}_dynamic_k_b{b}" in data:
            k = result.dynamic_k[b][assignment.gt_mask[b]].numpy()
            np.testing.assert_array_equal(k, data[f"{case}_dynamic_k_b{b}"])


def assert_same_losses(terms: dict, case: str, data: dict) -> None:
    """Every term and the total within 1e-4 relative (exact zeros where YOLOX has none)."""
    expected = official_losses(case, data)
    got = {k: float(v) for k, v in terms.items()}
    got["total"] = sum(got.values())
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


@pytest.fixture(scope="module")
def data():
    return stored("loss_cases")


@pytest.mark.parametrize("case", CASES)
def test_criterion_on_the_official_head_outputs(case, data):
    # The head outputs get_losses received (decoded boxes = (t + grid) * stride, exp(t) * stride; raw t for L1),
    # fed to our criterion as our head hands them over: no network involved.
    raw = torch.from_numpy(data["raw_reg"])
    preds = torch.from_numpy(data["preds"])
    grid = torch.from_numpy(data["grid_xy_stride"].astype(np.float32))
    torch.testing.assert_close((raw[..., :2] + grid[:, :2]) * grid[:, 2:], preds[..., :2])  # the decode we assume
    head = {
        "boxes": raw.permute(0, 2, 1),
        "obj": preds[..., 4:5].permute(0, 2, 1),
        "scores": preds[..., 5:].permute(0, 2, 1),
        "feats": [torch.zeros(3, 1, h, w) for h, w in LEVELS],
    }
    model = type("Model", (), {"model": [type("Head", (), {"stride": torch.tensor([8.0, 16.0, 32.0]), "nc": 80})]})
    criterion = YOLOXLoss(model, use_l1=loss_cases()["cases"][case]["use_l1"])
    batch = batch_of(case, data)
    assert_same_assignment(criterion.assign(head, batch), case, data)
    assert_same_losses(criterion.terms(head, batch), case, data)


@pytest.mark.parametrize("case", CASES)
def test_converted_model_loss_in_train_mode_equals_the_official_loss(converted_checkpoint, case, data):
    # The seeded official weights, converted; the same images in Ultralytics' convention (RGB, 0..1); model.loss as
    # Ultralytics' trainer calls it. BatchNorm runs on batch statistics, as in YOLOX's training forward.
    model = YOLO(str(converted_checkpoint("nano"))).model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    images = torch.from_numpy(data["images"][:, ::-1].copy()).float() / 255
    batch = {"img": images, **batch_of(case, data)}
    model.criterion = model.init_criterion()
    model.criterion.use_l1 = loss_cases()["cases"][case]["use_l1"]
    loss, items = model.loss(batch)
    assert_same_losses(items, case, data)
    total = official_losses(case, data)["total"]
    assert float(loss.detach().sum()) == pytest.approx(3 * total, rel=1e-4)  # Ultralytics' convention: x batch size
    loss.sum().backward()  # the terms carry gradients to the network
    assert model.model[0].conv.conv.weight.grad.abs().sum() > 0
    with torch.no_grad():
        # through the network the predicted boxes carry float noise: IoU targets agree to 1e-4
        assert_same_assignment(model.criterion.assign(model(images), batch), case, data, iou_atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_converted_yolox_s_loss_equals_the_official_loss(converted_checkpoint, case, data):
    expected = json.loads((FIXTURES / "loss_cases_s.json").read_text())["cases"][case]
    model = YOLO(str(converted_checkpoint("s"))).model.train()
    images = torch.from_numpy(data["images"][:, ::-1].copy()).float() / 255
    batch = {"img": images, **batch_of(case, data)}
    model.criterion = model.init_criterion()
    model.criterion.use_l1 = expected["use_l1"]
    with torch.no_grad():
        _, items = model.loss(batch)
        assignment = model.criterion.assign(model(images), batch)
    total, iou, obj, cls, l1, _ = expected["losses"]
    got = {k: float(v) for k, v in items.items()}
    assert sum(got.values()) == pytest.approx(total, rel=1e-4)
    for name, value in {"iou_loss": iou, "obj_loss": obj, "cls_loss": cls, "l1_loss": l1}.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    for b, image in enumerate(expected["images"]):
        fg = assignment.result.fg_mask[b]
        assert fg.nonzero().squeeze(1).tolist() == image["fg_idx"]
        assert assignment.result.gt_index[b][fg].tolist() == image["matched_gt"]
        np.testing.assert_allclose(assignment.result.iou[b][fg].numpy(), image["iou_target"], rtol=0, atol=1e-4)
