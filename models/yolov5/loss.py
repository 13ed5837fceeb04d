"""Classic YOLOv5's training loss (ultralytics/yolov5 v7.0, ``utils/loss.py`` ``ComputeLoss``) for Ultralytics.

Facts restated from github.com/ultralytics/yolov5 at tag v7.0 (commit 915bbf294bb74c859f0b41f1c23bc395014ea679):

* **Assignment** (``build_targets``): a target is matched to every anchor of a level whose width and height ratios
  to it are all within ``anchor_t`` (``max(r, 1/r) < anchor_t``, 4.0 by default); each match is predicted by the cell
  containing the target's centre and by the (up to) two neighbouring cells whose shared edge is nearer than half a
  cell to the centre (``frac < 0.5`` and more than one cell from the image border). Entries are ordered by group
  (own cell, x-1, y-1, x+1, y+1), inside a group anchor-major, then in target order. The box target is the centre
  relative to the chosen cell's corner (in [-0.5, 1.5)) and the size in grid units.
* **Box**: ``mean(1 - CIoU)`` of the decoded predictions ``xy = 2*sigmoid - 0.5``, ``wh = (2*sigmoid)**2 * anchor``
  against the targets, per level.
* **Objectness**: BCE of every anchor of every cell against the (detached, clamped at 0) CIoU of its matched
  prediction (0 where none), weighted per level by ``balance`` = [4.0, 1.0, 0.4] (P3, P4, P5).
* **Class**: BCE of the matched predictions' class logits against one-hot targets (label-smoothed to
  ``1 - eps/2`` / ``eps/2``); only with more than one class.
* gains ``box``, ``obj``, ``cls`` (hyp.scratch-low: 0.05, 1.0, 0.5, scaled by train.py for nc, image size and
  number of levels, see :mod:`attnyolo.yolov5.recipe`); the loss is ``(box + obj + cls) * batch size``.

The code is written for this project from those rules; tests compare it with numbers the real code produced
(``tests/fixtures/yolov5/loss.*``) and with cases worked out by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.utils.metrics import bbox_iou

from .recipe import SCRATCH_LOW_LOSS

# Per-level objectness weights: P3, P4, P5 (and YOLOv5's values for five levels, P3-P7).
OBJ_BALANCE = {3: (4.0, 1.0, 0.4)}
OBJ_BALANCE_DEFAULT = (4.0, 1.0, 0.25, 0.06, 0.02)
NEIGHBOUR_MARGIN = 0.5  # a neighbour cell is used when the centre is within half a cell of the shared edge
CIOU_EPS = 1e-7
FOCAL_ALPHA = 0.25  # YOLOv5 FocalLoss(gamma=hyp['fl_gamma'], alpha=0.25)

# (x, y) shifts of the cells tried for each target, in YOLOv5's order: own, left, up, right, down. The cell index is
# floor(centre - NEIGHBOUR_MARGIN * shift), so shift (1, 0) picks the cell to the left of the centre's cell.
CELL_SHIFTS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))


def ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = CIOU_EPS) -> torch.Tensor:
    """Complete IoU of paired boxes (Zheng et al., AAAI 2020, arXiv 1911.08287), as YOLOv5's ``bbox_iou(CIoU=True)``.

    ``CIoU = IoU - (rho^2 / c^2 + alpha * v)`` with ``rho`` the centre distance, ``c`` the diagonal of the smallest
    enclosing box, ``v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2`` and ``alpha = v / (v - IoU + 1 + eps)`` treated as a
    constant (no gradient); ``eps`` is added to the union and to ``c^2``. Ultralytics' ``bbox_iou`` computes exactly
    this (``xywh=True, CIoU=True``, the same eps), so it is called here rather than restated.

    Args:
        box1: (n, 4) predictions, xywh.
        box2: (n, 4) targets, xywh.
        eps: YOLOv5's 1e-7.

    Returns:
        (n,) CIoU values.
    """
    return bbox_iou(box1, box2, xywh=True, CIoU=True, eps=eps).squeeze(-1)


def batch_targets(batch: dict, device: torch.device | str | None = None) -> torch.Tensor:
    """Ultralytics' flat labels as YOLOv5's target matrix (n, 6): image index, class, x, y, w, h (normalised)."""
    idx = batch["batch_idx"].view(-1, 1).float()
    cls = batch["cls"].view(-1, 1).float()
    boxes = batch["bboxes"].view(-1, 4).float()
    targets = torch.cat((idx, cls, boxes), 1)
    return targets if device is None else targets.to(device)


class LevelTargets:
    """What :func:`build_targets` assigns on one level (YOLOv5's ``tcls, tbox, indices, anch`` entries).

    Attributes:
        cls (torch.Tensor): (n,) class of each assignment.
        box (torch.Tensor): (n, 4) box target: centre relative to the cell corner, size, both in grid units.
        image, anchor, gj, gi (torch.Tensor): (n,) prediction to train: image, anchor, grid row and column.
        anchor_wh (torch.Tensor): (n, 2) the matched anchor's size in grid units.
    """

    def __init__(self, cls, box, image, anchor, gj, gi, anchor_wh):
        self.cls, self.box, self.image, self.anchor, self.gj, self.gi = cls, box, image, anchor, gj, gi
        self.anchor_wh = anchor_wh

    def __len__(self) -> int:
        """Number of assignments."""
        return int(self.image.shape[0])


def build_targets(
    shapes: list[tuple[int, ...]], targets: torch.Tensor, anchors: torch.Tensor, anchor_t: float
) -> list[LevelTargets]:
    """Assign targets to anchors and cells on every level, by YOLOv5's rules (see the module docstring).

    Args:
        shapes: Per level the prediction shape (B, na, ny, nx, no).
        targets: (n, 6) image index, class, x, y, w, h with coordinates normalised to [0, 1].
        anchors: (nl, na, 2) anchor sizes in grid units.
        anchor_t: Largest allowed width or height ratio between target and anchor.

    Returns:
        One :class:`LevelTargets` per level.
    """
    device = targets.device
    levels = []
    shifts = torch.tensor(CELL_SHIFTS, device=device, dtype=torch.float32) * NEIGHBOUR_MARGIN
    for i, shape in enumerate(shapes):
        ny, nx = shape[2], shape[3]
        level_anchors = anchors[i].to(device=device, dtype=torch.float32)
        size = torch.tensor([nx, ny], device=device, dtype=torch.float32)
        centre = targets[:, 2:4] * size  # (n, 2) grid units, float32 as YOLOv5 computes them
        wh = targets[:, 4:6] * size
        ratio = wh[None] / level_anchors[:, None]  # (na, n, 2)
        matched = torch.max(ratio, 1 / ratio).max(2).values < anchor_t  # (na, n)
        anchor_idx, target_idx = matched.nonzero(as_tuple=True)  # anchor-major, then target order
        gxy, gwh = centre[target_idx], wh[target_idx]
        from_far_edge = size - gxy
        near_low = (gxy % 1 < NEIGHBOUR_MARGIN) & (gxy > 1)  # (m, 2): the x-1 / y-1 neighbour is used
        near_high = (from_far_edge % 1 < NEIGHBOUR_MARGIN) & (from_far_edge > 1)  # the x+1 / y+1 neighbour
        use = torch.stack(
            (torch.ones_like(near_low[:, 0]), near_low[:, 0], near_low[:, 1], near_high[:, 0], near_high[:, 1])
        )  # (5, m) in CELL_SHIFTS order
        group, pick = use.nonzero(as_tuple=True)  # group-major, then assignment order
        gxy, gwh, a, t = gxy[pick], gwh[pick], anchor_idx[pick], target_idx[pick]
        cell = (gxy - shifts[group]).long()
        # YOLOv5 clamps the cell indices into the grid in place before it forms the box target from them.
        cell[:, 0].clamp_(0, nx - 1)
        cell[:, 1].clamp_(0, ny - 1)
        levels.append(
            LevelTargets(
                cls=targets[t, 1].long(),
                box=torch.cat((gxy - cell, gwh), 1),
                image=targets[t, 0].long(),
                anchor=a,
                gj=cell[:, 1],
                gi=cell[:, 0],
                anchor_wh=level_anchors[a],
            )
        )
    return levels


def _bce(logits: torch.Tensor, target: torch.Tensor, pos_weight: float, fl_gamma: float) -> torch.Tensor:
    """Mean BCE with logits and a positive-class weight; focal-modulated as YOLOv5's FocalLoss when ``fl_gamma > 0``."""
    weight = torch.tensor([pos_weight], device=logits.device, dtype=logits.dtype)
    if fl_gamma <= 0:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight, reduction="none")
    prob = logits.sigmoid()
    p_t = target * prob + (1 - target) * (1 - prob)
    alpha = target * FOCAL_ALPHA + (1 - target) * (1 - FOCAL_ALPHA)
    return (loss * alpha * (1.0 - p_t) ** fl_gamma).mean()


class YOLOv5Loss:
    """YOLOv5's loss for an Ultralytics model whose head is :class:`~attnyolo.yolov5.head.YOLOv5Detect`.

    Args:
        model: The ``DetectionModel`` (de-paralleled). Its ``yolov5_hyp`` attribute, when the trainer has set it
            (:func:`attnyolo.yolov5.recipe.prepare_model`), gives the gains; otherwise hyp.scratch-low's values.
        hyp: Explicit hyperparameters, overriding both.

    Attributes:
        hyp (dict): ``box``, ``obj``, ``cls``, ``cls_pw``, ``obj_pw``, ``anchor_t``, ``fl_gamma``,
            ``label_smoothing`` as used.
        loss_names (tuple[str, ...]): Keys of the loss-item dict, in YOLOv5's order.

    Examples:
        >>> import attnyolo
        >>> from ultralytics.nn.tasks import DetectionModel
        >>> model = DetectionModel("yolov5n-classic.yaml", nc=3, verbose=False)
        >>> batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0]), "cls": torch.tensor([[1.0]]),
        ...          "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}
        >>> loss, items = model.loss(batch)
        >>> list(items)
        ['box_loss', 'obj_loss', 'cls_loss']
    """

    loss_names = ("box_loss", "obj_loss", "cls_loss")

    def __init__(self, model: nn.Module, hyp: dict | None = None) -> None:
        self.head = model.model[-1]
        self.hyp = {**SCRATCH_LOW_LOSS, **(getattr(model, "yolov5_hyp", None) or {}), **(hyp or {})}
        nl = self.head.nl
        self.balance = OBJ_BALANCE.get(nl, OBJ_BALANCE_DEFAULT)
        eps = float(self.hyp.get("label_smoothing", 0.0))
        self.cp, self.cn = 1.0 - 0.5 * eps, 0.5 * eps  # positive / negative class targets

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the loss from the head's output (or an ``(inference, raw)`` tuple, as validators pass)."""
        preds = preds[1] if isinstance(preds, tuple) else preds
        raw = preds["raw"] if isinstance(preds, dict) else preds
        loss, items = self.compute(raw, batch_targets(batch, raw[0].device))
        return loss, dict(zip(self.loss_names, items))

    def build_targets(self, p: list[torch.Tensor], targets: torch.Tensor) -> list[LevelTargets]:
        """:func:`build_targets` with this head's anchors and ``anchor_t``."""
        return build_targets([tuple(pi.shape) for pi in p], targets, self.head.anchors, self.hyp["anchor_t"])

    def compute(self, p: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """YOLOv5's ``ComputeLoss.__call__``: ``((box + obj + cls) * bs, [box, obj, cls])``.

        Args:
            p: Per-level logits (B, na, ny, nx, 5 + nc).
            targets: (n, 6) image, class, x, y, w, h (normalised).

        Returns:
            The loss, shape (1,), and the three detached terms, shape (3,), all float32.
        """
        device = p[0].device
        h = self.hyp
        lbox, lobj, lcls = (torch.zeros(1, device=device) for _ in range(3))
        for i, (pi, assigned) in enumerate(zip(p, self.build_targets(p, targets.to(device)))):
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype, device=device)
            if len(assigned):
                picked = pi[assigned.image, assigned.anchor, assigned.gj, assigned.gi]  # (n, 5 + nc)
                pxy = picked[:, :2].sigmoid() * 2 - 0.5
                pwh = (picked[:, 2:4].sigmoid() * 2) ** 2 * assigned.anchor_wh
                iou = ciou(torch.cat((pxy, pwh), 1), assigned.box)
                lbox += (1.0 - iou).mean()
                tobj[assigned.image, assigned.anchor, assigned.gj, assigned.gi] = iou.detach().clamp(0).to(tobj.dtype)
                if self.head.nc > 1:  # YOLOv5 has no class loss for a single class
                    pcls = picked[:, 5:]
                    t = torch.full_like(pcls, self.cn)
                    t[torch.arange(len(assigned), device=device), assigned.cls] = self.cp
                    lcls += _bce(pcls, t, h["cls_pw"], h["fl_gamma"])
            lobj += _bce(pi[..., 4], tobj, h["obj_pw"], h["fl_gamma"]) * self.balance[i]
        lbox *= h["box"]
        lobj *= h["obj"]
        lcls *= h["cls"]
        bs = p[0].shape[0]
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()
