"""Run a trained detector on images, a folder, a glob, a video, a webcam or a stream; save annotated output.

The same as ``attnyolo predict key=value ...``; ``python tools/predict.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("predict"))
