"""Run a trained detector on images, a folder, a glob, a video, a webcam or a stream; save annotated output.

Usage:
    attnyolo predict source=data/sample/images/val            # newest best.pt under runs/train
    attnyolo predict model=runs/train/exp/weights/best.pt source=data/sample/sample.mp4 save_json=True
    attnyolo predict model=best.pt source=0 show=True           # webcam 0
    attnyolo predict model=best.pt source="photos/*.jpg" conf=0.4 save_txt=True
Keys: model, source, save_json (detections.json), plus every Ultralytics predict setting (conf, iou, imgsz, device,
save_txt, show, project, name, ...). Output keeps the input's resolution (and fps for video).
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from ..engine.predict import predict
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, check_run_settings, parse_kv_args, ultralytics_keys

DEFAULTS = {"model": None, "source": None, "save_json": False, TRUST_KEY: False}


def main(argv):
    """Predict, then print where the output went and the frames per second."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys())
    apply_trust_checkpoint(args)
    check_run_settings(args, "predict")
    out = predict(**args)
    steady = f", then {out['steady_fps']:.1f} frames/s" if out["steady_fps"] is not None else ""
    print(
        f"{out['frames']} image(s)/frame(s), {out['detections']} detections; start-up {out['startup_s']:.2f} s "
        f"(model, predictor, first frame){steady} ({out['fps']:.1f} frames/s overall)"
    )
    print(f"annotated output: {out['save_dir']}")
    if out["json"]:
        print(f"detections: {out['json']}")
    return 0
