"""Exceptions AttnYOLO raises for input a person can fix; each message names the value, its source and the fix."""

from __future__ import annotations


class ModelConfigError(ValueError):
    """A model YAML that cannot be built as written; the message names the file, the row and the fix."""


class UnsupportedUltralyticsError(RuntimeError):
    """The installed Ultralytics changed an internal this package relies on; the message names which one."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or mapped; the message names the file, the problem and the fix."""
