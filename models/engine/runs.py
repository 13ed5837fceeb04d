"""Training runs on disk: which ``last.pt`` can be resumed, the newest run, and what to do after Ctrl-C.

Ultralytics writes ``<project>/<name>/weights/last.pt`` after every epoch with the optimizer state and the epoch
index, and its final step rewrites ``last.pt`` and ``best.pt`` without the optimizer and with epoch -1. These
functions read that state without running code from the file (:func:`attnyolo.integration.checkpoints.read_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, first_line
from ..integration.checkpoints import read_checkpoint
from ..utils.paths import runs_dir

FINISHED = -1  # the epoch Ultralytics' final step writes into a run's checkpoints


def latest_checkpoint(project: str | Path | None = None, name: str = "last.pt") -> Path | None:
    """The most recently written ``weights/<name>`` under ``project`` (default ``runs/train``), or None."""
    project = Path(project) if project is not None else runs_dir("train")
    found = sorted(project.glob(f"*/weights/{name}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run_epoch(last: str | Path) -> int | None:
    """The state a run's ``last.pt`` records, read without running code from the file.

    Returns:
        The index of the last finished epoch (0 after the first) for a run that can be resumed (optimizer state
        kept); :data:`FINISHED` (-1) for a run that finished, whose final step stripped the optimizer; None for a
        file that is damaged, refused or not a checkpoint dict.
    """
    try:
        ckpt = read_checkpoint(last, mmap=True)
    except (CheckpointError, OSError):
        return None
    if not isinstance(ckpt, dict):
        return None
    if ckpt.get("epoch", FINISHED) < 0 or ckpt.get("optimizer") is None:
        return FINISHED
    return int(ckpt["epoch"])


def resumable_epoch(last: str | Path) -> int | None:
    """The epoch after which the run of ``last`` (a ``last.pt``) stopped, or None when it cannot be resumed.

    A run that finished has a stripped ``last.pt`` (Ultralytics' final step removes the optimizer and sets epoch -1);
    a damaged or refused file cannot be resumed either (:func:`run_epoch` tells the two apart).
    """
    epoch = run_epoch(last)
    return None if epoch is None or epoch == FINISHED else epoch


def latest_interrupted_checkpoint(project: str | Path | None = None) -> Path:
    """The ``last.pt`` of the newest run under ``project`` (default ``runs/train``) that did not finish.

    Raises:
        FileNotFoundError: No ``weights/last.pt`` at all, or every run finished; the message says which and the fix.
        CheckpointError: No run can be resumed and one has a damaged ``last.pt`` (a copy cut short, a kill mid-write
            of a writer that is not atomic): named with its reason, never reported as finished.
    """
    project = Path(project) if project is not None else runs_dir("train")
    found = sorted(project.glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not found:
        raise FileNotFoundError(
            f"resume=True found no weights/last.pt under {project}. Fix: pass resume=path/to/last.pt."
        )
    damaged = []
    for last in found:
        epoch = run_epoch(last)
        if epoch is None:
            damaged.append(last)
        elif epoch != FINISHED:
            return last
    if damaged:  # a run whose last.pt cannot be read did not finish cleanly: never reported as finished
        try:
            read_checkpoint(damaged[0], mmap=True)
            reason = "it holds no training state"
        except (CheckpointError, OSError) as error:
            reason = (
                first_line(error).split(". Fix:")[0].rstrip(".")
            )  # the reader's own fix is for a file given by hand
            reason = reason.split(": ", 1)[1] if reason.startswith(str(damaged[0])) and ": " in reason else reason
        raise CheckpointError(
            f"resume=True found no run under {project} that can be resumed: {damaged[0]} (the newest run that did not "
            f"finish) is damaged ({reason}), so its run was interrupted but cannot continue from it"
            + (f"; {len(found) - len(damaged)} other run(s) finished" if len(found) > len(damaged) else "")
            + ". Fix: start that run again (its best.pt, if readable, can be fine-tuned with model=)."
        )
    raise FileNotFoundError(
        f"resume=True found no interrupted run under {project}: all {len(found)} runs there finished (newest: "
        f"{found[0]}). Fix: start a new run, or fine-tune a finished one with model=<its best.pt>."
    )


def interrupt_advice(state: dict) -> str | None:
    """What works after Ctrl-C during :func:`attnyolo.engine.trainer.train`, judged by the files the run left.

    Args:
        state: ``{"yolo": the YOLO model being trained (once built), "data": the data YAML}``.
    """
    trainer = getattr(state.get("yolo"), "trainer", None)
    if trainer is None:
        return "nothing was saved yet; start the run again"
    last, best = Path(trainer.last), Path(trainer.best)
    if last.is_file() and resumable_epoch(last) is not None:
        return f"continue the run with: attnyolo train resume={last}"
    if best.is_file() or last.is_file():
        weights = best if best.is_file() else last
        data = state.get("data") or trainer.args.data
        return f"training had finished; score it with: attnyolo val model={weights} data={data}"
    return "no checkpoint was written yet; start the run again"
