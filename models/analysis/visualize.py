"""Pictures of what the attention layers do: their attention maps, and Grad-CAM before and after them.

The maps are computed by :mod:`attnyolo.analysis.visualize_maps`; here they are laid over the image, captioned and
written as PNGs (:func:`visualize`, the ``attnyolo visualize`` command).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..integration.checkpoints import load_model
from ..utils.atomic import write_image_atomic
from ..utils.paths import runs_dir
from .visualize_maps import _check_rows, attention_maps, grad_cam, letterbox

CAM_NOTES = {"ok": "", "no-gradient": " - no gradient", "relu-empty": " - ReLU left nothing"}  # caption suffixes


def read_image(source: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8, failing with one line if it is missing or not an image."""
    path = Path(str(source))
    if not path.is_file():
        raise FileNotFoundError(f"source={path} does not exist. Fix: pass an image file, e.g. source=bus.jpg.")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"source={path} is not an image OpenCV can read. Fix: pass a .jpg or .png file.")
    return image


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, normalise: bool = True) -> np.ndarray:
    """Blend a (H, W) map over a BGR image with the JET colour map (blue low, red high)."""
    h = heat.astype(np.float32)
    if normalise:
        lo, hi = float(h.min()), float(h.max())
        h = (h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)
    colour = cv2.applyColorMap(np.uint8(np.clip(h, 0, 1) * 255), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 1.0 - alpha, colour, alpha, 0.0)


def _for_display(image: np.ndarray, heat: np.ndarray, min_side: int = 256) -> tuple[np.ndarray, np.ndarray, int]:
    """Enlarge a small picture by an integer factor (short side >= ``min_side``) so captions stay legible."""
    factor = max(1, -(-min_side // min(image.shape[:2])))
    if factor == 1:
        return image, heat, 1
    size = (image.shape[1] * factor, image.shape[0] * factor)
    small, big = cv2.INTER_NEAREST, cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=small), cv2.resize(heat, size, interpolation=big), factor


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """Write a caption on a dark band at the top of the picture."""
    out = image.copy()
    scale = max(0.35, min(out.shape[1] / 900, 0.8))
    cv2.rectangle(out, (0, 0), (out.shape[1], int(22 * scale / 0.5)), (0, 0, 0), -1)
    cv2.putText(out, text, (4, int(15 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def visualize(
    model: str | Path,
    source: str | Path,
    layers: list[int] | None = None,
    imgsz: int | None = None,
    detection: int = 0,
    conf: float = 0.25,
    iou: float = 0.7,
    maps: bool = True,
    gradcam: bool = True,
    out_dir: str | Path | None = None,
) -> list[Path]:
    """Write attention-map and Grad-CAM PNGs of one image for a trained checkpoint.

    Files are named ``<image>_attention_<rowNN>_<layer>.png`` and
    ``<image>_gradcam_<rowNN>_<layer>_<before|after>_det<rank>_<class>.png``.

    Args:
        model: Checkpoint (``.pt``).
        source: Image file.
        layers: Row indices; None means every attention row.
        imgsz: Square input size; None means the size the checkpoint was trained at (or 640).
        detection: Grad-CAM target: rank of the NMS-kept box (0 = highest score).
        conf: NMS confidence threshold for the Grad-CAM target.
        iou: NMS IoU threshold.
        maps: Write the attention maps.
        gradcam: Write the Grad-CAM pictures.
        out_dir: Output folder (created); None means ``runs/visualize/exp`` under the working directory.

    Returns:
        The PNG paths written.
    """
    yolo = load_model(model)
    net = yolo.model.float().cpu().eval()
    if imgsz is None:
        imgsz = int((getattr(net, "args", None) or {}).get("imgsz", 640) or 640)
    stride = int(max(getattr(net, "stride", torch.tensor([32])).max(), 32))
    if imgsz % stride:
        raise ValueError(f"imgsz={imgsz} must be a multiple of the model's stride {stride}.")
    image = read_image(source)
    lb = letterbox(image, imgsz)
    rows = _check_rows(net, layers)
    stem = Path(str(source)).stem
    out = Path(out_dir) if out_dir is not None else runs_dir("visualize") / "exp"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if maps:
        found = attention_maps(net, lb, rows)
        if not found:
            print("no CoordAtt/ELA rows among the chosen layers: they have no g_h ⊗ g_w map (Grad-CAM still works)")
        for m in found:
            lo, hi = float(m["feature_map"].min()), float(m["feature_map"].max())
            base, heat, _ = _for_display(image, m["image_map"])
            pic = _caption(overlay(base, heat), f"{m['label']} mean_c gate_h*gate_w, {lo:.3f}..{hi:.3f}")
            path = out / f"{stem}_attention_{m['label']}.png"
            write_image_atomic(path, pic)
            written.append(path)
    if gradcam:
        names = yolo.names
        for r in rows:
            cam = grad_cam(net, lb, r, detection, conf, iou)
            det = cam["detection"]
            cls_name = str(names.get(det["class"], det["class"]) if isinstance(names, dict) else det["class"])
            x1, y1, x2, y2 = ((np.array(det["box"]) - [lb.left, lb.top, lb.left, lb.top]) / lb.scale).round()
            for when in ("before", "after"):
                if when not in cam:
                    continue
                base, heat, k = _for_display(image, cam[when]["image_map"])
                pic = overlay(base, heat, normalise=False)
                cv2.rectangle(pic, (int(x1 * k), int(y1 * k)), (int(x2 * k), int(y2 * k)), (255, 255, 255), 2)
                status = cam[when]["status"]
                pic = _caption(
                    pic,
                    f"Grad-CAM {cam['label']} {when}: {cls_name} {det['score']:.2f} (det {det['rank']}, "
                    f"P{det['stride'].bit_length() - 1}){CAM_NOTES[status]}",
                )
                if status == "no-gradient":
                    print(
                        f"{cam['label']} {when}: no gradient - the detection comes from the stride-{det['stride']} "
                        "head level, which this row does not feed; the picture is blank."
                    )
                elif status == "relu-empty":
                    print(f"{cam['label']} {when}: sum_c w_c A_c is nowhere positive, so ReLU left a blank map.")
                safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in cls_name)
                path = out / f"{stem}_gradcam_{cam['label']}_{when}_det{det['rank']}_{safe}.png"
                write_image_atomic(path, pic)
                written.append(path)
    return written
