"""Generate the offline sample dataset: synthetic shapes on photo backgrounds, in YOLO, VOC and COCO formats.

The same as ``attnyolo make_sample_data key=value ...``; ``python tools/make_sample_data.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("make_sample_data"))
