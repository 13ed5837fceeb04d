"""Build any shipped (or Ultralytics) model YAML at any scale and print its summary and attention placements.

The same as ``attnyolo model_info key=value ...``; ``python tools/model_info.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("model_info"))
