"""The YOLOX training loss (YOLOX: Exceeding YOLO Series in 2021, arXiv 2107.08430) as an Ultralytics criterion.

Source: github Megvii-BaseDetection/YOLOX, ``yolox/models/yolo_head.py``, ``get_losses``.

After SimOTA (:mod:`attnyolo.yolox.simota`) has chosen the foreground points, with ``num_fg`` foreground points in the
whole batch (at least 1):

* IoU loss: ``sum(1 - IoU^2) / num_fg`` over foreground points (YOLOX ``IOUloss(loss_type="iou")``), weighted by 5;
* objectness: BCE of every point's objectness logit against "is foreground", summed over all points, ``/ num_fg``;
* class: BCE of the foreground points' class logits against ``one_hot(class) * IoU`` of the matched prediction,
  ``/ num_fg``;
* L1 (only once switched on, in YOLOX the last 15 epochs without mosaic): L1 between the raw box outputs and the
  GT encoded the same way (``gt_xy / stride - grid``, ``log(gt_wh / stride)``), ``/ num_fg``.

Training with :class:`attnyolo.training.AttnDetectionTrainer` switches L1 on when Ultralytics closes mosaic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.utils.metrics import bbox_iou
from ultralytics.utils.ops import xywh2xyxy
from ultralytics.utils.tal import make_anchors

from .simota import simota_assign

YOLOX_IOU_LOSS_WEIGHT = 5.0  # YOLOX ``reg_weight``
YOLOX_L1_EPS = 1e-8  # log(gt_wh / stride + eps) in YOLOX ``get_l1_target``


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


class YOLOXLoss:
    """YOLOX loss with SimOTA assignment, returning ``(loss * batch_size, loss_items)`` like ``v8DetectionLoss``.

    Args:
        model: A ``DetectionModel`` whose last layer is :class:`~attnyolo.yolox.head.YOLOXDetect` (de-paralleled).
        use_l1: Start with the L1 box loss switched on.

    Attributes:
        use_l1 (bool): Whether the L1 box loss is added; flipped by the trainer for the final no-mosaic epochs.
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

    def __init__(self, model: nn.Module, use_l1: bool = False) -> None:
        head = model.model[-1]
        self.stride = head.stride
        self.nc = head.nc
        self.use_l1 = use_l1

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the loss from the head's raw outputs (or an ``(inference, raw)`` tuple, as validators pass)."""
        return self.loss(preds[1] if isinstance(preds, tuple) else preds, batch)

    def loss(self, preds: dict[str, torch.Tensor], batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Assign with SimOTA and compute the four loss terms.

        Args:
            preds: The head's raw outputs ``{"boxes", "obj", "scores", "feats"}``.
            batch: Ultralytics batch (``batch_idx``, ``cls``, ``bboxes``).

        Returns:
            ``(terms * batch_size, items)``: the four weighted terms (their sum is the YOLOX loss) times the batch
            size, as Ultralytics' trainer expects, and a dict of the detached terms named by :attr:`loss_names`.
        """
        feats = preds["feats"]
        device = preds["boxes"].device
        with torch.autocast(device.type, enabled=False):  # assignment and losses in float32, as YOLOX does
            raw = preds["boxes"].float().permute(0, 2, 1)  # (B, N, 4) t_x, t_y, t_w, t_h
            obj = preds["obj"].float().permute(0, 2, 1).squeeze(-1)  # (B, N)
            cls = preds["scores"].float().permute(0, 2, 1)  # (B, N, C)
            bs = raw.shape[0]
            stride = self.stride.to(device)
            grid, strides = (t.float() for t in make_anchors(feats, stride, 0.0))  # (N, 2), (N, 1)
            xy = (raw[..., :2] + grid) * strides
            wh = raw[..., 2:].exp() * strides
            pred_boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1)  # (B, N, 4) xyxy pixels

            imgsz = torch.tensor(feats[0].shape[2:], device=device, dtype=torch.float32) * stride[0]
            labels, gt_boxes, gt_mask = pad_targets(batch, bs, imgsz)
            assigned = simota_assign(
                pred_boxes.detach(),
                (cls.sigmoid() * obj.sigmoid()[..., None]).detach(),
                (grid + 0.5) * strides,  # cell centres
                strides,
                gt_boxes,
                labels,
                gt_mask,
            )
            fg = assigned.fg_mask
            num_fg = fg.sum().clamp(min=1)
            matched = assigned.gt_index[fg]  # GT slot of each foreground point
            image = fg.nonzero()[:, 0]
            target_boxes = gt_boxes[image, matched]  # (F, 4) xyxy

            iou = bbox_iou(pred_boxes[fg], target_boxes, xywh=False).squeeze(-1)
            loss_iou = YOLOX_IOU_LOSS_WEIGHT * (1 - iou.square()).sum() / num_fg
            loss_obj = F.binary_cross_entropy_with_logits(obj, fg.float(), reduction="sum") / num_fg
            cls_target = F.one_hot(labels[image, matched], self.nc).float() * assigned.iou[fg][:, None]
            loss_cls = F.binary_cross_entropy_with_logits(cls[fg], cls_target, reduction="sum") / num_fg
            if self.use_l1:
                s, g = strides.expand(bs, -1, -1)[fg], grid.expand(bs, -1, -1)[fg]
                l1_target = torch.cat(
                    (
                        (target_boxes[:, :2] + target_boxes[:, 2:]) / 2 / s - g,
                        ((target_boxes[:, 2:] - target_boxes[:, :2]) / s + YOLOX_L1_EPS).log(),
                    ),
                    -1,
                )
                loss_l1 = (raw[fg] - l1_target).abs().sum() / num_fg
            else:
                loss_l1 = raw.new_zeros(())  # the same four terms (and logged columns) whether or not L1 is on
            terms = torch.stack((loss_iou, loss_obj, loss_cls, loss_l1))
        return terms * bs, dict(zip(self.loss_names, terms.detach()))
