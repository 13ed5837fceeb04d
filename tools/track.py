"""Track objects through a video or stream with Ultralytics' trackers; save annotated video, MOT text and JSON.

The same as ``attnyolo track key=value ...``; ``python tools/track.py help`` lists the keys.
"""

import sys

from attnyolo.commands import run

if __name__ == "__main__":
    sys.exit(run("track"))
