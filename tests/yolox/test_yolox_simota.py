"""SimOTA on hand-built cases whose answer follows from the algorithm's definition, and batched == per-image."""

import math

import pytest
import torch

from attnyolo.yolox.loss import pad_targets
from attnyolo.yolox.simota import (
    LEGACY_RULES,
    OFFICIAL_RULES,
    geometry,
    get_rules,
    simota_assign,
    simota_assign_per_image,
)

ASSIGNERS = [simota_assign, simota_assign_per_image]


def box(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def case(points, strides, preds, gts, labels, scores=None, nc=2):
    """One image: hand-placed points (not a grid), predicted boxes per point, GT boxes."""
    n = len(points)
    scores = torch.full((1, n, nc), 0.5) if scores is None else torch.tensor(scores)[None]
    return {
        "pred_boxes": torch.tensor(preds, dtype=torch.float32)[None],
        "pred_scores": scores,
        "points": torch.tensor(points, dtype=torch.float32),
        "strides": torch.tensor(strides, dtype=torch.float32),
        "gt_boxes": torch.tensor(gts, dtype=torch.float32)[None],
        "gt_labels": torch.tensor(labels)[None],
        "gt_mask": torch.ones(1, len(gts), dtype=torch.bool),
    }


def test_official_candidates_are_strictly_within_one_and_a_half_strides_of_the_centre():
    points = torch.tensor([[50.0, 50.0], [61.0, 50.0], [63.0, 50.0], [100.0, 58.0], [130.0, 50.0]])
    strides = torch.full((5,), 8.0)
    gt = torch.tensor([[[45.0, 45.0, 55.0, 55.0], [80.0, 40.0, 140.0, 60.0]]])  # small box; wide box
    cand, relation = geometry(points, strides, gt)
    assert torch.equal(cand, relation)  # the official rules penalise exactly the non-candidates
    # small box, centre (50, 50), radius 12: 61 is inside the square, 63 is not (13 > 12)
    assert cand[0, 0].tolist() == [True, True, False, False, False]
    # wide box, centre (110, 50): (100, 58) is 10 and 8 px away; (130, 50) lies inside the box but 20 px away, and
    # there is no in-box rule any more
    assert cand[0, 1].tolist() == [False, False, False, True, False]
    # "strictly inside": a point exactly 1.5 strides away is out
    edge = geometry(torch.tensor([[62.0, 50.0]]), torch.tensor([8.0]), gt)[0]
    assert edge[0, :, 0].tolist() == [False, False]


def test_legacy_candidates_are_in_box_or_centre_and_only_both_escape_the_penalty():
    points = torch.tensor([[50.0, 50.0], [61.0, 50.0], [63.0, 50.0], [100.0, 58.0], [130.0, 50.0]])
    strides = torch.full((5,), 8.0)
    gt = torch.tensor([[[45.0, 45.0, 55.0, 55.0], [80.0, 40.0, 140.0, 60.0]]])
    cand, relation = geometry(points, strides, gt, LEGACY_RULES)  # radius 2.5 strides = 20 px
    # small box: inside the box only (50, 50); inside the 20 px square also 61 and 63
    assert cand[0, 0].tolist() == [True, True, True, False, False]
    assert relation[0, 0].tolist() == [True, False, False, False, False]
    # wide box: (100, 58) and (130, 50) lie inside it; only (100, 58) is also within 20 px of (110, 50)
    assert cand[0, 1].tolist() == [False, False, False, True, True]
    assert relation[0, 1].tolist() == [False, False, False, True, False]
    assert LEGACY_RULES.outside_cost == 1e5 and OFFICIAL_RULES.outside_cost == 1e6
    assert get_rules("0.3.0") is LEGACY_RULES and get_rules("official") is OFFICIAL_RULES
    with pytest.raises(ValueError, match="official, 0.3.0"):
        get_rules("2021")


@pytest.mark.parametrize("assign", ASSIGNERS)
def test_gt_with_one_candidate_gets_exactly_it(assign):
    # GT A's only candidate is point 0, whose prediction is poor (IoU 0.25). Point 1 predicts A's box perfectly but
    # lies outside A's prior; it is a candidate of GT B far away, so it takes part with the 1e6 penalty for A.
    gt_a, gt_b = box(4, 4, 8, 8), box(100, 100, 40, 40)
    inputs = case(
        points=[[4.0, 4.0], [100.0, 100.0]],
        strides=[8.0, 8.0],
        preds=[box(4, 4, 16, 16), gt_a],
        gts=[gt_a, gt_b],
        labels=[0, 1],
    )
    r = assign(**inputs)
    assert r.dynamic_k[0].tolist() == [1, 1]  # A: int(0.25 + 1.0) = 1; B: int(IoU(B, pred 1) ~ 0) -> max(1, 0)
    assert r.fg_mask[0].tolist() == [True, True]
    assert r.gt_index[0].tolist() == [0, 1]  # A keeps its only candidate despite the better box elsewhere
    assert r.iou[0, 0].item() == pytest.approx(64 / 256, abs=1e-4)


@pytest.mark.parametrize("assign", ASSIGNERS)
def test_point_claimed_by_two_gts_goes_to_the_cheaper(assign):
    # One point is the only candidate of both GTs (k = 1 each). Its box fits GT 0 better (IoU 0.64 vs 0.36) and the
    # class costs are equal (both GTs class 0), so the point must go to GT 0.
    pred = box(20, 20, 8, 8)
    gts = [box(20, 20, 10, 10), box(20, 20, 8 / 0.6, 8 / 0.6)]
    inputs = case(points=[[20.0, 20.0], [200.0, 200.0]], strides=[8.0, 8.0], preds=[pred, pred], gts=gts, labels=[0, 0])
    r = assign(**inputs)
    assert r.fg_mask[0].tolist() == [True, False]
    assert r.gt_index[0, 0].item() == 0
    assert r.iou[0, 0].item() == pytest.approx(0.64, abs=1e-4)
    # Swap which GT fits better: the point follows the lower cost.
    inputs["gt_boxes"] = inputs["gt_boxes"].flip(1)
    assert assign(**inputs).gt_index[0, 0].item() == 1


@pytest.mark.parametrize("assign", ASSIGNERS)
def test_contested_point_goes_to_the_cheapest_of_all_gts_even_one_that_did_not_take_it(assign):
    # Points P (20, 20) and Q (24, 20) lie within 12 px of every GT centre, so every (GT, point) pair is penalty-free;
    # equal classes and scores make the class cost equal, so a lower cost means a higher IoU. Boxes have height 10 at
    # y = 20; in x (IoU = overlap * 10 / union):
    #   pred P = [15, 25], pred Q = [17, 27]
    #   GT0 = [10, 22]: IoU with P 70 / 150 = 0.467, with Q 50 / 170 = 0.294 -> takes P
    #   GT1 = [10, 26]: IoU with P 100 / 160 = 0.625, with Q 90 / 170 = 0.529 -> takes P
    #   GT2 = [17, 27]: IoU with P 80 / 120 = 0.667, with Q 1 -> takes Q
    # Every k is 1 (no GT has two IoUs summing to 2). P is taken by GT0 and GT1, but the cheapest GT for P among all
    # GTs is GT2 (IoU 0.667), which took Q: YOLOX gives P to GT2, so GT2 ends with both points and GT0, GT1 with none.
    inputs = case(
        points=[[20.0, 20.0], [24.0, 20.0]],
        strides=[8.0, 8.0],
        preds=[box(20, 20, 10, 10), box(22, 20, 10, 10)],
        gts=[box(16, 20, 12, 10), box(18, 20, 16, 10), box(22, 20, 10, 10)],
        labels=[0, 0, 0],
    )
    r = assign(**inputs)
    assert r.dynamic_k[0].tolist() == [1, 1, 1]
    assert r.fg_mask[0].tolist() == [True, True]
    assert r.gt_index[0].tolist() == [2, 2]
    assert r.iou[0].tolist() == pytest.approx([80 / 120, 1.0], abs=1e-5)


@pytest.mark.parametrize("assign", ASSIGNERS)
def test_dynamic_k_counts_points_outside_the_gts_own_region(assign):
    # GT A (class 0) at (20, 20); GT B (class 1) at (104, 100), far away. Point P1 (20, 20) is A's only candidate and
    # predicts a box of IoU 0.5 with A. P2 (100, 100) and P3 (108, 100) are B's candidates but predict A's box
    # (IoU 1 and 0.9 with A, 0 with B). YOLOX's top-10 runs over every point in play, so A's k = int(0.5 + 1 + 0.9)
    # = 2, and A's second-cheapest point is P2 (penalty 1e6 plus 0, against 1e6 + 3 * -log 0.9 for P3): A takes a
    # point outside its own region. B's IoUs are all 0, k = 1; P3's score for class 1 (0.8 vs 0.2) makes it B's
    # cheapest point. No point is contested.
    a, b = box(20, 20, 10, 10), box(104, 100, 10, 10)
    inputs = case(
        points=[[20.0, 20.0], [100.0, 100.0], [108.0, 100.0]],
        strides=[8.0, 8.0, 8.0],
        preds=[box(20, 20, 20, 10), a, box(20, 20, 10, 9)],
        gts=[a, b],
        labels=[0, 1],
        scores=[[0.5, 0.5], [0.5, 0.2], [0.5, 0.8]],
    )
    r = assign(**inputs)
    assert r.dynamic_k[0].tolist() == [2, 1]
    assert r.fg_mask[0].tolist() == [True, True, True]
    assert r.gt_index[0].tolist() == [0, 0, 1]
    assert r.iou[0].tolist() == pytest.approx([0.5, 1.0, 0.0], abs=1e-5)


@pytest.mark.parametrize("assign", ASSIGNERS)
def test_class_cost_decides_between_equally_fitting_gts(assign):
    # Equal IoU for both GTs; the point is confident in class 1, so the class-1 GT is cheaper.
    pred = box(20, 20, 10, 10)
    gts = [box(18, 20, 10, 10), box(22, 20, 10, 10)]
    inputs = case(points=[[20.0, 20.0]], strides=[8.0], preds=[pred], gts=gts, labels=[0, 1], scores=[[0.05, 0.9]])
    assert assign(**inputs).gt_index[0, 0].item() == 1


@pytest.mark.parametrize("assign", ASSIGNERS)
def test_dynamic_k_equals_the_formula_and_each_gt_takes_k_points(assign):
    # A 6x6 grid of stride-8 points, one GT near the middle; predictions of decreasing quality away from it.
    gen = torch.Generator().manual_seed(3)
    ys, xs = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    points = (torch.stack((xs, ys), -1).reshape(-1, 2).float() + 0.5) * 8
    gt = torch.tensor(box(24.0, 24.0, 20.0, 16.0))
    jitter = torch.rand(36, 4, generator=gen) * 6 - 3
    preds = (gt + jitter).tolist()
    inputs = case(points=points.tolist(), strides=[8.0] * 36, preds=preds, gts=[gt.tolist()], labels=[0])
    r = assign(**inputs)

    # Independent evaluation of the formula: IoUs over the points in play (candidates), top-min(10, n), int, >= 1.
    cand = geometry(points, torch.full((36,), 8.0), gt[None])[0][0]
    ious = []
    for p, c in zip(preds, cand.tolist()):
        if c:
            ix = max(0.0, min(p[2], gt[2].item()) - max(p[0], gt[0].item()))
            iy = max(0.0, min(p[3], gt[3].item()) - max(p[1], gt[1].item()))
            inter = ix * iy
            union = (p[2] - p[0]) * (p[3] - p[1]) + 20 * 16 - inter
            ious.append(inter / union)
    expected_k = max(1, math.floor(sum(sorted(ious, reverse=True)[: min(10, len(ious))])))
    assert expected_k > 1  # the case exercises more than the max(1, .) floor
    assert r.dynamic_k[0, 0].item() == expected_k
    assert int(r.fg_mask.sum()) == expected_k  # one GT, no conflicts: exactly k points


@pytest.mark.parametrize("seed", range(4))
def test_batched_equals_per_image_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    b, nc, max_gt = 3, 5, 6
    ys, xs = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    p8 = (torch.stack((xs, ys), -1).reshape(-1, 2).float() + 0.5) * 8
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    p16 = (torch.stack((xs, ys), -1).reshape(-1, 2).float() + 0.5) * 16
    points, strides = torch.cat((p8, p16)), torch.cat((torch.full((64,), 8.0), torch.full((16,), 16.0)))
    n = len(points)
    size = (torch.rand(b, n, 2, generator=gen) * 2 + 0.5) * strides[:, None]
    centre = points + (torch.rand(b, n, 2, generator=gen) - 0.5) * strides[:, None]
    wh = torch.rand(b, max_gt, 2, generator=gen) * 30 + 6
    xy = torch.rand(b, max_gt, 2, generator=gen) * (64 - wh) + wh / 2
    counts = torch.tensor([0, 3, max_gt])  # an image without GTs, a padded one, a full one
    inputs = {
        "pred_boxes": torch.cat((centre - size / 2, centre + size / 2), -1),
        "pred_scores": torch.rand(b, n, nc, generator=gen),
        "points": points,
        "strides": strides,
        "gt_boxes": torch.cat((xy - wh / 2, xy + wh / 2), -1),
        "gt_labels": torch.randint(0, nc, (b, max_gt), generator=gen),
        "gt_mask": torch.arange(max_gt)[None] < counts[:, None],
    }
    got, ref = simota_assign(**inputs), simota_assign_per_image(**inputs)
    assert torch.equal(got.fg_mask, ref.fg_mask)
    assert torch.equal(got.gt_index[got.fg_mask], ref.gt_index[ref.fg_mask])
    assert torch.equal(got.dynamic_k, ref.dynamic_k)
    torch.testing.assert_close(got.iou, ref.iou)
    assert not got.fg_mask[0].any() and got.fg_mask[1:].any()
    assert (got.gt_index[got.fg_mask] < max_gt).all()
    # a padded GT slot never receives a point
    assert not ((got.gt_index[1] >= 3) & got.fg_mask[1]).any()


def test_no_gts_at_all():
    r = simota_assign(
        torch.rand(2, 5, 4), torch.rand(2, 5, 3), torch.rand(5, 2), torch.ones(5), torch.zeros(2, 0, 4),
        torch.zeros(2, 0).long(), torch.zeros(2, 0, dtype=torch.bool),
    )  # fmt: skip
    assert not r.fg_mask.any() and r.dynamic_k.shape == (2, 0)


def test_pad_targets_groups_labels_by_image_in_pixels():
    batch = {
        "batch_idx": torch.tensor([1.0, 0.0, 1.0]),  # deliberately not grouped
        "cls": torch.tensor([[2.0], [0.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.25, 0.5, 0.5, 1.0], [0.75, 0.25, 0.1, 0.1]]),
    }
    labels, boxes, mask = pad_targets(batch, 3, torch.tensor([100.0, 200.0]))  # h=100, w=200
    assert mask.tolist() == [[True, False], [True, True], [False, False]]
    assert labels[1].tolist() == [2, 1] and labels[0, 0].item() == 0
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.0, 0.0, 100.0, 100.0]))
    torch.testing.assert_close(boxes[1, 0], torch.tensor([80.0, 30.0, 120.0, 70.0]))
