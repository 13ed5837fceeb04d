"""Time what tracking adds per frame over predict on one video, interleaved.

The same as ``attnyolo benchmark_track key=value ...``; ``python tools/benchmark_track.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("benchmark_track"))
