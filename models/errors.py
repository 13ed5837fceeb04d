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


def first_line(error: BaseException) -> str:
    """An exception's message reduced to its first line, without the emoji and ANSI colours Ultralytics adds.

    Used wherever an error from torch, pickle or Ultralytics is restated in one of AttnYOLO's one-line messages.
    """
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":  # a quoted message; "'utf-8' codec ..." is not
        text = text[1:-1]
    text = re.sub(r"\x1b\[[0-9;]*m", "", text or type(error).__name__)
    return text.splitlines()[0].replace("❌️", "").replace("❌", "").replace("⚠️", "").strip()
