"""Check the CUDA and mixed-precision paths on a GPU in one run (docs/gpu.md: what it needs, how to run it).

The same as ``attnyolo gpu_check key=value ...``; ``python tools/gpu_check.py help`` lists the keys.
"""

import sys
from importlib.util import find_spec

if __name__ == "__main__":
    # A GPU machine may come with its own PyTorch and no Ultralytics: say so in one line before importing the package,
    # which needs it. The command itself names every other module it misses.
    missing = [name for name in ("torch", "ultralytics", "attnyolo") if find_spec(name) is None]
    if missing:
        print(
            f"error: the GPU check needs {', '.join(missing)}, not importable here. Fix: docs/gpu.md", file=sys.stderr
        )
        sys.exit(1)
    from attnyolo.commands import run

    sys.exit(run("gpu_check"))
