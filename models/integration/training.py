"""Facts about Ultralytics' trainer that AttnYOLO's trainer relies on, read in one place.

* :func:`drop_unsaved_epochs`: Ultralytics' ``BaseTrainer.save_metrics`` appends one row per epoch to ``results.csv``
  whose first column, ``epoch``, is the epoch's index plus one; a checkpoint's ``epoch`` is the index of the last
  epoch it contains. A run killed after logging an epoch but before writing its checkpoint would otherwise log that
  epoch twice when resumed.

:mod:`attnyolo.integration.version` checks the ``results.csv`` layout by behaviour (the ``results_csv`` self-check).
"""

from __future__ import annotations

from pathlib import Path

from ..utils.atomic import write_text_atomic


def drop_unsaved_epochs(csv: str | Path, ckpt: dict) -> int:
    """Remove the ``results.csv`` rows of epochs after the last one ``ckpt`` contains; return how many were removed.

    Args:
        csv: The run's ``results.csv`` (``BaseTrainer.csv``); nothing happens when it does not exist.
        ckpt: The checkpoint the run resumes from (its ``epoch``: the index of its last epoch, from 0).

    Returns:
        The number of rows removed (the file is rewritten atomically only when there are any).
    """
    csv = Path(csv)
    if not csv.is_file():
        return 0
    last_logged = int(ckpt.get("epoch", -1)) + 1  # the `epoch` column value of the checkpoint's last epoch
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:1] + [
        line for line in lines[1:] if line.split(",")[0].strip().isdigit() and int(line.split(",")[0]) <= last_logged
    ]
    if len(kept) != len(lines):
        write_text_atomic(csv, "".join(kept))
    return len(lines) - len(kept)
