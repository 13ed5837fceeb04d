"""The decoupled head of YOLOX (YOLOX: Exceeding YOLO Series in 2021, arXiv 2107.08430) as an Ultralytics Detect.

Source: github Megvii-BaseDetection/YOLOX, ``yolox/models/yolo_head.py``.

Per pyramid level: a 1x1 stem to ``hidden`` channels, then two branches of two 3x3 Conv+BN+SiLU each. The class branch
ends in a 1x1 conv to ``nc`` logits; the regression branch ends in a 1x1 conv to 4 box values and another to 1
objectness logit. Anchor-free, one prediction per grid cell: the box of cell (gx, gy) at stride s is decoded as
``xy = (g + t_xy) * s`` and ``wh = exp(t_wh) * s`` and its score is ``sigmoid(obj) * sigmoid(cls)``.

Subclassing ``Detect`` lets Ultralytics treat the model as a detector everywhere it checks for one (stride
computation at build, NMS, validators, predictors, exporters). In inference the head returns what ``Detect`` returns
in Ultralytics 8.4: a (B, 4 + nc, N) tensor of xywh pixel boxes and class scores, alone in export mode and otherwise
as ``(tensor, raw outputs)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from ultralytics.nn.modules import Conv, Detect
from ultralytics.utils.tal import make_anchors

# Prior probability for the initial class and objectness biases (YOLOX ``initialize_biases(prior_prob=1e-2)``).
YOLOX_PRIOR_PROB = 1e-2
# Hidden width of the head at width multiplier 1.0 (YOLOX ``int(256 * width)``).
YOLOX_HEAD_WIDTH = 256


class YOLOXDetect(Detect):
    """YOLOX decoupled head: 1x1 stem, class branch, and regression branch with box and objectness outputs.

    Args:
        nc (int): Number of classes.
        hidden (int): Width of the stems and branches (``int(256 * width)`` in YOLOX; the model YAML gives 256 and the
            AttnYOLO parser seam scales it like a Conv row).
        ch (tuple[int, ...]): Channels of the input feature maps, one per level (strides 8, 16, 32).

    Shape:
        - Input: a list of ``nl`` feature maps (B, ch[i], H_i, W_i).
        - Output (training): a dict with ``boxes`` (B, 4, N) raw (t_x, t_y, t_w, t_h), ``obj`` (B, 1, N) and
          ``scores`` (B, nc, N) logits, and ``feats`` (the inputs), where N = sum(H_i * W_i).
        - Output (inference): (B, 4 + nc, N) boxes (xywh in pixels, or xyxy when ``xyxy`` is set by an exporter) and
          scores ``sigmoid(obj) * sigmoid(cls)``; with the raw dict as second element unless ``export`` is set.

    Attributes:
        stems, cls_convs, reg_convs, cls_preds, reg_preds, obj_preds (nn.ModuleList): One entry per level, named as in
            YOLOX so that official head weights load by key.

    Examples:
        >>> head = YOLOXDetect(nc=80, hidden=64, ch=(64, 128, 256))
        >>> head.stride = torch.tensor([8.0, 16.0, 32.0])
        >>> x = [torch.randn(1, 64, 52, 52), torch.randn(1, 128, 26, 26), torch.randn(1, 256, 13, 13)]
        >>> _ = head.eval()
        >>> head(x)[0].shape
        torch.Size([1, 84, 3549])
    """

    def __init__(self, nc: int = 80, hidden: int = YOLOX_HEAD_WIDTH, ch: tuple[int, ...] = ()) -> None:
        # Detect.__init__ would build the YOLOv8 DFL branches (cv2/cv3/dfl) only to throw them away; set up the state
        # Detect's methods and Ultralytics' callers read instead.
        nn.Module.__init__(self)
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = 1  # no distribution focal loss: 4 box values per point
        self.no = nc + 5  # box (4) + objectness (1) + classes
        self.hidden = hidden
        self.stride = torch.zeros(self.nl)  # filled in by DetectionModel at build
        self.cv2 = self.cv3 = None  # Ultralytics' fuse/is_fused read these YOLOv8 branch names; YOLOX has neither
        self.stems = nn.ModuleList(Conv(c, hidden, 1, 1) for c in ch)
        self.cls_convs = nn.ModuleList(nn.Sequential(Conv(hidden, hidden, 3), Conv(hidden, hidden, 3)) for _ in ch)
        self.reg_convs = nn.ModuleList(nn.Sequential(Conv(hidden, hidden, 3), Conv(hidden, hidden, 3)) for _ in ch)
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, nc, 1) for _ in ch)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in ch)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in ch)

    @property
    def end2end(self) -> bool:
        """YOLOX has no one-to-one branch: always NMS-based."""
        return False

    @end2end.setter
    def end2end(self, value: bool) -> None:
        """Ignore requests for NMS-free inference (there is no one-to-one branch to switch to)."""

    def forward_head(self, x: list[torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        """Run the stems and both branches on every level; return flattened raw outputs.

        Args:
            x: Feature maps, one per level.
            **kwargs: Ignored; accepted for signature compatibility with ``Detect.forward_head``.

        Returns:
            ``{"boxes": (B, 4, N), "obj": (B, 1, N), "scores": (B, nc, N), "feats": x}``.
        """
        bs = x[0].shape[0]
        boxes, obj, scores = [], [], []
        for i in range(self.nl):
            stem = self.stems[i](x[i])
            cls_feat = self.cls_convs[i](stem)
            reg_feat = self.reg_convs[i](stem)
            boxes.append(self.reg_preds[i](reg_feat).view(bs, 4, -1))
            obj.append(self.obj_preds[i](reg_feat).view(bs, 1, -1))
            scores.append(self.cls_preds[i](cls_feat).view(bs, self.nc, -1))
        return {"boxes": torch.cat(boxes, 2), "obj": torch.cat(obj, 2), "scores": torch.cat(scores, 2), "feats": x}

    def forward(self, x: list[torch.Tensor]):
        """Raw outputs in training; decoded (B, 4 + nc, N) predictions in inference (see the class docstring)."""
        preds = self.forward_head(x)
        if self.training:
            return preds
        y = self._inference(preds)
        return y if self.export else (y, preds)

    def decode_points(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid coordinates (top-left corner of each cell, in cells) and strides of every prediction point.

        Args:
            feats: The feature maps the predictions were made on.

        Returns:
            ``grid`` (N, 2) as (gx, gy) and ``strides`` (N, 1), level by level in the order of the flattened outputs.
        """
        return make_anchors(feats, self.stride, 0.0)  # YOLOX's grid has no half-cell offset: xy = (g + t) * s

    def _inference(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """Decode boxes to pixels and combine objectness and class probabilities."""
        feats = x["feats"]
        shape = feats[0].shape
        if self.dynamic or self.shape != shape:  # cache the grid per input shape, as Detect does
            self.anchors, self.strides = (a.transpose(0, 1) for a in self.decode_points(feats))
            self.shape = shape
        t = x["boxes"]
        xy = (t[:, :2] + self.anchors) * self.strides
        wh = t[:, 2:].exp() * self.strides
        boxes = torch.cat((xy - wh / 2, xy + wh / 2), 1) if self.xyxy else torch.cat((xy, wh), 1)
        return torch.cat((boxes, x["obj"].sigmoid() * x["scores"].sigmoid()), 1)

    def bias_init(self) -> None:
        """Set class and objectness biases to ``-log((1 - p) / p)``, p = 0.01 (YOLOX ``initialize_biases``)."""
        prior = -math.log((1 - YOLOX_PRIOR_PROB) / YOLOX_PRIOR_PROB)
        for conv in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(conv.bias, prior)

    def fuse(self) -> None:
        """Nothing to remove: YOLOX has no one-to-one branch (BatchNorms are folded by ``BaseModel.fuse``)."""
