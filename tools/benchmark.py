"""Compare attention layers for speed and size, in one interleaved run.

The same as ``attnyolo benchmark key=value ...``; ``python tools/benchmark.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("benchmark"))
