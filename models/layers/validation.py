"""Argument checks shared by the attention layers, so a bad YAML row fails with a message instead of a torch error."""

from __future__ import annotations


def positive_int(layer: str, name: str, value: object) -> int:
    """Return ``value`` if it is a positive int (not a bool), else raise a ValueError naming the layer and argument.

    Args:
        layer: Layer class name, for the message.
        name: Argument name, for the message.
        value: The value to check.

    Returns:
        The value, unchanged.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}.")
    return value
