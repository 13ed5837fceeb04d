"""Exceptions AttnYOLO raises for input a person can fix; each message names the value, its source and the fix."""

from __future__ import annotations

import re


class ModelConfigError(ValueError):
    """A model YAML that cannot be built as written; the message names the file, the row and the fix."""


class UnsupportedUltralyticsError(RuntimeError):
    """The installed Ultralytics changed an internal this package relies on; the message names which one."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or mapped; the message names the file, the problem and the fix."""


class MissingDependencyError(ImportError):
    """A declared dependency that is not installed; the message names it, what needs it and the pip command."""


# torch's weights-only refusal starts with advice to load the file with full unpickling ("Re-running `torch.load` with
# `weights_only` set to `False` will likely succeed"), which must never reach a user about a file nobody vouched for.
_TORCH_ADVICE = ("Weights only load failed", "Re-running `torch.load`", "weights_only` set to `False`")


def without_unsafe_advice(text: str) -> str:
    """``text``, or, when it is torch's weights-only refusal, only its reason (``Unsupported global: ...``).

    Every message AttnYOLO restates from torch passes through here (:func:`first_line`, the tools' one-line errors), so
    torch's advice to re-run ``torch.load`` with full unpickling is never shown.
    """
    if not any(marker in text for marker in _TORCH_ADVICE):
        return text
    reason = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else ""
    reason = " ".join(reason.split("Check the documentation", 1)[0].split()).split(". Please use", 1)[0].rstrip(".")
    return f"torch's weights-only reader refused it ({reason or 'no reason given'})"


def first_line(error: BaseException) -> str:
    """An exception's message reduced to its first line, without the emoji and ANSI colours Ultralytics adds.

    Used wherever an error from torch, pickle or Ultralytics is restated in one of AttnYOLO's one-line messages; torch's
    advice to unpickle in full is dropped (:func:`without_unsafe_advice`).
    """
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    text = without_unsafe_advice(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":  # a quoted message; "'utf-8' codec ..." is not
        text = text[1:-1]
    text = re.sub(r"\x1b\[[0-9;]*m", "", text or type(error).__name__)
    return text.splitlines()[0].replace("❌️", "").replace("❌", "").replace("⚠️", "").strip()
