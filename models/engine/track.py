"""Multi-object tracking on videos and streams with Ultralytics' trackers (tools/track.py).

Detection runs exactly as :func:`attnyolo.engine.predict.predict` runs it (the same checkpoint loading and safety, the
same checked annotated output at the input's resolution and fps); Ultralytics' ``track`` mode then gives every box a
track id with BoT-SORT (Aharon et al. 2022, arXiv 2206.14651; the default), ByteTrack (Zhang et al., ECCV 2022, arXiv
2110.06864) or another tracker Ultralytics ships, configured by a tracker YAML. The tracks are written per video in the
MOTChallenge text format (Milan et al. 2016, arXiv 1603.00831, section 3.3; one line per box,
``frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z`` with frames counted from 1, pixels, and ``-1`` for the
3-D ``x,y,z`` of 2-D tracking) and as JSON.

Ultralytics' trackers import ``lap`` (``ultralytics/trackers/utils/matching.py``) and pip-install it at run time when it
is missing; here it is a declared dependency, and a missing one stops the run in one line before any tracker loads.
"""

from __future__ import annotations

import difflib
import glob
import json
import re
from pathlib import Path

import yaml
from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS
from ultralytics.engine.results import Results
from ultralytics.utils import ROOT
from ultralytics.utils.checks import check_version

from ..errors import MissingDependencyError
from ..utils.atomic import write_text_atomic
from .predict import _is_stream, check_source, open_model, predict

LAP_REQUIREMENT = ">=0.5.12"  # what ultralytics/trackers/utils/matching.py asks for
DEFAULT_TRACKER = "botsort.yaml"
TRACKERS_DIR = ROOT / "cfg" / "trackers"  # Ultralytics' tracker YAMLs: one per tracker_type, named after it
MOT_FOLDER = "mot"  # <save_dir>/mot/<video stem>.txt, as MOTChallenge names a sequence's results file
JSON_NAME = "tracks.json"


def require_lap() -> None:
    """Raise one line if ``lap`` (Ultralytics' trackers' assignment solver) is missing or too old.

    Raises:
        MissingDependencyError: Naming the requirement and the pip command.
    """
    try:
        import lap  # optional for everything but tracking; imported here so a missing one is reported, not installed
    except ImportError:
        version = None
    else:
        version = getattr(lap, "__version__", None)
    if version is None or not check_version(version, LAP_REQUIREMENT):
        found = "is not installed" if version is None else f"is {version}"
        raise MissingDependencyError(
            f"tracking needs the package lap{LAP_REQUIREMENT} (Ultralytics' trackers solve their assignments with it), "
            f"which {found} in this Python. Fix: pip install 'lap{LAP_REQUIREMENT}' (a dependency of attnyolo: "
            "reinstalling attnyolo installs it)."
        )


def check_video_source(source) -> str:
    """Validate a tracking source: a video file, a folder or glob of videos, a webcam index or a stream URL.

    Raises:
        FileNotFoundError: A path or glob that matches nothing.
        ValueError: A source with images (tracking follows objects through consecutive frames of one video), or a
            video OpenCV cannot open.
    """
    if source is None:
        raise ValueError("source= is required: a video file, a folder or glob of videos, a webcam index or a stream.")
    source = check_source(source)
    if _is_stream(source):
        return source
    path = Path(source)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file()]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
    kinds = {p: p.suffix.lower().lstrip(".") for p in files}
    images = sorted(str(p) for p, s in kinds.items() if s in IMG_FORMATS)
    videos = [p for p, s in kinds.items() if s in VID_FORMATS]
    if images:
        raise ValueError(
            f"source {source} holds images ({images[0]}{' ...' if len(images) > 1 else ''}): tracking follows objects "
            "through the frames of a video or stream. Fix: pass a video, a folder of videos or a stream; run "
            "`attnyolo predict` on images."
        )
    if not videos:
        raise ValueError(f"source {source} holds no video ({', '.join(sorted(VID_FORMATS))}). Fix: pass a video.")
    for video in videos:
        check_source(video)  # each one opens and has a frame
    return source


def stock_trackers() -> dict[str, Path]:
    """Ultralytics' own tracker YAMLs by ``tracker_type`` (``botsort``, ``bytetrack``, ...)."""
    found = {}
    for path in sorted(TRACKERS_DIR.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(cfg, dict) and isinstance(cfg.get("tracker_type"), str):
            found[cfg["tracker_type"]] = path
    return found


def check_tracker(tracker) -> Path:
    """The tracker YAML to run: one of Ultralytics' by file name, or the user's file, read as data and checked.

    A user's YAML must name one of Ultralytics' ``tracker_type`` values and give exactly the keys of that tracker's
    own YAML (a misspelt key would otherwise be ignored, and a missing one fail deep in the tracker), each of the
    same kind (number, whole number, true/false, text), thresholds from 0 to 1.

    Args:
        tracker: ``botsort.yaml``, ``bytetrack.yaml`` (any file name in Ultralytics' ``cfg/trackers``) or a path.

    Returns:
        The YAML's path.

    Raises:
        FileNotFoundError: Neither a file nor one of Ultralytics' tracker names.
        ValueError: One line naming the file, the key, the value and what is accepted.
    """
    text = str(tracker if tracker is not None else DEFAULT_TRACKER)
    stock = stock_trackers()
    path = Path(text).expanduser()
    if not path.is_file():
        if (TRACKERS_DIR / text).is_file():
            return TRACKERS_DIR / text
        names = ", ".join(p.name for p in stock.values())
        raise FileNotFoundError(f"tracker={text}: no such file, and not one of Ultralytics' trackers ({names}).")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"tracker={text}: not a readable YAML file ({' '.join(str(e).split())[:200]}).") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"tracker={text}: expected a mapping of settings (tracker_type: botsort, ...), not {cfg!r}.")
    kind = cfg.get("tracker_type")
    if kind not in stock:
        raise ValueError(f"tracker={text}: tracker_type {kind!r} is not one of {', '.join(stock)}.")
    defaults = yaml.safe_load(stock[kind].read_text(encoding="utf-8"))
    for key in cfg:
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults), n=1)
            hint = f" Did you mean {close[0]}?" if close else f" Keys of {kind}: {', '.join(defaults)}."
            raise ValueError(f"tracker={text}: unknown key {key!r} for tracker_type {kind}.{hint}")
    missing = [k for k in defaults if k not in cfg]
    if missing:
        raise ValueError(
            f"tracker={text}: missing {', '.join(missing)} for tracker_type {kind}. Fix: start from Ultralytics' "
            f"{stock[kind]} and change what you need."
        )
    for key, default in defaults.items():
        _check_setting(text, key, cfg[key], default)
    if cfg.get("with_reid") and cfg.get("model", "auto") != "auto" and not Path(str(cfg["model"])).is_file():
        raise ValueError(
            f"tracker={text}: model {cfg['model']!r} (the ReID model) is not a file. Fix: give a checkpoint path, or "
            "model: auto (the detector's own features)."
        )
    return path


def _check_setting(source: str, key: str, value, default) -> None:
    """Raise one line if ``value`` is not of the kind of Ultralytics' ``default`` for ``key``."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool) and value >= 0, "a whole number >= 0"
    elif isinstance(default, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        if ok and key.endswith("_thresh"):
            ok, kind = 0 <= value <= 1, "a number from 0 to 1"
    else:
        ok, kind = value is None or isinstance(value, str), "text"
    if not ok:
        raise ValueError(f"tracker={source}: {key}={value!r} must be {kind} (Ultralytics' default: {default!r}).")


def sequence_name(path: str) -> str:
    """A results file name for a video or stream: the video's stem, or the camera index / URL made file-safe."""
    name = path if _is_stream(path) else Path(path).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "stream"


class TrackRecorder:
    """Collects each frame's tracked boxes as :func:`track` receives them, per video or stream.

    Frames are numbered from 1 per sequence. For a video file read with ``vid_stride`` s, the k-th frame processed is
    the input's frame k * s (Ultralytics grabs s frames and keeps the last), so the numbers match the video's own; a
    live stream's frames are numbered as processed (a busy model skips frames of a live stream).

    Args:
        vid_stride: Ultralytics' ``vid_stride`` of the run.
    """

    def __init__(self, vid_stride: int = 1):
        """Start with no frames."""
        self.vid_stride = vid_stride
        self.frames: dict[str, list[dict]] = {}  # path -> one record per frame

    def __call__(self, result: Results) -> None:
        """Record one frame: the boxes that carry a track id (a tracker may pass unconfirmed boxes without one)."""
        records = self.frames.setdefault(result.path, [])
        stride = 1 if _is_stream(result.path) else self.vid_stride
        boxes = result.boxes
        tracked = boxes if boxes.is_track else boxes[:0]
        records.append(
            {
                "path": result.path,
                "frame": (len(records) + 1) * stride,
                "ids": [int(i) for i in tracked.id.tolist()] if tracked.is_track else [],
                "boxes_xyxy": [[round(v, 2) for v in b] for b in tracked.xyxy.tolist()],
                "scores": [round(v, 4) for v in tracked.conf.tolist()],
                "classes": [int(c) for c in tracked.cls.tolist()],
                "names": [result.names[int(c)] for c in tracked.cls.tolist()],
            }
        )

    def mot_text(self, path: str) -> str:
        """One sequence's tracks in the MOTChallenge format: ``frame,id,x,y,w,h,conf,-1,-1,-1`` per box."""
        lines = []
        for record in self.frames.get(path, []):
            for track_id, (x0, y0, x1, y1), score in zip(record["ids"], record["boxes_xyxy"], record["scores"]):
                lines.append(
                    f"{record['frame']},{track_id},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{score:.4f},-1,-1,-1"
                )
        return "".join(line + "\n" for line in lines)

    def write(self, save_dir: Path) -> tuple[list[Path], Path]:
        """Write ``<save_dir>/mot/<sequence>.txt`` per video or stream and ``<save_dir>/tracks.json``; return them."""
        mot = []
        (save_dir / MOT_FOLDER).mkdir(parents=True, exist_ok=True)
        for path in self.frames:
            mot.append(write_text_atomic(save_dir / MOT_FOLDER / f"{sequence_name(path)}.txt", self.mot_text(path)))
        records = [record for frames in self.frames.values() for record in frames]
        return mot, write_text_atomic(save_dir / JSON_NAME, json.dumps(records, indent=1))

    def track_ids(self) -> set[int]:
        """Every track id recorded."""
        return {i for frames in self.frames.values() for record in frames for i in record["ids"]}


def track(model=None, source=None, tracker: str = DEFAULT_TRACKER, persist: bool = False, **kw) -> dict:
    """Track objects through a video or stream; save the annotated video, MOTChallenge text files and JSON.

    Args:
        model: Checkpoint path, or a model loaded before (``attnyolo.engine.predict.open_model``); None means the
            newest best.pt of the default training run.
        source: A video file, a folder or glob of videos, a webcam index or a stream URL.
        tracker: ``botsort.yaml`` (BoT-SORT), ``bytetrack.yaml`` (ByteTrack), another of Ultralytics' tracker YAMLs by
            name, or the path of your own (checked by :func:`check_tracker`).
        persist: Ultralytics' ``persist``: keep the trackers (and so the ids) of an earlier call on the same model
            object, and across the videos of one source. Within one video or stream, ids always carry over.
        **kw: Ultralytics predict/track settings (conf, iou, imgsz, device, vid_stride, show, project, name, ...).

    Returns:
        :func:`attnyolo.engine.predict.predict`'s summary, plus ``mot`` (the MOT files), ``json`` (``tracks.json``),
        ``tracks`` (the number of distinct track ids) and ``tracked_boxes`` (boxes with a track id, all frames).

    Raises:
        MissingDependencyError: ``lap`` is missing.
        ConnectionError: A stream that stopped before its end; the frames tracked so far are saved first.
    """
    require_lap()
    source = check_video_source(source)
    tracker_path = check_tracker(tracker)
    yolo = open_model(model)
    recorder = TrackRecorder(int(kw.get("vid_stride") or 1))
    try:
        out = predict(yolo, source, tracker=tracker_path, persist=persist, on_result=recorder, **kw)
    except ConnectionError:
        if recorder.frames and getattr(yolo, "predictor", None) is not None:
            recorder.write(Path(yolo.predictor.save_dir))  # never lose the frames tracked before the stream dropped
        raise
    out["mot"], out["json"] = recorder.write(Path(out["save_dir"]))
    out["tracks"] = len(recorder.track_ids())
    out["tracked_boxes"] = sum(len(r["ids"]) for frames in recorder.frames.values() for r in frames)
    return out
