"""Test-wide settings: Ultralytics must never reach for the network or pip from a test run."""

import os
import tempfile

# Set before anything imports ultralytics: these are read at its import time and inherited by subprocesses.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="attnyolo-ultralytics-cfg-"))
os.environ.setdefault("YOLO_VERBOSE", "false")
