"""SimOTA label assignment (YOLOX: Exceeding YOLO Series in 2021, arXiv 2107.08430, Sec. 2.2), batched over images.

Source of the rules: github Megvii-BaseDetection/YOLOX, ``yolox/models/yolo_head.py`` (``get_assignments``,
``get_geometry_constraint``, ``simota_matching``) at commit 6ddff4824372906469a7fae2dc3206c7aa4bbaee. For every
ground-truth box (GT) and prediction point, with the point's centre at ``(grid + 0.5) * stride``:

1. geometry: a point is a *candidate* of a GT when its centre lies strictly inside the square of half-side
   ``1.5 * stride`` around the GT centre (no in-box test); points that are a candidate of no GT of their image take
   no part in that image's assignment;
2. cost = class BCE + 3 * (-log(IoU + 1e-8)) + 1e6 * (point is not a candidate of this GT), the class BCE being
   between ``sqrt(sigmoid(cls) * sigmoid(obj))`` and the GT's one-hot class, summed over classes;
3. dynamic k = max(1, int(sum of the top-min(10, n) IoUs of the GT)), n = number of points in play; the top-n runs
   over every point in play of the image, not only the GT's own candidates;
4. each GT takes its k cheapest points; a point taken by several GTs goes to the GT of lowest cost for it among
   *all* GTs of the image (so a GT can win a point it did not take, and a GT can end with no point at all).

YOLOX changed the geometry on 2023-01-09 (commit 14c62a7, "fix no-candidate anchor issue for tiny objects"). Its
tags 0.1.0 to 0.3.0, with which the released weights were trained, used radius 2.5 strides, took as candidates the
points inside a GT box *or* its centre square, and penalised (by 1e5) the points not inside both. Both rule sets are
available as :data:`SIMOTA_RULES` (``"official"``, the default, and ``"0.3.0"``).

:func:`simota_assign` does this for a whole batch at once on (B, G, N) tensors, GTs padded to the largest count in the
batch. :func:`simota_assign_per_image` is the straightforward per-image version of the same algorithm; the tests and
the benchmark (tools/benchmark_yolox.py) compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

# Constants of YOLOX's SimOTA (yolox/models/yolo_head.py) shared by both rule sets.
SIMOTA_IOU_WEIGHT = 3.0  # weight of -log(IoU) in the cost
SIMOTA_TOPK = 10  # dynamic k sums the top-10 IoUs of a GT
SIMOTA_LOG_EPS = 1e-8  # -log(IoU + eps)


@dataclass(frozen=True)
class SimOTARules:
    """The geometry part of SimOTA, which YOLOX changed once.

    Attributes:
        name: Key in :data:`SIMOTA_RULES`.
        center_radius: Half-side of the centre square around a GT centre, in strides of the point's level.
        in_box: False: candidates are the points in a GT's centre square, and only those escape the penalty
            (YOLOX since 2023-01-09). True: candidates are the points inside a GT box or its centre square, and only
            the points inside both escape the penalty (YOLOX 0.1.0 to 0.3.0).
        outside_cost: Cost added for a point outside the GT's geometry.
    """

    name: str
    center_radius: float
    in_box: bool
    outside_cost: float


OFFICIAL_RULES = SimOTARules("official", center_radius=1.5, in_box=False, outside_cost=1e6)
LEGACY_RULES = SimOTARules("0.3.0", center_radius=2.5, in_box=True, outside_cost=1e5)
SIMOTA_RULES = {rules.name: rules for rules in (OFFICIAL_RULES, LEGACY_RULES)}


class SimOTAResult(NamedTuple):
    """What SimOTA assigned, per image and point.

    Attributes:
        fg_mask: (B, N) bool, the points assigned to some GT (foreground).
        gt_index: (B, N) long, index of the assigned GT in the padded GT axis (0 where not foreground).
        iou: (B, N) IoU of the foreground point's predicted box with its GT (0 where not foreground).
        dynamic_k: (B, G) long, the k of every GT (0 for padding).
    """

    fg_mask: torch.Tensor
    gt_index: torch.Tensor
    iou: torch.Tensor
    dynamic_k: torch.Tensor


def get_rules(rules: SimOTARules | str) -> SimOTARules:
    """A :class:`SimOTARules` from itself or its name in :data:`SIMOTA_RULES`.

    Raises:
        ValueError: An unknown name; the message lists the known ones.
    """
    if isinstance(rules, SimOTARules):
        return rules
    if rules not in SIMOTA_RULES:
        raise ValueError(f"SimOTA rules {rules!r} are unknown. Fix: use one of {', '.join(SIMOTA_RULES)}.")
    return SIMOTA_RULES[rules]


def geometry(
    points: torch.Tensor, strides: torch.Tensor, gt_boxes: torch.Tensor, rules: SimOTARules | str = OFFICIAL_RULES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which points are candidates of which GT, and which escape the outside-geometry penalty.

    Args:
        points: (N, 2) point centres (x, y) in pixels, ``(grid + 0.5) * stride``.
        strides: (N,) stride of every point.
        gt_boxes: (..., G, 4) GT boxes xyxy in pixels.
        rules: The rule set (see :class:`SimOTARules`).

    Returns:
        ``(candidate, relation)``, both (..., G, N) bool. A point takes part in an image's assignment when it is a
        candidate of any GT of that image; ``relation`` marks the (GT, point) pairs without the penalty.
    """
    rules = get_rules(rules)
    px, py = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))  # (..., G, 1)
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, rules.center_radius * strides
    # the four margins to the square's sides must all be positive (strictly inside), as YOLOX tests them
    in_centre = (px - (cx - r) > 0) & ((cx + r) - px > 0) & (py - (cy - r) > 0) & ((cy + r) - py > 0)
    if not rules.in_box:
        return in_centre, in_centre
    in_box = (px - x1 > 0) & (x2 - px > 0) & (py - y1 > 0) & (y2 - py > 0)
    return in_box | in_centre, in_box & in_centre


def pairwise_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``boxes1`` (..., G, 4) with every box of ``boxes2`` (..., N, 4), xyxy -> (..., G, N).

    As YOLOX's ``bboxes_iou``: intersection over union, 0 for boxes that do not overlap.
    """
    a, b = boxes1[..., :, None, :], boxes2[..., None, :, :]
    tl, br = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (br - tl).clamp(min=0).prod(-1)
    area_a, area_b = (a[..., 2:] - a[..., :2]).prod(-1), (b[..., 2:] - b[..., :2]).prod(-1)
    # NOTE: not in the official code, which has no guard: the clamp only matters for two boxes of zero area.
    return inter / (area_a + area_b - inter).clamp(min=torch.finfo(inter.dtype).tiny)


def _class_cost(scores: torch.Tensor, gt_labels: torch.Tensor) -> torch.Tensor:
    """BCE between ``sqrt(scores)`` and each GT's one-hot class, summed over classes, for every (GT, point).

    Uses sum_c BCE(p_c, onehot_c) = -sum_c log(1 - p_c) + log(1 - p_l) - log(p_l) for the GT's class l, which avoids the
    (B, G, N, C) tensor a direct evaluation needs. Logs are clamped at -100 as ``F.binary_cross_entropy`` does.

    Args:
        scores: (B, N, C) joint probabilities sigmoid(cls) * sigmoid(obj).
        gt_labels: (B, G) long class indices.

    Returns:
        (B, G, N) class cost.
    """
    p = scores.sqrt()
    all_negative = -(1 - p).log().clamp(min=-100).sum(-1)  # (B, N): every class taken as a negative
    p_l = p.transpose(1, 2).gather(1, gt_labels[:, :, None].expand(-1, -1, p.shape[1]))  # (B, G, N) at the GT class
    return all_negative[:, None, :] + (1 - p_l).log().clamp(min=-100) - p_l.log().clamp(min=-100)


def _empty_result(b: int, n: int, g: int, like: torch.Tensor) -> SimOTAResult:
    """An assignment with no foreground point."""
    device = like.device
    return SimOTAResult(
        torch.zeros(b, n, dtype=torch.bool, device=device),
        torch.zeros(b, n, dtype=torch.long, device=device),
        torch.zeros(b, n, dtype=like.dtype, device=device),
        torch.zeros(b, g, dtype=torch.long, device=device),
    )


@torch.no_grad()
def simota_assign(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    points: torch.Tensor,
    strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_mask: torch.Tensor,
    rules: SimOTARules | str = OFFICIAL_RULES,
) -> SimOTAResult:
    """Batched SimOTA: assign prediction points to GT boxes for all images of a batch at once.

    Only the points that are a candidate of some GT in some image of the batch enter the (B, G, N') cost tensors.

    Args:
        pred_boxes: (B, N, 4) predicted boxes, xyxy pixels.
        pred_scores: (B, N, C) joint probabilities sigmoid(cls) * sigmoid(obj).
        points: (N, 2) point centres in pixels, ``(grid + 0.5) * stride``.
        strides: (N,) or (N, 1) stride of every point.
        gt_boxes: (B, G, 4) GT boxes, xyxy pixels, padded to the largest GT count of the batch.
        gt_labels: (B, G) long GT classes (any valid class index for padding).
        gt_mask: (B, G) bool, True for real GTs.
        rules: The geometry rules, :data:`OFFICIAL_RULES` (default) or :data:`LEGACY_RULES` (or their names).

    Returns:
        A :class:`SimOTAResult`.

    Examples:
        >>> pts, s = torch.tensor([[4.0, 4.0], [12.0, 4.0]]), torch.tensor([8.0, 8.0])
        >>> gt = torch.tensor([[[0.0, 0.0, 8.0, 8.0]]])
        >>> pred = torch.tensor([[[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0]]])
        >>> labels, mask = torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1, dtype=torch.bool)
        >>> r = simota_assign(pred, torch.full((1, 2, 1), 0.5), pts, s, gt, labels, mask)
        >>> r.fg_mask.tolist(), r.dynamic_k.tolist()
        ([[True, False]], [[1]])
    """
    rules = get_rules(rules)
    b, n = pred_boxes.shape[:2]
    g = gt_boxes.shape[1]
    device = pred_boxes.device
    result = _empty_result(b, n, g, pred_boxes)
    gt_mask = gt_mask.bool()
    if g == 0 or not gt_mask.any():
        return result
    fg_mask, gt_index, matched_iou, _ = result

    strides = strides.reshape(-1)
    cand, relation = geometry(points, strides, gt_boxes, rules)  # (B, G, N)
    in_play = (cand & gt_mask[:, :, None]).any(1)  # (B, N) points that take part in their image's assignment
    cols = in_play.any(0).nonzero().squeeze(1)  # points in play in some image: the only columns worth computing
    relation, in_play = relation[:, :, cols], in_play[:, cols]

    iou = pairwise_iou(gt_boxes, pred_boxes[:, cols]) * in_play[:, None, :]  # 0 outside the image's points
    iou = iou * gt_mask[:, :, None]
    cost = (
        _class_cost(pred_scores[:, cols].float(), gt_labels.long())
        + SIMOTA_IOU_WEIGHT * -(iou + SIMOTA_LOG_EPS).log()
        + rules.outside_cost * (~relation)
    )
    cost = cost.masked_fill(~(in_play[:, None, :] & gt_mask[:, :, None]), float("inf"))

    # dynamic k: IoUs outside the image's points are 0, so the top-10 over all columns sum to YOLOX's top-min(10, n).
    topk = min(SIMOTA_TOPK, iou.shape[2])
    dynamic_k = iou.topk(topk, dim=2).values.sum(2).int().clamp(min=1).long() * gt_mask

    # Each GT takes its k cheapest points: the k smallest of a cost row are the first k of its sorted top-kmax.
    kmax = int(dynamic_k.max())
    cheapest_cost, cheapest = cost.topk(min(kmax, cost.shape[2]), dim=2, largest=False)
    take = torch.arange(cheapest.shape[2], device=device) < dynamic_k[:, :, None]
    take &= cheapest_cost.isfinite()  # never a point outside the image's points in play
    matching = torch.zeros_like(relation).scatter_(2, cheapest, take)  # (B, G, N')

    # A point taken by several GTs goes to the GT of lowest cost for it, among all GTs of the image.
    contested = matching.sum(1) > 1  # (B, N')
    if contested.any():
        cheapest_gt = F.one_hot(cost.argmin(1), g).transpose(1, 2).bool()  # (B, G, N')
        matching = torch.where(contested[:, None, :], cheapest_gt, matching)

    fg = matching.any(1)
    fg_mask[:, cols] = fg
    gt_index[:, cols] = (matching * torch.arange(g, device=device)[None, :, None]).sum(1)
    matched_iou[:, cols] = (matching * iou).sum(1).to(matched_iou.dtype)
    return SimOTAResult(fg_mask, gt_index, matched_iou, dynamic_k)


@torch.no_grad()
def simota_assign_per_image(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    points: torch.Tensor,
    strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_mask: torch.Tensor,
    rules: SimOTARules | str = OFFICIAL_RULES,
) -> SimOTAResult:
    """Reference SimOTA: one image and one GT at a time, in the order the rules are stated.

    Same arguments and result as :func:`simota_assign`; the class cost is evaluated directly with
    ``F.binary_cross_entropy`` on a (G, n, C) tensor.
    """
    rules = get_rules(rules)
    b, n = pred_boxes.shape[:2]
    g = gt_boxes.shape[1]
    fg_mask, gt_index, matched_iou, dynamic_k = _empty_result(b, n, g, pred_boxes)
    strides = strides.reshape(-1)
    for i in range(b):
        real = gt_mask[i].bool().nonzero().squeeze(1)
        if real.numel() == 0:
            continue
        boxes, labels = gt_boxes[i, real], gt_labels[i, real].long()
        cand, relation = geometry(points, strides, boxes, rules)  # (G_i, N)
        cols = cand.any(0).nonzero().squeeze(1)
        if cols.numel() == 0:
            continue
        relation = relation[:, cols]
        iou = pairwise_iou(boxes, pred_boxes[i, cols])
        p = pred_scores[i, cols].float().sqrt()[None].expand(len(real), -1, -1)
        onehot = F.one_hot(labels, p.shape[-1]).float()[:, None, :].expand_as(p)
        cls_cost = F.binary_cross_entropy(p, onehot, reduction="none").sum(-1)
        cost = cls_cost + SIMOTA_IOU_WEIGHT * -(iou + SIMOTA_LOG_EPS).log() + rules.outside_cost * (~relation)

        matching = torch.zeros_like(relation)
        for j in range(len(real)):
            k = max(1, int(iou[j].topk(min(SIMOTA_TOPK, len(cols))).values.sum()))
            dynamic_k[i, real[j]] = k
            matching[j, cost[j].topk(k, largest=False).indices] = True
        contested = matching.sum(0) > 1
        if contested.any():
            matching[:, contested] = False
            matching[cost[:, contested].argmin(0), contested.nonzero().squeeze(1)] = True
        fg = matching.any(0)
        owner = matching[:, fg].float().argmax(0)
        fg_mask[i, cols[fg]] = True
        gt_index[i, cols[fg]] = real[owner]
        matched_iou[i, cols[fg]] = iou[owner, fg.nonzero().squeeze(1)].to(matched_iou.dtype)
    return SimOTAResult(fg_mask, gt_index, matched_iou, dynamic_k)
