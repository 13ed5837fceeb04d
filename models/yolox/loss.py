"""The YOLOX training loss (YOLOX: Exceeding YOLO Series in 2021, arXiv 2107.08430) as an Ultralytics criterion.

Source of the rules: github Megvii-BaseDetection/YOLOX, ``yolox/models/yolo_head.py`` (``get_losses``) and
``yolox/models/losses.py`` (``IOUloss``) at commit 6ddff4824372906469a7fae2dc3206c7aa4bbaee; the tests compare every
term with the official code's output on the same weights, images and labels (tests/fixtures/yolox/).

After SimOTA (:mod:`attnyolo.yolox.simota`) has chosen the foreground points, with ``num_fg`` foreground points in the
whole batch (at least 1):

* IoU loss: ``sum(1 - IoU^2) / num_fg`` over foreground points (YOLOX ``IOUloss(loss_type="iou")``: squared IoU,
  ``IoU = inter / (union + 1e-16)``), weighted by 5;
* objectness: BCE of every point's objectness logit against "is foreground", summed over all points of all images
  (images without GTs included), ``/ num_fg``;
* class: BCE of the foreground points' class logits against ``one_hot(class) * IoU`` of the matched prediction,
  ``/ num_fg``;
* L1 (only once switched on, in YOLOX the last 15 epochs without mosaic): L1 between the raw box outputs and the
  GT encoded the same way (``gt_xy / stride - grid``, ``log(gt_wh / stride + 1e-8)``), ``/ num_fg``.

The YOLOX loss is their sum (``total_loss`` in YOLOX). Ultralytics' trainer expects ``(loss * batch_size, items)``
and sums the first element; :attr:`YOLOXLoss.scaling` selects that (the default) or YOLOX's own scale
(:mod:`attnyolo.yolox.recipe`). Training with :class:`attnyolo.engine.trainer.AttnDetectionTrainer` switches L1 on
when Ultralytics closes mosaic.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.utils.ops import xywh2xyxy
from ultralytics.utils.tal import make_anchors

from .simota import OFFICIAL_RULES, SimOTAResult, SimOTARules, get_rules, simota_assign

YOLOX_IOU_LOSS_WEIGHT = 5.0  # YOLOX ``reg_weight``
YOLOX_L1_EPS = 1e-8  # log(gt_wh / stride + eps) in YOLOX ``get_l1_target``
YOLOX_IOU_LOSS_EPS = 1e-16  # IoU = inter / (union + eps) in YOLOX ``IOUloss``
LOSS_SCALINGS = ("ultralytics", "yolox")


def pad_targets(batch: dict, batch_size: int, imgsz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn Ultralytics' flat label list into per-image padded tensors.

    Args:
        batch: Ultralytics batch with ``batch_idx`` (n,), ``cls`` (n, 1) and ``bboxes`` (n, 4) normalised xywh.
        batch_size: Number of images B.
        imgsz: (2,) input height and width in pixels.

    Returns:
        ``labels`` (B, G) long, ``boxes`` (B, G, 4) xyxy pixels and ``mask`` (B, G) bool, G = most labels in an image.
    """
    device = imgsz.device
    idx = batch["batch_idx"].to(device).view(-1).long()
    cls = batch["cls"].to(device).view(-1).long()
    boxes = batch["bboxes"].to(device=device, dtype=torch.float32).view(-1, 4)
    counts = torch.bincount(idx, minlength=batch_size)
    g = int(counts.max()) if idx.numel() else 0
    labels = torch.zeros(batch_size, g, dtype=torch.long, device=device)
    padded = torch.zeros(batch_size, g, 4, device=device)
    mask = torch.zeros(batch_size, g, dtype=torch.bool, device=device)
    if g:
        order = idx.argsort(stable=True)  # group labels by image without assuming the collate order
        idx, cls, boxes = idx[order], cls[order], boxes[order]
        slot = torch.arange(idx.numel(), device=device) - (torch.cumsum(counts, 0) - counts)[idx]
        scale = imgsz.flip(0).repeat(2).float()  # (w, h, w, h)
        labels[idx, slot], padded[idx, slot], mask[idx, slot] = cls, xywh2xyxy(boxes * scale), True
    return labels, padded, mask


def matched_iou(pred: torch.Tensor, target: torch.Tensor, eps: float = YOLOX_IOU_LOSS_EPS) -> torch.Tensor:
    """IoU of each predicted box with its own target, (F, 4) xyxy each -> (F,), as YOLOX's ``IOUloss`` computes it.

    Args:
        pred: Predicted boxes.
        target: Their matched GT boxes.
        eps: Added to the union (YOLOX: 1e-16).
    """
    tl, br = torch.maximum(pred[:, :2], target[:, :2]), torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (br - tl).clamp(min=0).prod(-1)
    union = (pred[:, 2:] - pred[:, :2]).prod(-1) + (target[:, 2:] - target[:, :2]).prod(-1) - inter
    return inter / (union + eps)


class Assignment(NamedTuple):
    """SimOTA's assignment of one batch, with the decoded predictions and padded targets it was made from.

    Attributes:
        result: The :class:`~attnyolo.yolox.simota.SimOTAResult`.
        raw: (B, N, 4) raw box outputs ``t_x, t_y, t_w, t_h``.
        obj: (B, N) objectness logits.
        cls: (B, N, C) class logits.
        pred_boxes: (B, N, 4) decoded boxes, xyxy pixels.
        grid: (N, 2) cell of every point (top-left corner, in cells).
        strides: (N, 1) stride of every point.
        labels: (B, G) GT classes; gt_boxes: (B, G, 4) xyxy pixels; gt_mask: (B, G) real GTs.
    """

    result: SimOTAResult
    raw: torch.Tensor
    obj: torch.Tensor
    cls: torch.Tensor
    pred_boxes: torch.Tensor
    grid: torch.Tensor
    strides: torch.Tensor
    labels: torch.Tensor
    gt_boxes: torch.Tensor
    gt_mask: torch.Tensor


class YOLOXLoss:
    """YOLOX loss with SimOTA assignment, returning ``(loss * batch_size, loss_items)`` like ``v8DetectionLoss``.

    Args:
        model: A ``DetectionModel`` whose last layer is :class:`~attnyolo.yolox.head.YOLOXDetect` (de-paralleled).
        use_l1: Start with the L1 box loss switched on.
        rules: SimOTA's geometry rules (:data:`~attnyolo.yolox.simota.SIMOTA_RULES`): ``"official"`` (YOLOX since
            2023) or ``"0.3.0"`` (the rules the released YOLOX weights were trained with).
        scaling: ``"ultralytics"``: the loss times the batch size, as Ultralytics' trainer expects; ``"yolox"``: the
            YOLOX loss itself, divided by the number of processes, so that Ultralytics' multi-GPU convention (the
            loss times the world size, gradients averaged) gives YOLOX's gradient.

    Attributes:
        use_l1 (bool): Whether the L1 box loss is added; flipped by the trainer for the final no-mosaic epochs.
        rules (SimOTARules): The SimOTA rules in use.
        scaling (str): See ``scaling`` above.
        loss_names (tuple[str, ...]): Keys of the loss-item dict (and of Ultralytics' logged loss columns).

    Examples:
        >>> import attnyolo
        >>> from ultralytics.nn.tasks import DetectionModel
        >>> model = DetectionModel("yolox-nano.yaml", nc=3, verbose=False)
        >>> batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0]), "cls": torch.tensor([[1.0]]),
        ...          "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}
        >>> loss, items = YOLOXLoss(model)(model(batch["img"]), batch)
        >>> sorted(items)
        ['cls_loss', 'iou_loss', 'l1_loss', 'obj_loss']
    """

    loss_names = ("iou_loss", "obj_loss", "cls_loss", "l1_loss")

    def __init__(
        self,
        model: nn.Module,
        use_l1: bool = False,
        rules: SimOTARules | str = OFFICIAL_RULES,
        scaling: str = "ultralytics",
    ) -> None:
        head = model.model[-1]
        self.stride = head.stride
        self.nc = head.nc
        self.use_l1 = use_l1
        self.rules = get_rules(rules)
        if scaling not in LOSS_SCALINGS:
            raise ValueError(f"YOLOXLoss scaling={scaling!r} is unknown. Fix: use one of {', '.join(LOSS_SCALINGS)}.")
        self.scaling = scaling

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the loss from the head's raw outputs (or an ``(inference, raw)`` tuple, as validators pass)."""
        return self.loss(preds[1] if isinstance(preds, tuple) else preds, batch)

    def assign(self, preds: dict[str, torch.Tensor], batch: dict) -> Assignment:
        """Decode the raw outputs and run SimOTA (in float32, without gradients) on the batch's labels.

        Args:
            preds: The head's raw outputs ``{"boxes", "obj", "scores", "feats"}``.
            batch: Ultralytics batch (``batch_idx``, ``cls``, ``bboxes`` normalised xywh).

        Returns:
            An :class:`Assignment`.
        """
        feats = preds["feats"]
        device = preds["boxes"].device
        with torch.autocast(device.type, enabled=False):  # assignment and losses in float32, as YOLOX does
            raw = preds["boxes"].float().permute(0, 2, 1)  # (B, N, 4) t_x, t_y, t_w, t_h
            obj = preds["obj"].float().permute(0, 2, 1).squeeze(-1)  # (B, N)
            cls = preds["scores"].float().permute(0, 2, 1)  # (B, N, C)
            stride = self.stride.to(device)
            grid, strides = (t.float() for t in make_anchors(feats, stride, 0.0))  # (N, 2), (N, 1)
            xy = (raw[..., :2] + grid) * strides  # YOLOX decodes from the cell's corner: (grid + t) * stride
            wh = raw[..., 2:].exp() * strides
            pred_boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1)  # (B, N, 4) xyxy pixels

            imgsz = torch.tensor(feats[0].shape[2:], device=device, dtype=torch.float32) * stride[0]
            labels, gt_boxes, gt_mask = pad_targets(batch, raw.shape[0], imgsz)
            result = simota_assign(
                pred_boxes.detach(),
                (cls.sigmoid() * obj.sigmoid()[..., None]).detach(),
                (grid + 0.5) * strides,  # SimOTA's geometry uses the cell centres
                strides,
                gt_boxes,
                labels,
                gt_mask,
                self.rules,
            )
        return Assignment(result, raw, obj, cls, pred_boxes, grid, strides, labels, gt_boxes, gt_mask)

    def terms(self, preds: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        """The four weighted YOLOX loss terms (their sum is YOLOX's ``total_loss``), with gradients.

        Args:
            preds: The head's raw outputs ``{"boxes", "obj", "scores", "feats"}``.
            batch: Ultralytics batch (``batch_idx``, ``cls``, ``bboxes``).

        Returns:
            ``{"iou_loss": 5 * IoU term, "obj_loss", "cls_loss", "l1_loss"}`` (``l1_loss`` is 0 while L1 is off).
        """
        a = self.assign(preds, batch)
        with torch.autocast(a.raw.device.type, enabled=False):
            fg = a.result.fg_mask
            num_fg = fg.sum().clamp(min=1)
            matched = a.result.gt_index[fg]  # GT slot of each foreground point
            image = fg.nonzero()[:, 0]
            target_boxes = a.gt_boxes[image, matched]  # (F, 4) xyxy

            iou = matched_iou(a.pred_boxes[fg], target_boxes)
            loss_iou = YOLOX_IOU_LOSS_WEIGHT * (1 - iou.square()).sum() / num_fg
            loss_obj = F.binary_cross_entropy_with_logits(a.obj, fg.float(), reduction="sum") / num_fg
            cls_target = F.one_hot(a.labels[image, matched], self.nc).float() * a.result.iou[fg][:, None]
            loss_cls = F.binary_cross_entropy_with_logits(a.cls[fg], cls_target, reduction="sum") / num_fg
            if self.use_l1:
                bs = a.raw.shape[0]
                s, g = a.strides.expand(bs, -1, -1)[fg], a.grid.expand(bs, -1, -1)[fg]
                l1_target = torch.cat(
                    (
                        (target_boxes[:, :2] + target_boxes[:, 2:]) / 2 / s - g,
                        ((target_boxes[:, 2:] - target_boxes[:, :2]) / s + YOLOX_L1_EPS).log(),
                    ),
                    -1,
                )
                loss_l1 = (a.raw[fg] - l1_target).abs().sum() / num_fg
            else:
                loss_l1 = a.raw.new_zeros(())  # the same four terms (and logged columns) whether or not L1 is on
        return dict(zip(self.loss_names, (loss_iou, loss_obj, loss_cls, loss_l1)))

    def loss(self, preds: dict[str, torch.Tensor], batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Assign with SimOTA and compute the four loss terms, scaled as :attr:`scaling` says.

        Args:
            preds: The head's raw outputs ``{"boxes", "obj", "scores", "feats"}``.
            batch: Ultralytics batch (``batch_idx``, ``cls``, ``bboxes``).

        Returns:
            ``(scaled terms, items)``: the four weighted terms (their sum is the YOLOX loss) times the batch size
            (``scaling="ultralytics"``) or divided by the number of processes (``"yolox"``), and a dict of the
            detached, unscaled terms named by :attr:`loss_names`.
        """
        terms = torch.stack(tuple(self.terms(preds, batch).values()))
        if self.scaling == "yolox":
            dist = torch.distributed
            world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            scaled = terms / world
        else:
            scaled = terms * preds["boxes"].shape[0]
        return scaled, dict(zip(self.loss_names, terms.detach()))
