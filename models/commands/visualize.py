"""Draw what the attention layers do on one image, as PNG files.

The CoordAtt/ELA attention maps (g^h ⊗ g^w, a_h ⊗ a_w, averaged over channels) overlaid on the image, and Grad-CAM of
one detection before and after each attention layer.

Usage:
    attnyolo visualize model=runs/train/exp/weights/best.pt source=data/sample/images/val/000241.jpg
    attnyolo visualize model=best.pt source=bus.jpg layers=5,8 detection=1 conf=0.1
    attnyolo visualize model=best.pt source=bus.jpg gradcam=False          # attention maps only
Keys: model (checkpoint), source (image), layers (rows, comma list; default: every attention row), imgsz (default:
the training size), detection (rank of the NMS-kept box to explain, 0 = best), conf, iou, maps, gradcam, project,
name, exist_ok. Files: <image>_attention_rowNN_<layer>.png and <image>_gradcam_rowNN_<layer>_<before|after>_det<k>_
<class>.png in project/name (default runs/visualize/exp).
trust_checkpoint=True reads .pt files you vouch for with full unpickling (docs/security.md).
"""

from ..analysis.visualize import visualize
from ..evaluation.report import run_directory
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, fail, parse_kv_args
from ..utils.paths import runs_dir

DEFAULTS = {
    "model": None,
    "source": None,
    "layers": None,
    "imgsz": None,
    "detection": 0,
    "conf": 0.25,
    "iou": 0.7,
    "maps": True,
    "gradcam": True,
    "project": None,
    "name": "exp",
    "exist_ok": False,
    TRUST_KEY: False,
}


def _rows(value):
    """layers= as a list of ints: 5 -> [5], '5,8' or (5, 8) -> [5, 8], None -> None."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        return [int(v) for v in items if str(v).strip() != ""]
    except ValueError:
        fail(f"layers={value!r} must be row numbers, e.g. layers=5,8 (see `attnyolo model_info` for the rows).")


def main(argv):
    """Parse key=value arguments, write the pictures and print their paths."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    apply_trust_checkpoint(args)
    if not args["model"] or not args["source"]:
        fail("give model=<checkpoint.pt> and source=<image>. Run with 'help' for usage.")
    out = run_directory(args["project"] or runs_dir("visualize"), args["name"], args["exist_ok"])
    paths = visualize(
        args["model"],
        args["source"],
        layers=_rows(args["layers"]),
        imgsz=args["imgsz"],
        detection=args["detection"],
        conf=args["conf"],
        iou=args["iou"],
        maps=args["maps"],
        gradcam=args["gradcam"],
        out_dir=out,
    )
    for path in paths:
        print(f"wrote {path}")
    if not paths:
        print("nothing written (maps=False and gradcam=False?)")
    return 0
