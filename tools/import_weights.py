"""Convert a checkpoint another project wrote into an AttnYOLO (Ultralytics) checkpoint.

The same as ``attnyolo import_weights key=value ...``; ``python tools/import_weights.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("import_weights"))
