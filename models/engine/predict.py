"""Inference on images, folders, globs, videos, webcams and streams (tools/predict.py)."""

from __future__ import annotations

import glob
import json
import time
from pathlib import Path

from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS
from ultralytics.utils import LOGGER

from ..integration.checkpoints import load_model
from ..utils.atomic import write_text_atomic
from ..utils.paths import runs_dir
from .trainer import latest_checkpoint


def _is_stream(source: str) -> bool:
    """Webcam indices and network streams are opened by Ultralytics; everything else must exist on disk."""
    return source.isnumeric() or source.lower().startswith(("rtsp://", "rtmp://", "http://", "https://", "tcp://"))


def check_source(source) -> str:
    """Validate a prediction source before Ultralytics opens it; return it as a string.

    Raises:
        FileNotFoundError: A path or glob that matches nothing.
        ValueError: A video file OpenCV cannot open, or a file type that is neither image nor video.
    """
    import cv2

    source = str(source)
    if _is_stream(source):
        return source
    if any(ch in source for ch in "*?["):
        if not glob.glob(source, recursive=True):
            raise FileNotFoundError(f"source {source} matches no files. Fix: check the pattern and quote it.")
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"source {source} does not exist. Fix: pass an image, folder, glob, video or camera.")
    if path.is_file():
        suffix = path.suffix.lower().lstrip(".")
        if suffix in VID_FORMATS:
            cap = cv2.VideoCapture(str(path))
            ok = cap.isOpened() and cap.read()[0]
            cap.release()
            if not ok:
                raise ValueError(f"video {source} cannot be opened or has no frames (damaged or unsupported codec).")
        elif suffix not in IMG_FORMATS:
            raise ValueError(f"source {source} is neither an image ({', '.join(sorted(IMG_FORMATS))}) nor a video.")
        elif cv2.imread(str(path)) is None:  # Ultralytics would skip it and report zero frames
            raise ValueError(f"image {source} cannot be read (corrupt or not really a {suffix}). Fix: replace it.")
    return source


def default_model() -> Path:
    """The newest best.pt of the default training run, or an error that says how to make one."""
    best = latest_checkpoint(runs_dir("train"), "best.pt")
    if best is None:
        raise FileNotFoundError(
            f"no model= given and no trained model under {runs_dir('train')}. Fix: run `python tools/train.py` "
            "first (a few minutes on CPU), or pass model=path/to/best.pt."
        )
    return best


def predict(model=None, source=None, save_json: bool = False, progress_every: int = 25, **kw) -> dict:
    """Run a checkpoint on a source, save annotated output, and report frames per second.

    Args:
        model: Checkpoint path; None means the newest best.pt of the default training run.
        source: Image, folder, glob, video file, webcam index or stream URL.
        save_json: Also write ``detections.json`` (one entry per image/frame, boxes in pixels xyxy).
        progress_every: Log progress every this many video frames.
        **kw: Ultralytics predict settings (conf, iou, imgsz, device, save_txt, project, name, ...).

    Returns:
        ``{"save_dir", "frames", "seconds", "fps", "detections", "json"}``.
    """
    if source is None:
        raise ValueError("source= is required: an image, folder, glob, video, webcam index or stream URL.")
    source = check_source(source)
    model = Path(model) if model else default_model()
    yolo = load_model(model)
    kw["project"] = str(Path(kw.get("project") or runs_dir("predict")).resolve())
    kw.setdefault("save", True)
    kw.setdefault("verbose", False)
    records, frames, n_det = [], 0, 0
    start = time.perf_counter()
    for result in yolo.predict(source=source, stream=True, **kw):
        frames += 1
        boxes = result.boxes
        n_det += len(boxes)
        if save_json:
            records.append(
                {
                    "path": result.path,
                    "frame": frames,
                    "boxes_xyxy": [[round(v, 2) for v in b] for b in boxes.xyxy.tolist()],
                    "scores": [round(v, 4) for v in boxes.conf.tolist()],
                    "classes": [int(c) for c in boxes.cls.tolist()],
                    "names": [result.names[int(c)] for c in boxes.cls.tolist()],
                }
            )
        total = getattr(getattr(yolo.predictor, "dataset", None), "frames", 0)
        if progress_every and frames % progress_every == 0:
            LOGGER.info(f"frame {frames}" + (f"/{total}" if total else ""))
    seconds = time.perf_counter() - start
    if frames == 0 and not _is_stream(str(source)):
        raise ValueError(f"source {source} gave no readable image or frame (every file skipped). Fix: check the files.")
    save_dir = Path(yolo.predictor.save_dir)
    out = {"save_dir": save_dir, "frames": frames, "seconds": seconds, "fps": frames / max(seconds, 1e-9)}
    out.update(detections=n_det, json=None)
    if save_json:
        save_dir.mkdir(parents=True, exist_ok=True)
        out["json"] = write_text_atomic(save_dir / "detections.json", json.dumps(records, indent=1))
    return out
