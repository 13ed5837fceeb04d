"""AutoAnchor: YOLOv5's recall metric on the label sets the real code scored, k-means and the keep-if-better rule."""

import numpy as np
import pytest
import torch
from yolov5_helpers import fixture_json

import attnyolo  # noqa: F401
from attnyolo.yolov5.autoanchor import anchor_metrics, check_anchors, kmean_anchors, kmeans, label_sizes
from attnyolo.yolov5.head import YOLOv5Detect

AA = fixture_json("autoanchor.json")


def dataset_labels(name: str) -> list[dict]:
    """A label set of the fixture in Ultralytics' dataset form (shape is (h, w), boxes normalised xywh)."""
    return [
        {"shape": (int(s["shape_wh"][1]), int(s["shape_wh"][0])), "bboxes": np.array(s["labels_cls_x_y_w_h"])[:, 1:]}
        for s in AA["label_sets"][name]
    ]


def default_head() -> YOLOv5Detect:
    anchors = np.array(AA["default_anchors_px"]).reshape(3, 6).tolist()
    head = YOLOv5Detect(80, anchors, ch=(4, 4, 4))
    head.stride = torch.tensor([8.0, 16.0, 32.0])
    head.anchors_to_grid_units()
    return head


@pytest.mark.parametrize("name", ["good", "poor"])
def test_recall_metric_equals_the_real_code_at_scale_one(name):
    wh = label_sizes(dataset_labels(name), AA["imgsz"])  # no random scale: the fixture's scale-1 numbers
    assert len(wh) == AA["sets"][name]["n_labels"]
    bpr, aat = anchor_metrics(np.array(AA["default_anchors_px"]), wh, AA["thr"])
    assert bpr == pytest.approx(float(AA["sets"][name]["scale1_bpr"]), abs=1e-6)
    assert aat == pytest.approx(float(AA["sets"][name]["scale1_aat"]), abs=1e-5)


def test_recall_metric_by_hand():
    # anchor 10x10; label 10x20: worst ratio 0.5 > 1/4 -> recalled; label 100x100: ratio 0.1 -> not
    assert anchor_metrics(np.array([[10.0, 10.0]]), np.array([[10.0, 20.0], [100.0, 100.0]]), 4.0) == (0.5, 0.5)


def test_good_anchors_are_kept():
    head = default_head()
    before = head.anchors.clone()
    report = check_anchors(head, dataset_labels("good"), AA["imgsz"], AA["thr"], seed=0)
    assert not report.replaced and report.new_bpr is None and report.bpr > 0.98
    assert torch.equal(head.anchors, before)
    assert "kept" in report.summary()


def test_poor_anchors_are_replaced_by_fitted_ones_with_higher_recall():
    head = default_head()
    labels = dataset_labels("poor")
    report = check_anchors(head, labels, AA["imgsz"], AA["thr"], seed=0)
    assert report.replaced and report.new_bpr > report.bpr and report.bpr < 0.98
    pixels = (head.anchors * head.stride.view(-1, 1, 1)).view(-1, 2)
    assert np.allclose(pixels.numpy(), np.array(report.anchors), rtol=1e-5)
    # stored in grid units, ordered by area within the fitted set, and the recall is what the report says
    area = pixels.prod(1)
    assert (area[1:] >= area[:-1]).all()
    bpr, _ = anchor_metrics(pixels, label_sizes(labels, AA["imgsz"]), AA["thr"])
    assert bpr >= report.bpr
    # the real code's fit on the same labels also reached a BPR of 1.0 at scale 1
    real = np.array(AA["kmean_anchors_poor_seed0"])
    assert anchor_metrics(real, label_sizes(labels, AA["imgsz"]), AA["thr"])[0] == pytest.approx(1.0)


def test_fitted_anchors_that_are_no_better_are_not_kept(monkeypatch):
    from attnyolo.yolov5 import autoanchor

    head = default_head()
    before = head.anchors.clone()
    monkeypatch.setattr(autoanchor, "kmean_anchors", lambda *a, **k: np.full((9, 2), 1000.0, np.float32))
    report = check_anchors(head, dataset_labels("poor"), AA["imgsz"], AA["thr"])
    assert not report.replaced and report.new_bpr < report.bpr and torch.equal(head.anchors, before)


def test_kmeans_finds_two_obvious_clusters():
    rng = np.random.default_rng(0)
    obs = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    centres = kmeans(obs, 2, rng)
    assert sorted(centres[:, 0].round().tolist()) == [0.0, 5.0]


def test_kmean_anchors_returns_n_anchors_sorted_by_area_and_is_repeatable():
    wh = label_sizes(dataset_labels("poor"), AA["imgsz"])
    a = kmean_anchors(wh, 9, AA["imgsz"], AA["thr"], gen=200, seed=3)
    b = kmean_anchors(wh, 9, AA["imgsz"], AA["thr"], gen=200, seed=3)
    assert a.shape == (9, 2) and a.dtype == np.float32 and np.array_equal(a, b)
    assert (np.diff(a.prod(1)) >= 0).all() and (a >= 2.0).all()
