"""Test-wide settings: Ultralytics must never reach for the network or pip from a test run."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Set before anything imports ultralytics: these are read at its import time and inherited by subprocesses.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="attnyolo-ultralytics-cfg-"))
os.environ.setdefault("YOLO_VERBOSE", "false")
# A self-check pass recorded outside the tested range would skip the check a later test (or CI's second run of the
# fast tier) expects to see: every test session gets an empty cache of its own.
os.environ["ATTNYOLO_CACHE_DIR"] = tempfile.mkdtemp(prefix="attnyolo-cache-")


# ------------------------------------------------------------------------ untrusted files shared by several test dirs
class _WritesMarker:
    """Pickles as a call that creates ``marker``: the proof a loader ran code from a file (it must not)."""

    def __init__(self, marker, how):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "os.system":
            return os.system, (f"touch '{self.marker}'",)
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def write_malicious_checkpoint(path, marker, how="os.system"):
    """A checkpoint shaped like Ultralytics' (a real DetectionModel under "model") whose pickle also runs code."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    cfg = {"nc": 2, "backbone": [[-1, 1, "Conv", [8, 3, 2]]], "head": [[[0], 1, "Detect", ["nc"]]]}
    torch.save({"model": DetectionModel(cfg, verbose=False), "epoch": -1, "x": _WritesMarker(marker, how)}, path)
    return path


@pytest.fixture
def malicious_checkpoint(tmp_path):
    """``make(how="os.system") -> (checkpoint path, marker path)``; the marker appears only if code ran."""

    def make(how="os.system", name="evil.pt"):
        marker = tmp_path / f"ran-{how}-{name}"
        return write_malicious_checkpoint(tmp_path / name, marker, how), marker

    return make


# ------------------------------------------------------------------------------------------------ commands in-process
@pytest.fixture
def run_command(capsys, monkeypatch):
    """``run(name, *args, cwd=None)``: ``attnyolo <name> args`` in this process, as ``tools/<name>.py`` runs it.

    Returns a ``subprocess.CompletedProcess`` (``returncode``, ``stdout``, ``stderr``), so a test reads the same way
    whether the command ran here or in a fresh interpreter. Starting an interpreter costs about two seconds (torch and
    Ultralytics imports), so tests of error messages run here; each tool keeps end-to-end subprocess tests too.
    """
    import subprocess

    from attnyolo.commands import run as run_in_process

    def run(name, *args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()  # drop what earlier calls printed
        try:
            code = run_in_process(name, [str(a) for a in args])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess([name, *map(str, args)], code, out, err)

    return run


@pytest.fixture(scope="session")
def tool():
    """``tool(name, *args, cwd=None, env=None, timeout=600)``: ``python tools/<name>.py args`` in a fresh interpreter.

    For the end-to-end tests of what a user runs: the script's own imports, exit status and output. ``env`` adds
    variables to this process's environment (which carries the settings above), e.g. ``{"YOLO_VERBOSE": "true"}``
    for Ultralytics' log. Returns the ``subprocess.CompletedProcess`` (text ``stdout`` and ``stderr``).
    """
    import subprocess

    tools = Path(__file__).resolve().parents[1] / "tools"

    def run(name, *args, cwd=None, env=None, timeout=600):
        return subprocess.run(
            [sys.executable, str(tools / f"{name}.py"), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
        )

    return run
