"""A model YAML's ``activation:``, read as data: parsed, never evaluated, and set the way Ultralytics sets it.

Ultralytics' ``parse_model`` evaluates the top-level ``activation:`` string of every model YAML with ``eval`` and sets
the result as ``Conv.default_act`` for the build. :func:`parse_activation` accepts only a torch.nn activation class
called with literal arguments; :func:`default_activation` hands the original parser the model dict without the key
and sets the parsed module in its place (``integration/parser.py`` wraps every build in it).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules import activation
from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER
from ultralytics.utils import colorstr

from ..errors import ModelConfigError
from .names import yaml_label

# NOTE: not in Ultralytics: its parse_model runs `eval()` on the top-level `activation:` string of every model YAML
# (unless its opt-in restricted loading is on). Here the string is parsed (never run) and must be a torch.nn activation
# class called with literal arguments, the form Ultralytics documents (e.g. `activation: nn.ReLU()`); the original
# parser then gets the model dict without the key, and the activation is set the way it sets it (default_activation).
_ACTIVATION_EXAMPLES = "nn.SiLU(), nn.ReLU(), nn.LeakyReLU(0.1), nn.Hardswish(), nn.Mish(), nn.GELU() or nn.Identity()"


def activation_classes() -> dict[str, type[nn.Module]]:
    """The torch.nn classes a model YAML's ``activation:`` may name: torch.nn's activations and ``Identity``."""
    found = {
        name: cls
        for name, cls in vars(activation).items()
        if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == activation.__name__
    }
    found.pop("MultiheadAttention", None)  # a layer with weights, not an activation
    return {**found, "Identity": nn.Identity}


def parse_activation(text: str) -> nn.Module:
    """Build the module an ``activation:`` value names, without evaluating it.

    Accepts ``nn.<Class>(<literal args>)`` and ``torch.nn.<Class>(...)`` for the classes of :func:`activation_classes`.

    Args:
        text: The YAML value, e.g. ``"nn.LeakyReLU(0.1)"``.

    Returns:
        The activation module.

    Raises:
        ValueError: Anything else; the message says what was expected.
    """
    try:
        call = ast.parse(str(text).strip(), mode="eval").body
    except SyntaxError:
        raise ValueError("it is not a Python expression") from None
    if not isinstance(call, ast.Call):
        raise ValueError("it is not a call such as nn.SiLU()")
    parts, node = [], call.func
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ValueError("it does not call a torch.nn class")
    parts.insert(0, node.id)
    if parts[:-1] not in (["nn"], ["torch", "nn"]) or parts[-1] not in activation_classes():
        raise ValueError(f"{'.'.join(parts)} is not a torch.nn activation")
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg is not None}
    except ValueError:
        raise ValueError("its arguments are not literal values") from None
    if len(kwargs) != len(call.keywords):
        raise ValueError("it unpacks arguments (**)")
    try:
        return activation_classes()[parts[-1]](*args, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{parts[-1]} rejects these arguments ({error})") from None


def read_activation(d: dict) -> nn.Module | None:
    """The module a model dict's ``activation:`` names (None without one), parsed by :func:`parse_activation`.

    Raises:
        ModelConfigError: A value that is not a plain torch.nn activation call, naming the file and the value.
    """
    act = d.get("activation")
    if not act:
        return None
    try:
        if not isinstance(act, str):
            raise ValueError(f"it is a {type(act).__name__}, not text")
        return parse_activation(act)
    except ValueError as error:
        raise ModelConfigError(
            f"{yaml_label(d)}: `activation: {act}` was refused ({error}); the value is read as data, never run. "
            f"Fix: write a torch.nn activation with literal arguments, e.g. {_ACTIVATION_EXAMPLES}."
        ) from None


@contextlib.contextmanager
def default_activation(d: dict, verbose: bool) -> Iterator[dict]:
    """Yield the model dict for the original parser, without ``activation:``, with the activation already set.

    Ultralytics' parse_model sets ``Conv.default_act`` to its evaluation of the string (every Conv built after it
    takes that activation; legacy SPPF rows too), logs ``activation: <value>`` and restores the class attribute before
    returning. The same happens here with the parsed module (:func:`read_activation`), so the string reaches no
    ``eval``; the model keeps its ``yaml`` with the key, so a checkpoint rebuilds the same way.
    """
    act = read_activation(d)
    if act is None:
        yield d
        return
    conv = importlib.import_module("ultralytics.nn.tasks").Conv
    before = conv.default_act
    conv.default_act = act
    if verbose:
        ULTRALYTICS_LOGGER.info(f"{colorstr('activation:')} {d['activation']}")
    try:
        yield {k: v for k, v in d.items() if k != "activation"}
    finally:
        conv.default_act = before
