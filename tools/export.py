"""Export a trained checkpoint with Ultralytics' exporters; ONNX exports are checked against PyTorch.

The same as ``attnyolo export key=value ...``; ``python tools/export.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("export"))
