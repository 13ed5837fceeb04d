"""``python -m attnyolo <command> key=value ...``, the same as the ``attnyolo`` console command."""

import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main())
