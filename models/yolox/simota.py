"""SimOTA label assignment (YOLOX: Exceeding YOLO Series in 2021, arXiv 2107.08430, Sec. 2.2), batched over images.

Source: github Megvii-BaseDetection/YOLOX, ``yolox/models/yolo_head.py``, ``get_assignments``.

For every ground-truth box (GT) and prediction point:

1. candidates: points whose centre lies inside the GT box or within ``1.5 * stride`` of the GT centre (both axes);
   points that are a candidate of no GT in their image take no part in the assignment;
2. cost = class BCE + 3 * (-log IoU) + 1e6 * (point is not a candidate of this GT), the class BCE being between
   ``sqrt(sigmoid(cls) * sigmoid(obj))`` and the GT's one-hot class, summed over classes;
3. dynamic k = max(1, int(sum of the top-min(10, n) IoUs of the GT)), n = number of participating points;
4. each GT takes its k cheapest points; a point claimed by several GTs goes to the GT with the lowest cost for it
   (over all GTs of the image, as in YOLOX).

:func:`simota_assign` does this for a whole batch at once on (B, G, N) tensors, GTs padded to the largest count in the
batch. :func:`simota_assign_per_image` is the straightforward per-image, per-GT version of the same algorithm; it is
kept as the reference the tests and the benchmark (tools/benchmark_yolox.py) compare against.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from ultralytics.utils.metrics import bbox_iou

# Constants of YOLOX's SimOTA (yolox/models/yolo_head.py).
SIMOTA_CENTER_RADIUS = 1.5  # centre prior: |point - GT centre| < 1.5 * stride on both axes
SIMOTA_IOU_WEIGHT = 3.0  # weight of -log(IoU) in the cost
SIMOTA_OUTSIDE_COST = 1e6  # added to the cost of a point outside the GT's candidates
SIMOTA_TOPK = 10  # dynamic k sums the top-10 IoUs of a GT
SIMOTA_LOG_EPS = 1e-8  # -log(IoU + eps)


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


def candidate_mask(
    points: torch.Tensor, strides: torch.Tensor, gt_boxes: torch.Tensor, radius: float = SIMOTA_CENTER_RADIUS
) -> torch.Tensor:
    """Which points are candidates of which GT: centre inside the GT box or within ``radius * stride`` of its centre.

    Args:
        points: (N, 2) point centres (x, y) in pixels.
        strides: (N,) stride of every point.
        gt_boxes: (..., G, 4) GT boxes xyxy in pixels.
        radius: Centre-prior radius in strides.

    Returns:
        (..., G, N) bool.
    """
    px, py = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))  # (..., G, 1)
    in_box = (px > x1) & (px < x2) & (py > y1) & (py < y2)
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, radius * strides
    in_centre = ((px - cx).abs() < r) & ((py - cy).abs() < r)
    return in_box | in_centre


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


def _pairwise_iou(gt_boxes: torch.Tensor, pred_boxes: torch.Tensor) -> torch.Tensor:
    """IoU of every GT with every predicted box: (B, G, 4) x (B, N, 4) xyxy -> (B, G, N)."""
    return bbox_iou(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :], xywh=False).squeeze(-1).clamp_(min=0)


@torch.no_grad()
def simota_assign(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    points: torch.Tensor,
    strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_mask: torch.Tensor,
    radius: float = SIMOTA_CENTER_RADIUS,
) -> SimOTAResult:
    """Batched SimOTA: assign prediction points to GT boxes for all images of a batch at once.

    Only the points that are a candidate of some GT in some image of the batch enter the (B, G, N') cost tensors.

    Args:
        pred_boxes: (B, N, 4) predicted boxes, xyxy pixels.
        pred_scores: (B, N, C) joint probabilities sigmoid(cls) * sigmoid(obj).
        points: (N, 2) point centres in pixels.
        strides: (N,) or (N, 1) stride of every point.
        gt_boxes: (B, G, 4) GT boxes, xyxy pixels, padded to the largest GT count of the batch.
        gt_labels: (B, G) long GT classes (any valid class index for padding).
        gt_mask: (B, G) bool, True for real GTs.
        radius: Centre-prior radius in strides.

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
    b, n = pred_boxes.shape[:2]
    g = gt_boxes.shape[1]
    device = pred_boxes.device
    fg_mask = torch.zeros(b, n, dtype=torch.bool, device=device)
    gt_index = torch.zeros(b, n, dtype=torch.long, device=device)
    matched_iou = torch.zeros(b, n, dtype=pred_boxes.dtype, device=device)
    dynamic_k = torch.zeros(b, g, dtype=torch.long, device=device)
    gt_mask = gt_mask.bool()
    if g == 0 or not gt_mask.any():
        return SimOTAResult(fg_mask, gt_index, matched_iou, dynamic_k)

    strides = strides.reshape(-1)
    cand = candidate_mask(points, strides, gt_boxes, radius) & gt_mask[:, :, None]  # (B, G, N)
    in_play = cand.any(1)  # (B, N) points that take part in their image's assignment
    cols = in_play.any(0).nonzero().squeeze(1)  # points in play in some image: the only columns worth computing
    cand, in_play = cand[:, :, cols], in_play[:, cols]

    iou = _pairwise_iou(gt_boxes, pred_boxes[:, cols]) * in_play[:, None, :]  # 0 outside the image's points
    iou = iou * gt_mask[:, :, None]
    cost = (
        _class_cost(pred_scores[:, cols].float(), gt_labels.long())
        + SIMOTA_IOU_WEIGHT * -(iou + SIMOTA_LOG_EPS).log()
        + SIMOTA_OUTSIDE_COST * (~cand)
    )
    cost = cost.masked_fill(~(in_play[:, None, :] & gt_mask[:, :, None]), float("inf"))

    # dynamic k: IoUs outside the image's points are 0, so the top-10 over all columns sum to YOLOX's top-min(10, n).
    topk = min(SIMOTA_TOPK, iou.shape[2])
    dynamic_k = iou.topk(topk, dim=2).values.sum(2).int().clamp(min=1).long() * gt_mask

    # Each GT takes its k cheapest points: the k smallest of a cost row are the first k of its sorted top-kmax.
    kmax = int(dynamic_k.max())
    cheapest_cost, cheapest = cost.topk(min(kmax, cost.shape[2]), dim=2, largest=False)
    take = torch.arange(cheapest.shape[2], device=device) < dynamic_k[:, :, None]
    take &= cheapest_cost.isfinite()  # never a point outside the image's candidates (a GT with no points at all)
    matching = torch.zeros_like(cand).scatter_(2, cheapest, take)  # (B, G, N')

    # A point claimed by several GTs goes to the GT of lowest cost for it.
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
    radius: float = SIMOTA_CENTER_RADIUS,
) -> SimOTAResult:
    """Reference SimOTA: one image and one GT at a time, as YOLOX writes it.

    Same arguments and result as :func:`simota_assign`; the class cost is evaluated directly with
    ``F.binary_cross_entropy`` on a (G, n, C) tensor.
    """
    b, n = pred_boxes.shape[:2]
    g = gt_boxes.shape[1]
    device = pred_boxes.device
    fg_mask = torch.zeros(b, n, dtype=torch.bool, device=device)
    gt_index = torch.zeros(b, n, dtype=torch.long, device=device)
    matched_iou = torch.zeros(b, n, dtype=pred_boxes.dtype, device=device)
    dynamic_k = torch.zeros(b, g, dtype=torch.long, device=device)
    strides = strides.reshape(-1)
    for i in range(b):
        real = gt_mask[i].bool().nonzero().squeeze(1)
        if real.numel() == 0:
            continue
        boxes, labels = gt_boxes[i, real], gt_labels[i, real].long()
        cand = candidate_mask(points, strides, boxes, radius)  # (G_i, N)
        cols = cand.any(0).nonzero().squeeze(1)
        if cols.numel() == 0:
            continue
        cand = cand[:, cols]
        iou = bbox_iou(boxes[:, None, :], pred_boxes[i, cols][None], xywh=False).squeeze(-1).clamp(min=0)
        p = pred_scores[i, cols].float().sqrt()[None].expand(len(real), -1, -1)
        onehot = F.one_hot(labels, p.shape[-1]).float()[:, None, :].expand_as(p)
        cls_cost = F.binary_cross_entropy(p, onehot, reduction="none").sum(-1)
        cost = cls_cost + SIMOTA_IOU_WEIGHT * -(iou + SIMOTA_LOG_EPS).log() + SIMOTA_OUTSIDE_COST * (~cand)

        matching = torch.zeros_like(cand)
        for j in range(len(real)):
            k = max(1, int(iou[j].topk(min(SIMOTA_TOPK, len(cols))).values.sum()))
            dynamic_k[i, real[j]] = k
            matching[j, cost[j].topk(min(k, len(cols)), largest=False).indices] = True
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
