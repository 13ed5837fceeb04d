"""Score a detector on a dataset split with pycocotools (COCO protocol) and the PASCAL VOC devkit protocol.

The same as ``attnyolo val key=value ...``; ``python tools/val.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("val"))
