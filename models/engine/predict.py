"""Inference on images, folders, globs, videos, webcams and streams (tools/predict.py)."""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS
from ultralytics.engine.model import Model
from ultralytics.engine.results import Results
from ultralytics.models.yolo.detect import DetectionPredictor
from ultralytics.utils import LOGGER

from ..integration.checkpoints import load_model
from ..integration.datasets import predictor_frame_counts
from ..utils.atomic import write_failure, write_image_atomic, write_text_atomic
from ..utils.paths import runs_dir
from .runs import latest_checkpoint

# FFmpeg's log level for OpenCV, and FFmpeg's AV_LOG_QUIET; set with setdefault, so a value the user set wins.
FFMPEG_LOGLEVEL_ENV, FFMPEG_QUIET = "OPENCV_FFMPEG_LOGLEVEL", "-8"


def _is_stream(source: str) -> bool:
    """Webcam indices and network streams are opened by Ultralytics; everything else must exist on disk."""
    return source.isnumeric() or source.lower().startswith(("rtsp://", "rtmp://", "http://", "https://", "tcp://"))


def check_source(source) -> str:
    """Validate a prediction source before Ultralytics opens it; return it as a string.

    Raises:
        FileNotFoundError: A path or glob that matches nothing.
        ValueError: A video file OpenCV cannot open, or a file type that is neither image nor video.
    """
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
            # FFmpeg prints its own line for a damaged file ("moov atom not found"); the error below says it in one.
            # OpenCV reads this when FFmpeg is first used in the process, which for the tools is this probe.
            os.environ.setdefault(FFMPEG_LOGLEVEL_ENV, FFMPEG_QUIET)
            cap = cv2.VideoCapture(str(path))
            ok = cap.isOpened() and cap.read()[0]
            cap.release()
            if not ok:
                raise ValueError(f"video {source} cannot be opened or has no frames (damaged or unsupported codec).")
        elif suffix not in IMG_FORMATS:
            raise ValueError(f"source {source} is neither an image ({', '.join(sorted(IMG_FORMATS))}) nor a video.")
        elif _read_quietly(path) is None:  # Ultralytics would skip it and report zero frames
            raise ValueError(f"image {source} cannot be read (corrupt or not really a {suffix}). Fix: replace it.")
    return source


def _read_quietly(path: Path):
    """``cv2.imread(path)`` with the process's standard error sent to the null device meanwhile.

    libjpeg prints its own line for a damaged file ("Premature end of JPEG file") straight to file descriptor 2, and
    the caller's error says it in one.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return cv2.imread(str(path))
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def default_model() -> Path:
    """The newest best.pt of the default training run, or an error that says how to make one."""
    best = latest_checkpoint(runs_dir("train"), "best.pt")
    if best is None:
        raise FileNotFoundError(
            f"no model= given and no trained model under {runs_dir('train')}. Fix: run `python tools/train.py` "
            "first (a few minutes on CPU), or pass model=path/to/best.pt."
        )
    return best


def open_model(model=None) -> Model:
    """``model`` if it is a loaded model, else the checkpoint it names, loaded safely (None: :func:`default_model`).

    Passing the loaded model to later calls keeps its predictor, which tracking with ``persist=True`` continues from.
    """
    if isinstance(model, Model):
        return model
    return load_model(str(model) if model else default_model())  # as given: Path() would turn a URL's '//' into '/'


def _open_failure(source: str, error: ConnectionError) -> ConnectionError:
    """A one-line error for a camera or stream that cannot be opened or read at all."""
    if source.isnumeric():
        return ConnectionError(
            f"source={source}: camera {source} cannot be opened (no camera with that index, no permission, or it is "
            "in use). Fix: check the camera index (source=0, 1, ...) or pass an image, folder or video file."
        )
    return ConnectionError(
        f"source={source}: the stream cannot be opened or sends no frames ({' '.join(str(error).split())}). Fix: "
        "check the URL and that the stream is running."
    )


def _video_frame_counts(paths: set[str], vid_stride: int) -> dict[str, int]:
    """How many frames Ultralytics' video reader should return for each video file (its own formula)."""
    counts = {}
    for path in paths:
        if Path(path).suffix.lower().lstrip(".") in VID_FORMATS:
            cap = cv2.VideoCapture(path)
            counts[path] = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) / vid_stride)
            cap.release()
    return counts


def _warn_short_videos(per_path: dict[str, int], vid_stride: int, save_dir: Path) -> list[str]:
    """Warn for every video that ended before its declared frame count (undecodable frames); return the warnings."""
    lines = []
    for path, expected in _video_frame_counts(set(per_path), vid_stride).items():
        got = per_path[path]
        if got < expected:
            lines.append(
                f"video {path} ended after {got} of its {expected} frames (the rest cannot be decoded: damaged or "
                f"truncated file); {got} frames were written to {save_dir}."
            )
            warnings.warn(lines[-1], UserWarning, stacklevel=3)
    return lines


class _UnreadableImages(logging.Filter):
    """Collects Ultralytics' per-file ``Image Read Error <path>`` warnings instead of letting each print a line.

    A folder of thousands of empty or damaged files would otherwise print thousands of lines; they are counted and
    listed in a file instead (:func:`_report_unreadable`).
    """

    MARK = "Image Read Error"

    def __init__(self, level: int) -> None:
        """Start with no paths; ``level``: the logger's own level, which every other record must still meet."""
        super().__init__()
        self.paths: list[str] = []
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the path of an unreadable-image warning and drop the record; let every other record through."""
        message = record.getMessage()
        if self.MARK not in message:
            return record.levelno >= self.level
        self.paths.append(message.split(self.MARK, 1)[1].strip())
        return False


def _report_unreadable(paths: list[str], source, save_dir: Path) -> str | None:
    """One warning for the files of ``source`` that could not be read, listed in ``save_dir/unreadable.txt``."""
    if not paths:
        return None
    save_dir.mkdir(parents=True, exist_ok=True)
    listing = write_text_atomic(save_dir / "unreadable.txt", "".join(f"{path}\n" for path in paths))
    line = f"{len(paths)} file(s) of source={source} could not be read as images (empty or damaged) and were skipped; "
    line += f"listed in {listing}"
    warnings.warn(line, UserWarning, stacklevel=3)
    return line


def _quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's own log lines for camera and stream opens (read by OpenCV at each open)."""
    os.environ.setdefault(FFMPEG_LOGLEVEL_ENV, FFMPEG_QUIET)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _stream_stopped(counts) -> bool:
    """Whether a camera or stream loader ended on a live source (no frame count): such a source never ends by itself.

    A stream of known length may end normally with fewer frames processed than it has: without ``stream_buffer``
    Ultralytics skips frames that arrive while the model is busy.

    Args:
        counts: The predictor's frame counts (:func:`attnyolo.integration.datasets.predictor_frame_counts`).
    """
    return isinstance(counts, list) and any(isinstance(c, float) and math.isinf(c) for c in counts)


class AttnDetectionPredictor(DetectionPredictor):
    """Ultralytics' ``DetectionPredictor`` whose annotated output is never lost without an error.

    Ultralytics writes annotated images with ``cv2.imwrite`` and ignores its result (on a full disk one image of four
    is written and the run reports success), and a ``cv2.VideoWriter`` reports failed frames only in OpenCV's log.
    Here images (and video frames kept with ``save_frames``) are written atomically, raising the OS error that stopped
    them, and each video is checked once written: a video with fewer frames than were written to it is removed (it is
    truncated) and the failure raised, naming the file.
    """

    def save_predicted_images(self, save_path: Path, frame: int | None = 0):
        """Save the annotated image or video frame as Ultralytics does, raising an ``OSError`` where a write fails."""
        im = self.plotted_img
        if self.dataset.mode not in {"stream", "video"}:
            write_image_atomic(Path(save_path).with_suffix(".jpg"), im)  # Ultralytics' name: JPG for best support
            return
        keep_frames, self.args.save_frames = self.args.save_frames, False  # written below instead
        try:
            super().save_predicted_images(save_path, frame)
        finally:
            self.args.save_frames = keep_frames
        self.frames_written[save_path] = self.frames_written.get(save_path, 0) + 1
        if keep_frames:  # Ultralytics' names: <save_dir>/<stem>_frames/<stem>_<frame>.jpg
            frames = Path(self.save_dir) / f"{Path(save_path).stem}_frames"
            frames.mkdir(parents=True, exist_ok=True)
            write_image_atomic(frames / f"{Path(save_path).stem}_{frame}.jpg", im)

    def stream_inference(self, *args, **kwargs):
        """Ultralytics' inference loop, then a check of every video it wrote (its writers are released by then)."""
        self.frames_written: dict[Path, int] = {}  # video save_path -> frames given to its writer
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a line per failed frame; reported below
        try:
            yield from super().stream_inference(*args, **kwargs)
        finally:
            cv2.utils.logging.setLogLevel(level)
        self.check_videos()

    def check_videos(self) -> None:
        """Raise, naming the file, if a video written by this run has fewer frames than were written to it.

        Raises:
            OSError: The cause (:func:`attnyolo.utils.atomic.write_failure`); the truncated video is removed.
        """
        written, self.frames_written = self.frames_written, {}
        for save_path, count in written.items():
            # The writer's file is save_path with the container's suffix (.avi; .mp4 on macOS), created on opening.
            files = [Path(save_path).with_suffix(s) for s in (".avi", ".mp4")]
            video = next((f for f in files if f.is_file()), files[0])
            cap = cv2.VideoCapture(str(video))
            frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
            cap.release()
            if frames < count:
                error = write_failure(video)
                video.unlink(missing_ok=True)
                raise error


def predict(
    model=None,
    source=None,
    save_json: bool = False,
    progress_every: int = 25,
    *,
    tracker: str | None = None,
    persist: bool = False,
    on_result: Callable[[Results], None] | None = None,
    **kw,
) -> dict:
    """Run a checkpoint on a source, save annotated output, and report frames per second.

    Start-up (loading the model, setting up Ultralytics' predictor, the first frame) and the steady rate of the frames
    after it are timed separately: on a short video the start-up dominates a single overall rate.

    Args:
        model: Checkpoint path, or a model this function loaded before (``YOLO``); None means the newest best.pt of
            the default training run.
        source: Image, folder, glob, video file, webcam index or stream URL.
        save_json: Also write ``detections.json`` (one entry per image/frame, boxes in pixels xyxy).
        progress_every: Log progress every this many video frames.
        tracker: A tracker YAML: run Ultralytics' ``track`` instead of ``predict`` (:mod:`attnyolo.engine.track`
            checks it first); the results then carry track ids.
        persist: With ``tracker``, Ultralytics' ``persist``: keep the trackers of an earlier call on the same model.
        on_result: Called with each result (an image or frame) as it comes.
        **kw: Ultralytics predict settings (conf, iou, imgsz, device, save_txt, project, name, ...).

    Returns:
        ``{"save_dir", "frames", "seconds", "fps", "startup_s", "steady_fps", "detections", "json", "warnings"}``:
        ``fps`` over everything, ``startup_s`` until the first result, ``steady_fps`` over the frames after it (None
        with a single frame); ``warnings`` lists videos that ended early.

    Raises:
        ConnectionError: A camera or stream that cannot be opened, or that stopped before its end (after the frames
            read so far were saved).
    """
    if source is None:
        raise ValueError("source= is required: an image, folder, glob, video, webcam index or stream URL.")
    start = time.perf_counter()
    source = check_source(source)
    yolo = open_model(model)
    kw["project"] = str(Path(kw.get("project") or runs_dir("predict")).resolve())
    kw.setdefault("save", True)
    kw.setdefault("verbose", False)
    records, frames, n_det, per_path = [], 0, 0, {}
    first = None
    if tracker is None:
        results = yolo.predict(source=source, stream=True, predictor=AttnDetectionPredictor, **kw)
    else:
        kw.update(tracker=str(tracker), persist=persist)
        results = yolo.track(source=source, stream=True, predictor=AttnDetectionPredictor, **kw)
    if _is_stream(source):
        _quiet_opencv()  # OpenCV and FFmpeg print their own lines on a failed open; the error below says it in one
    unreadable, level = _UnreadableImages(LOGGER.level), LOGGER.level
    LOGGER.setLevel(min(level or logging.WARNING, logging.WARNING))  # counted also when YOLO_VERBOSE=false hides them
    LOGGER.addFilter(unreadable)
    try:
        for result in results:
            if first is None:
                first = time.perf_counter()
            frames += 1
            per_path[result.path] = per_path.get(result.path, 0) + 1
            boxes = result.boxes
            n_det += len(boxes)
            if on_result is not None:
                on_result(result)
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
            total = predictor_frame_counts(yolo.predictor)
            if progress_every and frames % progress_every == 0:
                LOGGER.info(f"frame {frames}" + (f"/{total}" if isinstance(total, int) and total else ""))
    except ConnectionError as error:
        if frames == 0 and _is_stream(source):
            raise _open_failure(source, error) from None
        raise
    finally:
        LOGGER.removeFilter(unreadable)
        LOGGER.setLevel(level)
    end = time.perf_counter()
    if frames == 0 and not _is_stream(str(source)):
        skipped = f"; {len(unreadable.paths)} could not be read as images" if unreadable.paths else ""
        raise ValueError(
            f"source {source} gave no readable image or frame (every file skipped{skipped}). Fix: check the files."
        )
    save_dir = Path(yolo.predictor.save_dir)
    out = {"save_dir": save_dir, "frames": frames, "seconds": end - start, "fps": frames / max(end - start, 1e-9)}
    out["startup_s"] = (first or end) - start
    out["steady_fps"] = (frames - 1) / max(end - first, 1e-9) if first is not None and frames > 1 else None
    out.update(detections=n_det, json=None)
    if save_json:
        save_dir.mkdir(parents=True, exist_ok=True)
        out["json"] = write_text_atomic(save_dir / "detections.json", json.dumps(records, indent=1))
    out["warnings"] = _warn_short_videos(per_path, int(kw.get("vid_stride") or 1), save_dir)
    out["warnings"] += [line] if (line := _report_unreadable(unreadable.paths, source, save_dir)) else []
    if _is_stream(source) and _stream_stopped(predictor_frame_counts(yolo.predictor)):
        raise ConnectionError(
            f"source={source}: the stream stopped after {frames} frames (connection lost or camera disconnected); "
            f"the {frames} frames were written to {save_dir}."
        )
    return out
