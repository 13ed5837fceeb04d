"""Ablation: several models, one recipe, one seed, one dataset, compared in one table and one figure.

The same as ``attnyolo ablate key=value ...``; ``python tools/ablate.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("ablate"))
