"""Convert a checkpoint another project wrote into an AttnYOLO (Ultralytics) checkpoint.

Usage:
    attnyolo import_weights source=yolox_s.pth out=weights/yolox-s.pt
    attnyolo import_weights source=best.pt out=imported.pt      # a checkpoint of ultralytics/yolov5 or a fork
Keys: source (the file to convert), out (the .pt to write; nothing is written unless the whole conversion succeeds;
out= the source file itself is refused unless overwrite=True, since the original's optimizer state and options go),
model (a model YAML to map into, where the format allows a choice), nc (number of classes, likewise),
legacy (True for YOLOX's legacy weights, its README's "Legacy models": refused, as their ImageNet input normalisation
cannot be folded exactly into the model; use the current release 0.1.1rc0 weights),
trust_checkpoint (True: the file is yours, read it with full unpickling; by default a file that references anything
checkpoints never hold is refused).
The formats it reads are listed when a file matches none of them.
"""

from ..engine.importing import import_weights
from ..utils.cli import TRUST_KEY, apply_trust_checkpoint, fail, parse_kv_args

DEFAULTS = {
    "source": None,
    "out": None,
    "model": None,
    "nc": None,
    "legacy": False,
    "overwrite": False,
    TRUST_KEY: False,
}


def main(argv):
    """Parse key=value arguments, convert, and print what was mapped."""
    args = parse_kv_args(argv, DEFAULTS, __doc__)
    apply_trust_checkpoint(args)
    if not args["source"] or not args["out"]:
        fail("give source=<checkpoint to convert> and out=<file.pt>. Run with 'help' for usage.")
    report = import_weights(
        str(args["source"]), str(args["out"]), args["model"], args["nc"], args["legacy"], args["overwrite"]
    )
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0
