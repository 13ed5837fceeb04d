"""Draw what the attention layers do on one image, as PNG files.

The same as ``attnyolo visualize key=value ...``; ``python tools/visualize.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("visualize"))
