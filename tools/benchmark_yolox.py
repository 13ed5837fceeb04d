"""Time YOLOX-Nano against YOLOv8n per training step, and batched SimOTA against a per-image loop, on this CPU.

The same as ``attnyolo benchmark_yolox key=value ...``; ``python tools/benchmark_yolox.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("benchmark_yolox"))
