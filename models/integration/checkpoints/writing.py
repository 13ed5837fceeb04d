"""Writing checkpoints atomically: the trainer's ``last.pt``/``best.pt`` and the final ``strip_optimizer`` pass."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...utils.atomic import (
    atomic_path,
    name_failure,
    remove_stale_temporaries,
    replace_atomically,
    temporary_sibling,
)


def save_model_atomically(trainer: Any, save: Callable[[], Any]) -> Any:
    """Run the trainer's ``save_model`` with ``last.pt``/``best.pt`` written to temporary files renamed into place.

    Ultralytics' ``BaseTrainer.save_model`` writes to the paths in its documented ``last`` and ``best`` attributes;
    they point at temporary siblings while ``save`` runs, and each file that was written replaces its target after.

    Args:
        trainer: An Ultralytics trainer.
        save: The trainer's original ``save_model`` (bound).

    Returns:
        Whatever ``save`` returns.
    """
    final = {"last": Path(trainer.last), "best": Path(trainer.best)}
    tmp = {key: temporary_sibling(path) for key, path in final.items()}
    for key, path in tmp.items():  # a leftover from a crash must not be renamed over a good checkpoint below
        path.unlink(missing_ok=True)
        remove_stale_temporaries(final[key])  # nor fill the disk: a killed run's temporaries go here
    trainer.last, trainer.best = tmp["last"], tmp["best"]
    try:
        saved = save()
        for key, path in tmp.items():
            if path.exists():
                replace_atomically(path, final[key])
    except OSError as error:  # Ultralytics writes last.pt, then best.pt; a failed write names no file
        name_failure(error, final["best"] if tmp["best"].exists() else final["last"])
        raise
    finally:
        trainer.last, trainer.best = final["last"], final["best"]
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return saved


def wrap_strip_optimizer(original):
    """Return a strip_optimizer that writes through a temporary file renamed into place.

    Ultralytics' ``final_eval`` strips the optimizer from ``last.pt`` and ``best.pt`` by loading each and saving it
    over itself; a crash during that save would leave a truncated checkpoint where a complete one was.
    """

    @functools.wraps(original)
    def strip_optimizer(f="best.pt", s="", updates=None):
        """Strip as Ultralytics does, into a temporary file that replaces ``s or f`` only once fully written."""
        with atomic_path(Path(s or f), "strip.tmp") as tmp:
            return original(f, s=str(tmp), updates=updates)

    strip_optimizer._attnyolo_original = original
    return strip_optimizer
