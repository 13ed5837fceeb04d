"""Whether the user vouched for the checkpoints this process opens (``trust_checkpoint=True``).

The setting lives in the environment, so the processes a run starts (multi-GPU workers) inherit it. The checkpoint
readers (:mod:`attnyolo.integration.checkpoints`) ask :func:`checkpoints_trusted`; the command line sets it
(:func:`attnyolo.utils.cli.apply_trust_checkpoint`).
"""

from __future__ import annotations

import os

TRUST_ENV = "ATTNYOLO_TRUST_CHECKPOINTS"  # "1": read every checkpoint with full unpickling (the user vouches for it)


def checkpoints_trusted() -> bool:
    """Whether the user vouched for every checkpoint this process opens (``ATTNYOLO_TRUST_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def trust_checkpoints(enabled: bool = True) -> None:
    """Read every checkpoint of this process, and of the processes it starts, with full unpickling (or stop).

    Tools call this for ``trust_checkpoint=True``. Full unpickling runs whatever code a file names, so it is only for
    files the user vouches for; by default :func:`attnyolo.integration.checkpoints.read_checkpoint` refuses them.

    Args:
        enabled: True to trust, False to return to safe loading.
    """
    if enabled:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)
