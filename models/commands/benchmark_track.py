"""Time what tracking adds per frame over predict on one video, both through the tools' own code, interleaved.

Usage:
    attnyolo benchmark_track source=data/sample/sample.mp4 imgsz=160          # newest best.pt under runs/train
    attnyolo benchmark_track model=best.pt source=video.mp4 tracker=bytetrack.yaml rounds=9 threads=2
Keys: model, source (a video file), tracker (as attnyolo track), rounds (5 timed passes per mode, after one warm-up
pass each), conf (0.1, Ultralytics' track default, for both modes), threads (torch CPU threads; default torch's
choice), plus Ultralytics predict settings for both modes (imgsz, device, ...). Prints milliseconds per frame and the
overhead (median of the rounds' paired ratios). Not a test: numbers depend on the machine and its load.
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

import torch

from ..analysis.tracking import format_track_overhead, track_overhead
from ..engine.track import DEFAULT_TRACKER
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, check_run_settings, parse_kv_args, ultralytics_keys

DEFAULTS = {
    "model": None,
    "source": None,
    "tracker": DEFAULT_TRACKER,
    "rounds": 5,
    "conf": 0.1,
    "threads": None,
    TRUST_KEY: False,
}


def main(argv):
    """Parse key=value arguments, run the interleaved passes, print the table."""
    args = parse_kv_args(argv, DEFAULTS, __doc__, passthrough=ultralytics_keys())
    apply_trust_checkpoint(args)
    check_run_settings(args, "predict")
    threads = args.pop("threads")
    if threads:
        torch.set_num_threads(int(threads))
    print(format_track_overhead(track_overhead(**args)))
    return 0
