"""Convert a PASCAL VOCdevkit or COCO folder into Ultralytics' YOLO layout, keeping the original annotations.

The same as ``attnyolo convert key=value ...``; ``python tools/convert.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("convert"))
