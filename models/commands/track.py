"""Track objects through a video or stream with Ultralytics' trackers; save the annotated video, MOT text and JSON.

Usage:
    attnyolo track source=data/sample/sample.mp4                  # newest best.pt under runs/train, BoT-SORT
    attnyolo track model=best.pt source=video.mp4 tracker=bytetrack.yaml conf=0.2
    attnyolo track model=best.pt source=0 show=True                # webcam 0
    attnyolo track model=best.pt source=rtsp://host/stream tracker=my_tracker.yaml
Keys: model, source (a video, a folder or glob of videos, a webcam index or a stream URL), tracker (botsort.yaml,
bytetrack.yaml, another of Ultralytics' tracker YAMLs, or your own file: checked against Ultralytics' keys), persist
(Ultralytics' persist: keep the trackers across the videos of one source), plus every Ultralytics predict setting
(conf: 0.1 as Ultralytics' track, iou, imgsz, device, vid_stride, show, project, name, ...). Writes the annotated
video at the input's resolution and fps, mot/<video>.txt (MOTChallenge: frame,id,x,y,w,h,conf,-1,-1,-1, frames from
1) and tracks.json. trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from ..engine.track import DEFAULT_TRACKER, track
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, check_run_settings, parse_kv_args, ultralytics_keys

DEFAULTS = {"model": None, "source": None, "tracker": DEFAULT_TRACKER, "persist": False, TRUST_KEY: False}


def main(argv):
    """Track, then print where the video, the MOT files and the JSON went, the tracks and the frames per second."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys())
    apply_trust_checkpoint(args)
    check_run_settings(args, "predict")
    out = track(**args)
    steady = f", then {out['steady_fps']:.1f} frames/s" if out["steady_fps"] is not None else ""
    print(
        f"{out['frames']} frame(s), {out['tracks']} track(s), {out['tracked_boxes']} tracked boxes; start-up "
        f"{out['startup_s']:.2f} s (model, predictor, first frame){steady} ({out['fps']:.1f} frames/s overall)"
    )
    print(f"annotated output: {out['save_dir']}")
    print(f"tracks: {', '.join(map(str, out['mot']))} (MOTChallenge), {out['json']}")
    return 0
