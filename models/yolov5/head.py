"""The anchor-based head of classic YOLOv5 (ultralytics/yolov5 v7.0, ``models/yolo.py`` class ``Detect``).

Facts restated from github.com/ultralytics/yolov5 at tag v7.0 (commit 915bbf294bb74c859f0b41f1c23bc395014ea679):

* one 1x1 ``Conv2d`` with bias per pyramid level (``m``), producing ``na * (5 + nc)`` channels: for each of the
  ``na`` anchors of the level, box ``(tx, ty, tw, th)``, objectness and ``nc`` class logits;
* the ``anchors`` buffer (nl, na, 2) holds the anchor sizes in *grid units* (pixels / stride) once the model is built;
  a YAML gives them in input pixels;
* decoding (eval mode), with ``y = sigmoid(logits)`` and the grid ``g`` of cell corners offset by -0.5:
  ``xy = (2 * y_xy + g) * stride`` and ``wh = (2 * y_wh) ** 2 * anchor * stride`` (pixels);
* rows ordered by level (P3, P4, P5), then anchor, then grid row y, then column x.

Output in Ultralytics' layout: a (B, 4 + nc, N) tensor of xywh pixel boxes and class scores ``obj * cls`` (YOLOv5's
own NMS multiplies them the same way before thresholding), so Ultralytics' NMS, validators, predictors and exporters
work unchanged. In training the head returns ``{"raw": [per-level (B, na, ny, nx, 5 + nc) logits], "feats": inputs}``;
``raw`` is exactly what YOLOv5's ``Detect`` returns in training and what :class:`attnyolo.yolov5.loss.YOLOv5Loss`
takes. The attribute names (``m``, ``anchors``, ``stride``, ``na``, ``no``, ``nl``) are the official ones, so a
classic state dict loads key for key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from ultralytics.nn.modules import Detect

# Objectness prior of YOLOv5's ``_initialize_biases``: 8 objects per 640x640 image spread over the level's cells.
OBJECTS_PER_640_IMAGE = 8
# Class prior of the same function: 0.6 spread over the classes, log(0.6 / (nc - 0.99999)).
CLASS_PRIOR = 0.6


def check_anchor_order(anchors: torch.Tensor, stride: torch.Tensor) -> torch.Tensor:
    """Return ``anchors`` with its level axis flipped if the anchor sizes run against the strides.

    YOLOv5 (``utils/autoanchor.py`` ``check_anchor_order``): the mean anchor area per level must grow with the stride;
    if the sign of (last - first) area differs from the sign of (last - first) stride, whole levels are swapped. An
    all-equal set (area difference 0) is left alone.

    Args:
        anchors: (nl, na, 2) anchor sizes (pixels or grid units; only the order matters).
        stride: (nl,) strides.

    Returns:
        The anchors, level order possibly reversed (a new tensor).
    """
    area = anchors.prod(-1).mean(-1).view(-1)
    da, ds = area[-1] - area[0], stride[-1] - stride[0]
    if da != 0 and torch.sign(da) != torch.sign(ds):
        return anchors.flip(0)
    return anchors.clone()


def _anchor_table(anchors: Sequence | int, nl: int | None) -> list[list[float]]:
    """Anchors as YOLOv5 YAMLs write them (per-level flat lists of w, h pixels, or an int per level) -> nested lists.

    An int ``k`` means ``k`` anchors per level, to be found by AutoAnchor before training; YOLOv5 then builds
    placeholder anchors ``[0, 1, ..., 2k - 1]`` on every level, and so does this head.
    """
    if isinstance(anchors, int) and not isinstance(anchors, bool):
        if anchors < 1 or nl is None:
            raise ValueError(f"anchors={anchors}: an anchor count needs a positive int and the number of levels")
        return [list(map(float, range(2 * anchors)))] * nl
    table = [list(map(float, level)) for level in anchors]
    if not table or any(len(level) != len(table[0]) or len(level) % 2 or not level for level in table):
        raise ValueError(
            f"anchors={anchors!r}: expected one list of w,h pairs per level, all levels with the same number of anchors"
        )
    return table


class YOLOv5Detect(Detect):
    """Classic YOLOv5 anchor-based detection head, inside Ultralytics as a ``Detect`` subclass.

    Args:
        nc (int): Number of classes.
        anchors (list[list[float]] | int): Per level, the anchors' ``w, h`` pairs in input pixels (YOLOv5's YAML
            ``anchors:``), or the number of anchors per level (placeholders, replaced by AutoAnchor before training).
        ch (tuple[int, ...]): Input channels of each level.

    Shape:
        - Input: a list of ``nl`` feature maps (B, ch[i], H_i, W_i).
        - Output (training): ``{"raw": [(B, na, H_i, W_i, 5 + nc)], "feats": inputs}``.
        - Output (inference): (B, 4 + nc, N) xywh pixel boxes (xyxy when ``xyxy`` is set by an exporter) and class
          scores ``sigmoid(obj) * sigmoid(cls)``, N = na * sum(H_i * W_i); with the training dict as second element
          unless ``export`` is set.

    Attributes:
        anchors (torch.Tensor): Buffer (nl, na, 2); input pixels until the model's strides are known
            (:meth:`bias_init` converts them), grid units after, as in YOLOv5.
        m (nn.ModuleList): One 1x1 output conv per level.
        no (int): Outputs per anchor, ``nc + 5`` (YOLOv5's meaning of ``no``).

    Examples:
        >>> anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
        >>> head = YOLOv5Detect(80, anchors, ch=(64, 128, 256))
        >>> head.stride = torch.tensor([8.0, 16.0, 32.0])
        >>> head.bias_init()
        >>> _ = head.eval()
        >>> x = [torch.randn(1, 64, 20, 20), torch.randn(1, 128, 10, 10), torch.randn(1, 256, 5, 5)]
        >>> head(x)[0].shape
        torch.Size([1, 84, 1575])
    """

    def __init__(self, nc: int = 80, anchors: Sequence | int = (), ch: tuple[int, ...] = ()) -> None:
        # Detect.__init__ would build the YOLOv8 DFL branches only to throw them away; set up the state Detect's
        # methods and Ultralytics' callers read instead (as the YOLOX head does).
        nn.Module.__init__(self)
        table = _anchor_table(anchors, len(ch) or None)
        if ch and len(ch) != len(table):
            raise ValueError(f"{len(table)} anchor levels but {len(ch)} input feature maps; they must match")
        self.nc = nc
        self.no = nc + 5  # box (4) + objectness (1) + classes, per anchor
        self.nl = len(table)
        self.na = len(table[0]) // 2
        self.reg_max = 1  # no distribution focal loss
        # A buffer named like Detect's class attribute `anchors` (see the property below): registered directly.
        self._buffers["anchors"] = torch.tensor(table, dtype=torch.float32).view(self.nl, self.na, 2)
        self.anchors_in_pixels = True  # YOLOv5 divides them by the strides once those are known (bias_init)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self.stride = torch.zeros(self.nl)  # filled in by DetectionModel at build
        self.cv2 = self.cv3 = None  # Ultralytics' fuse/is_fused read these YOLOv8 branch names
        self.grid: list[torch.Tensor] = [torch.empty(0)] * self.nl
        self.anchor_grid: list[torch.Tensor] = [torch.empty(0)] * self.nl

    @property
    def anchors(self) -> torch.Tensor:
        """The anchors buffer (nl, na, 2).

        Ultralytics' ``Detect`` has a class attribute ``anchors`` (its anchor points), which would hide a buffer of
        that name from attribute lookup; this property reads the buffer. Assignments go through
        ``nn.Module.__setattr__``, which stores tensors in ``_buffers``.
        """
        return self._buffers["anchors"]

    @property
    def end2end(self) -> bool:
        """YOLOv5 has no one-to-one branch: always NMS-based."""
        return False

    @end2end.setter
    def end2end(self, value: bool) -> None:
        """Ignore requests for NMS-free inference (there is no one-to-one branch to switch to)."""

    def forward_head(self, x: list[torch.Tensor], **kwargs) -> dict:
        """Per level: the 1x1 conv, viewed as (B, na, ny, nx, 5 + nc) logits (YOLOv5's training output).

        Args:
            x: Feature maps, one per level.
            **kwargs: Ignored; accepted for signature compatibility with ``Detect.forward_head``.

        Returns:
            ``{"raw": list of per-level logits, "feats": x}``.
        """
        raw = []
        for i in range(self.nl):
            bs, _, ny, nx = x[i].shape
            p = self.m[i](x[i]).view(bs, self.na, self.no, ny, nx)
            raw.append(p.permute(0, 1, 3, 4, 2).contiguous())
        return {"raw": raw, "feats": x}

    def forward(self, x: list[torch.Tensor]):
        """Raw logits in training; decoded (B, 4 + nc, N) predictions in inference (see the class docstring)."""
        preds = self.forward_head(x)
        if self.training:
            return preds
        y = self._inference(preds)
        return y if self.export else (y, preds)

    def _make_grid(self, i: int, nx: int, ny: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell grid (offset by -0.5) and anchor sizes in pixels of level ``i``, both (1, na, ny, nx, 2)."""
        device, dtype = self.anchors.device, self.anchors.dtype
        shape = (1, self.na, ny, nx, 2)
        y, x = torch.arange(ny, device=device, dtype=dtype), torch.arange(nx, device=device, dtype=dtype)
        yv, xv = torch.meshgrid(y, x, indexing="ij")
        grid = torch.stack((xv, yv), 2).expand(shape) - 0.5  # x first: (2 * y_xy + grid) * stride
        anchor_grid = (self.anchors[i] * self.stride[i]).view((1, self.na, 1, 1, 2)).expand(shape)
        return grid, anchor_grid

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """YOLOv5's eval-mode output ``z``: (B, N, 5 + nc) with xywh pixels, objectness and class probabilities.

        Args:
            raw: Per-level logits (B, na, ny, nx, 5 + nc), as :meth:`forward_head` returns them.

        Returns:
            The rows of every level concatenated (level, anchor, y, x order).
        """
        key = (tuple(tuple(p.shape[2:4]) for p in raw), self.anchors.device, self.anchors.dtype)
        if self.dynamic or self.shape != key:  # grids are cached per input size, as YOLOv5 and Detect do
            self.grid, self.anchor_grid = map(
                list, zip(*(self._make_grid(i, p.shape[3], p.shape[2]) for i, p in enumerate(raw)))
            )
            self.shape = key
        z = []
        for i, p in enumerate(raw):
            bs, _, ny, nx, _ = p.shape
            xy, wh, conf = p.sigmoid().split((2, 2, self.nc + 1), 4)
            xy = (xy * 2 + self.grid[i]) * self.stride[i]
            wh = (wh * 2) ** 2 * self.anchor_grid[i]
            z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * nx * ny, self.no))
        return torch.cat(z, 1)

    def _inference(self, preds: dict) -> torch.Tensor:
        """Decode to Ultralytics' layout: (B, 4 + nc, N) boxes and ``obj * cls`` scores."""
        z = self.decode(preds["raw"])
        boxes, scores = z[..., :4], z[..., 5:] * z[..., 4:5]
        if self.xyxy:  # exporters with embedded NMS ask for corners
            xy, wh = boxes.split((2, 2), -1)
            boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1)
        return torch.cat((boxes, scores), -1).permute(0, 2, 1)

    def anchors_to_grid_units(self) -> None:
        """Order the anchor levels by stride and divide by the strides, once (YOLOv5 ``DetectionModel.__init__``)."""
        if not self.anchors_in_pixels:
            return
        stride = self.stride.to(self.anchors)
        self.anchors.copy_(check_anchor_order(self.anchors, stride) / stride.view(-1, 1, 1))
        self.anchors_in_pixels = False

    def bias_init(self) -> None:
        """Convert the anchors to grid units, then add YOLOv5's priors to the output biases.

        Ultralytics calls this right after computing the strides, where YOLOv5 runs ``check_anchor_order``, divides
        the anchors by the strides and calls ``_initialize_biases``: objectness ``+= log(8 / (640 / s) ** 2)``, classes
        ``+= log(0.6 / (nc - 0.99999))``, on top of PyTorch's default conv bias initialisation.
        """
        self.anchors_to_grid_units()
        for conv, s in zip(self.m, self.stride):
            b = conv.bias.view(self.na, -1)
            b.data[:, 4] += math.log(OBJECTS_PER_640_IMAGE / (640 / float(s)) ** 2)
            b.data[:, 5 : 5 + self.nc] += math.log(CLASS_PRIOR / (self.nc - 0.99999))

    def fuse(self) -> None:
        """Nothing to remove: YOLOv5 has no one-to-one branch (BatchNorms are folded by ``BaseModel.fuse``)."""
