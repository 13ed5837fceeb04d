"""The maps behind the pictures of :mod:`attnyolo.analysis.visualize`: attention maps and Grad-CAM.

* **Attention maps** (:func:`attention_maps`): for every CoordAtt and ELA layer, the gates the layer multiplies its
  input by, ``g^h ⊗ g^w`` (CA) or ``a_h ⊗ a_w`` (ELA), averaged over channels, computed with the papers' equations
  (:func:`attnyolo.layers.reference.coord_att_gates`, :func:`~attnyolo.layers.reference.ela_gates`) from the layer's
  real input, captured by a forward hook during one forward pass of the image.
* **Grad-CAM** (:func:`grad_cam`, Selvaraju et al., arXiv 1610.02391), as the CA paper's Figure 4 shows it before and
  after an attention layer: the network runs once with autograd on; the chosen detection is one box kept by
  Ultralytics' NMS, traced back to the raw (pre-NMS) prediction it came from; its class score at that prediction is
  differentiated with respect to the chosen layer's activation A (its input for "before", its output for "after").
  Weights ``w_c`` = spatial mean of dScore/dA_c; ``CAM = ReLU(Σ_c w_c A_c)``, upsampled to the input.

Images are letterboxed to a square ``imgsz`` (aspect kept, grey padding), as the network sees them; every map is
cropped back to the unpadded region and resized to the original image, so it overlays the input pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.utils.nms import non_max_suppression

from ..layers.coord_attention import CoordAtt
from ..layers.efficient_local_attention import ELA
from ..layers.reference import coord_att_gates, ela_gates
from ..layers.registry import row_attention_layers

PAD_VALUE = 114  # grey letterbox padding, as Ultralytics pads
MAP_LAYERS = (CoordAtt, ELA)  # layers with a spatial attention map of the form gate_h ⊗ gate_w


@dataclass
class Letterbox:
    """A square letterboxed image and how to undo the letterbox.

    Attributes:
        tensor: Network input (1, 3, S, S), RGB in [0, 1].
        image: The original image, BGR uint8 (H, W, 3).
        scale: Resize factor from the original to the letterboxed image.
        top: Rows of padding above the resized image.
        left: Columns of padding left of it.
    """

    tensor: torch.Tensor
    image: np.ndarray
    scale: float
    top: int
    left: int

    def to_image(self, feature_map: np.ndarray | torch.Tensor) -> np.ndarray:
        """Resize a (h, w) map over the letterboxed square to the original image's (H, W), dropping the padding."""
        m = torch.as_tensor(np.asarray(feature_map, dtype=np.float32))[None, None]
        side = self.tensor.shape[-1]
        m = F.interpolate(m, size=(side, side), mode="bilinear", align_corners=False)[0, 0]
        h, w = self.image.shape[:2]
        nh, nw = round(h * self.scale), round(w * self.scale)
        m = m[self.top : self.top + nh, self.left : self.left + nw][None, None]
        return F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def letterbox(image: np.ndarray, imgsz: int = 640) -> Letterbox:
    """Resize ``image`` (BGR uint8) to fit an ``imgsz`` square, keeping its aspect, and pad the rest with grey."""
    h, w = image.shape[:2]
    scale = imgsz / max(h, w)
    nh, nw = round(h * scale), round(w * scale)
    top, left = (imgsz - nh) // 2, (imgsz - nw) // 2
    canvas = np.full((imgsz, imgsz, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    tensor = torch.from_numpy(canvas[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255.0
    return Letterbox(tensor, image, scale, top, left)


def attention_rows(model: nn.Module) -> list[int]:
    """Row indices of the attention layers (any kind, alone or stacked by a repeat count) in ``model.model``."""
    return [i for i, m in enumerate(model.model) if row_attention_layers(m)]


def _check_rows(model: nn.Module, rows: list[int] | None) -> list[int]:
    """Validate requested rows against the model, or default to its attention rows."""
    if rows is None:
        rows = attention_rows(model)
        if not rows:
            raise ValueError("the model has no attention layers; give layers=<row,row> to pick rows for Grad-CAM.")
        return rows
    n = len(model.model)
    bad = [r for r in rows if not isinstance(r, int) or not 0 <= r < n - 1]  # the last row is the head
    if bad:
        raise ValueError(f"layers={bad} are not rows of this model; valid rows are 0..{n - 2} (the head excluded).")
    return list(rows)


def _layer_name(m: nn.Module) -> str:
    """``CoordAtt`` / ``ELA-S`` / ``C2f``: a layer's class, with ELA's variant."""
    return type(m).__name__ + (f"-{m.variant}" if isinstance(m, ELA) else "")


def _label(model: nn.Module, row: int) -> str:
    """``row05_CoordAtt`` / ``row08_ELA-S`` / ``row11_CoordAttx3`` (a stack) / ``row04_C2f``: a file-name-safe name."""
    m, stack = model.model[row], row_attention_layers(model.model[row])
    name = f"{_layer_name(stack[0])}x{len(stack)}" if len(stack) > 1 else _layer_name(m)
    return f"row{row:02d}_{name}"


def _map_layers(model: nn.Module, rows: list[int]) -> list[tuple[int, str, nn.Module]]:
    """``(row, label, layer)`` of every CoordAtt/ELA layer in ``rows``; each layer of a stacked row on its own."""
    found = []
    for r in rows:
        stack = row_attention_layers(model.model[r])
        for k, layer in enumerate(stack):
            if isinstance(layer, MAP_LAYERS):
                label = _label(model, r) if len(stack) == 1 else f"row{r:02d}.{k}_{_layer_name(layer)}"
                found.append((r, label, layer))
    return found


def attention_maps(model: nn.Module, lb: Letterbox, rows: list[int] | None = None) -> list[dict[str, Any]]:
    """The spatial attention maps of the CoordAtt and ELA layers for one image.

    Args:
        model: An Ultralytics detection model (``YOLO(...).model``), put in eval mode here.
        lb: The letterboxed image (:func:`letterbox`).
        rows: Rows to show; None means every CoordAtt/ELA row. Other layer kinds have no such map and are skipped;
            a row stacking several layers gives one map per layer (label ``row11.0_CoordAtt``, ``row11.1_...``).

    Returns:
        One dict per layer: ``row``, ``label``, ``gate_h`` (C, h), ``gate_w`` (C, w) numpy arrays, ``feature_map``
        (h, w) = channel mean of ``gate_h ⊗ gate_w`` (the factor the layer multiplies each position by, averaged over
        channels), and ``image_map`` (H, W) over the original image.
    """
    layers = _map_layers(model, _check_rows(model, rows))
    inputs: dict[int, torch.Tensor] = {}
    hooks = [
        layer.register_forward_pre_hook(lambda mod, args, j=j: inputs.__setitem__(j, args[0].detach()))
        for j, (_, _, layer) in enumerate(layers)
    ]
    model.eval()
    try:
        # no_grad, not inference_mode: the head caches its anchors, and inference tensors would break a later
        # Grad-CAM pass (autograd refuses to save them).
        with torch.no_grad():
            model(lb.tensor)
            out = []
            for j, (r, label, layer) in enumerate(layers):
                x = inputs[j]
                gates = coord_att_gates(layer, x) if isinstance(layer, CoordAtt) else ela_gates(layer, x)
                g_h, g_w = gates[0][0, :, :, 0], gates[1][0, :, 0, :]  # (C, h), (C, w)
                feature_map = torch.einsum("ch,cw->hw", g_h, g_w) / g_h.shape[0]  # mean_c g_h ⊗ g_w
                out.append(
                    {
                        "row": r,
                        "label": label,
                        "gate_h": g_h.numpy(),
                        "gate_w": g_w.numpy(),
                        "feature_map": feature_map.numpy(),
                        "image_map": lb.to_image(feature_map.numpy()),
                    }
                )
    finally:
        for h in hooks:
            h.remove()
    return out


def detect(model: nn.Module, x: torch.Tensor, conf: float = 0.25, iou: float = 0.7):
    """Run the model once and keep its NMS boxes together with the raw prediction each box came from.

    Returns:
        ``(raw, boxes, anchors)``: raw (1, 4 + nc, A) pre-NMS output (still attached to autograd if it was on),
        boxes (k, 6) ``[x1, y1, x2, y2, score, class]`` in letterboxed pixels sorted by score, and anchors (k,) the
        index of each box in ``raw``.
    """
    out = model(x)
    raw = out[0] if isinstance(out, (list, tuple)) else out
    kept, idx = non_max_suppression(raw.detach(), conf_thres=conf, iou_thres=iou, return_idxs=True)
    return raw, kept[0], idx[0].view(-1).long()


def anchor_stride(model: nn.Module, imgsz: int, anchor: int) -> int:
    """The stride of the head level whose grid holds raw prediction ``anchor`` (levels are concatenated P3, P4, ...).

    A detection is made by one head level, so only rows feeding that level's branch can explain it: Grad-CAM at a
    row that feeds only other levels has no gradient. Classic YOLOv5 heads make ``na`` predictions per cell.
    """
    start = 0
    per_cell = getattr(model.model[-1], "na", 1)  # predictions per grid cell: 3 anchors for classic YOLOv5
    for stride in (int(s) for s in model.stride):
        cells = (imgsz // stride) ** 2 * per_cell
        if anchor < start + cells:
            return stride
        start += cells
    raise ValueError(f"anchor {anchor} is beyond the {start} grid cells of a {imgsz}x{imgsz} input.")


def grad_cam(
    model: nn.Module,
    lb: Letterbox,
    row: int,
    detection: int = 0,
    conf: float = 0.25,
    iou: float = 0.7,
) -> dict[str, Any]:
    """Grad-CAM of one detection at one row, before (the row's input) and after (its output) the layer.

    Args:
        model: An Ultralytics detection model.
        lb: The letterboxed image.
        row: Row index in ``model.model``.
        detection: Which NMS-kept box, by rank (0 = highest score).
        conf: NMS confidence threshold.
        iou: NMS IoU threshold.

    Returns:
        ``{"row", "label", "detection": {"box", "score", "class", "anchor", "rank", "stride"}, "score", "before",
        "after"}``, where ``before``/``after`` hold ``feature_map`` (h, w) and ``image_map`` (H, W), each scaled to
        [0, 1] by its maximum, and ``status``: ``"ok"``; ``"no-gradient"`` when the score does not depend on that
        activation (the row feeds only other head levels than the detection's ``stride``); ``"relu-empty"`` when
        ``Σ_c w_c A_c`` is nowhere positive, so ReLU leaves an all-zero map. ``score`` is the differentiated class
        score.

    Raises:
        ValueError: No box above ``conf``, or ``detection`` beyond the kept boxes.
    """
    row = _check_rows(model, [row])[0]
    captured: dict[str, torch.Tensor] = {}

    def hook(mod, args, output):
        # rows fed by several rows (Concat) get a list: there is no single "before" activation to explain
        captured["before"] = args[0] if isinstance(args[0], torch.Tensor) else None
        captured["after"] = output

    handle = model.model[row].register_forward_hook(hook)
    model.eval()
    x = lb.tensor.clone().requires_grad_(True)  # so activations join the graph even if the weights are frozen
    try:
        with torch.enable_grad():
            raw, boxes, anchors = detect(model, x, conf, iou)
            if len(boxes) == 0:
                raise ValueError(f"no detection with score >= conf={conf}. Fix: lower conf= (e.g. conf=0.05).")
            if not 0 <= detection < len(boxes):
                raise ValueError(f"detection={detection}, but only {len(boxes)} boxes were kept (0..{len(boxes) - 1}).")
            anchor, cls = int(anchors[detection]), int(boxes[detection, 5])
            score = raw[0, 4 + cls, anchor]  # the pre-NMS class score NMS kept for this box
            wanted = [k for k in ("before", "after") if captured.get(k) is not None]
            grads = dict(zip(wanted, torch.autograd.grad(score, [captured[k] for k in wanted], allow_unused=True)))
    finally:
        handle.remove()

    result = {
        "row": row,
        "label": _label(model, row),
        "score": float(score.detach()),
        "detection": {
            "box": [float(v) for v in boxes[detection, :4]],
            "score": float(boxes[detection, 4]),
            "class": cls,
            "anchor": anchor,
            "rank": detection,
            "stride": anchor_stride(model, lb.tensor.shape[-1], anchor),
        },
    }
    for key in wanted:
        act = captured[key].detach()[0]
        grad = torch.zeros_like(act) if grads[key] is None else grads[key].detach()[0]  # None: no path to the score
        weights = grad.mean((1, 2))  # w_c: spatially averaged gradient
        cam = torch.relu(torch.einsum("c,chw->hw", weights, act))
        peak = float(cam.max())
        cam = cam / peak if peak > 0 else cam
        status = "ok" if peak > 0 else "relu-empty" if bool(grad.any()) else "no-gradient"
        result[key] = {
            "feature_map": cam.numpy(),
            "image_map": np.clip(lb.to_image(cam.numpy()), 0.0, 1.0),
            "status": status,
        }
    return result
