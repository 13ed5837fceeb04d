"""The words of every checkpoint refusal, in one place.

The opt-in hint, a refused global, an oversized or damaged file, torch's weights-only reason without its advice;
and the label (``model=...``) a message names a file by.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path

import torch

from ...errors import CheckpointError, first_line, without_unsafe_advice
from ...utils.cli import TRUST_ENV
from .pickles import (
    MAX_PICKLE_BYTES,
)

TRUST_HINT = f"If you trust this file, pass trust_checkpoint=True (or set {TRUST_ENV}=1)."


_label: contextvars.ContextVar[str | None] = contextvars.ContextVar("attnyolo_checkpoint_label", default=None)


def refusal(label: str, names: list[str], writers: str = "Ultralytics or AttnYOLO") -> CheckpointError:
    """The one-line refusal naming the first disallowed global (and how many more there are) and the opt-in.

    Every reader of the package refuses a file in these words, so the opt-in is always named.

    Args:
        label: How the message names the file (e.g. ``model=best.pt``).
        names: The disallowed globals, in order of first use.
        writers: What writes the kind of checkpoint the file claims to be.
    """
    more = f" (and {len(names) - 1} more disallowed)" if len(names) > 1 else ""
    return CheckpointError(
        f"{label}: refused to load: it references {names[0]}{more}, which checkpoints written by {writers} never "
        f"contain. {TRUST_HINT}"
    )


def checkpoint_label_of(path: str | Path) -> str:
    """How messages name ``path``: the label of the enclosing :func:`checkpoint_label` block, else the path."""
    return _label.get() or str(path)


def _oversized(label: str, what: str) -> CheckpointError:
    """The one-line refusal of a file whose pickle is larger than any checkpoint's (:data:`MAX_PICKLE_BYTES`)."""
    return CheckpointError(
        f"{label}: refused to load: {what}, more than the {MAX_PICKLE_BYTES:,} bytes a checkpoint's pickle needs (it "
        f"holds the model's structure; the tensors are stored apart). {TRUST_HINT}"
    )


def _damaged(label: str, error: BaseException) -> CheckpointError:
    """The one-line error for a file torch cannot read at all."""
    reason = first_line(error).split(". ")[0].rstrip(".")
    if "TorchScript" in reason:
        return CheckpointError(
            f"{label} is a TorchScript archive, not an Ultralytics checkpoint. Fix: pass the .pt file written by "
            "training (export it again for TorchScript)."
        )
    return CheckpointError(
        f"{label} is not a loadable checkpoint: the file is empty, truncated or corrupted "
        f"({type(error).__name__}: {reason[:160]}). Fix: pass a .pt file written by training, e.g. "
        "runs/train/exp/weights/best.pt."
    )


def _weights_only_reason(error: BaseException) -> str:
    """The reason in torch's weights-only error, without its advice to load with full unpickling."""
    reason = without_unsafe_advice(str(error))
    if reason.startswith("torch's weights-only reader refused it ("):
        reason = reason[len("torch's weights-only reader refused it (") : -1]
    return reason if reason != str(error) else first_line(error).rstrip(".")


@contextlib.contextmanager
def checkpoint_label(label: str) -> Iterator[None]:
    """Name checkpoint files ``label`` (e.g. ``model=best.pt``) in the messages of loads inside the block."""
    token = _label.set(label)
    try:
        yield
    finally:
        _label.reset(token)


def old_torch_refusal(label: str) -> CheckpointError:
    """A torch too old to read a checkpoint without running code from it (weights-only reading needs 2.6)."""
    return CheckpointError(
        f"{label}: reading a checkpoint without running code from it needs torch >= 2.6 (installed: "
        f"{torch.__version__}). Fix: pip install 'torch>=2.6'. {TRUST_HINT}"
    )


def weights_only_refusal(label: str, error: BaseException, legacy: bool) -> CheckpointError:
    """Torch's weights-only unpickler refused the file (``error``); ``legacy``: it is in torch's pre-1.6 format."""
    if legacy:
        return CheckpointError(
            f"{label}: refused to load: it is in torch's pre-1.6 serialization format, which stores model classes "
            f"in a form that cannot be read without running code ({_weights_only_reason(error)}). {TRUST_HINT}"
        )
    return CheckpointError(
        f"{label}: refused to load: {_weights_only_reason(error)}; checkpoints written by Ultralytics or AttnYOLO "
        f"never need that. {TRUST_HINT}"
    )
