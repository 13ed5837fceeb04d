"""Train a detector from any shipped YAML, then score it with pycocotools and the VOC protocol.

The same as ``attnyolo train key=value ...``; ``python tools/train.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("train"))
