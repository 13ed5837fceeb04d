"""The command-line convention shared by every script in tools/: Ultralytics-style ``key=value`` arguments.

Unknown keys are rejected with close-match suggestions, ``help``/``-h`` prints the usage, and failures end in a
one-line message and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import ast
import difflib
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A command line that cannot be run as written (unknown key, malformed argument, bad value)."""


def convert_value(text: str):
    """Convert a command-line value: ints, floats, true/false, none/null, Python literals; anything else stays text."""
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_kv_args(
    argv: Sequence[str],
    defaults: dict,
    usage: str,
    passthrough: Iterable[str] = (),
) -> dict:
    """Parse ``key=value`` arguments against known keys.

    Args:
        argv: Arguments without the program name (``sys.argv[1:]``).
        defaults: The tool's own keys and default values; the result starts from a copy of it.
        usage: Text printed for ``help``, ``-h`` or ``--help``.
        passthrough: Further accepted keys (e.g. every Ultralytics train/val/predict setting), passed on verbatim.

    Returns:
        The defaults updated with the parsed values.

    Raises:
        SystemExit: 0 after printing the usage for ``help``; 2 after printing a one-line error for an unknown key or
            an argument without ``=``.
    """
    known = set(defaults) | set(passthrough)
    args = dict(defaults)
    for item in argv:
        if item in {"help", "-h", "--help"}:
            print(usage)
            raise SystemExit(EXIT_OK)
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            fail(f"argument {item!r} is not key=value (e.g. model=yolov8n-CoordAtt.yaml). Run with 'help' for usage.")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            fail(f"unknown argument {key!r}.{hint} Run with 'help' for the accepted keys.")
        args[key] = convert_value(value)
    return args


def fail(message: str, status: int = EXIT_USAGE) -> None:
    """Print ``error: message`` to stderr and exit with ``status``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def kinds_arg(value, key: str = "kinds") -> list[str] | None:
    """A ``kinds=`` value (``ELA-S,CoordAtt`` or a list) checked against the table of kinds; None means all.

    Raises:
        ValueError: An unknown kind, naming the value, the closest kinds and all known ones.
    """
    from ..layers.registry import get_kind

    if value is None or value == "all":
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    kinds = [str(k).strip() for k in items if str(k).strip()]
    for kind in kinds:
        try:
            get_kind(kind)
        except ValueError as error:
            raise ValueError(f"{key}={value}: {error}") from None
    return kinds


TRUST_KEY = "trust_checkpoint"  # every tool that opens checkpoints accepts it


def apply_trust_checkpoint(args: dict) -> None:
    """Remove ``trust_checkpoint`` from parsed arguments; when true, read checkpoints with full unpickling.

    By default checkpoints are read without running code from them, and a file that references anything Ultralytics
    and AttnYOLO checkpoints never contain is refused. ``trust_checkpoint=True`` says the user vouches for the files
    this run opens (the setting is inherited by the processes it starts, e.g. multi-GPU workers).
    """
    if args.pop(TRUST_KEY, False):
        from ..integration.checkpoints import trust_checkpoints

        trust_checkpoints()


def ultralytics_keys() -> set[str]:
    """Every setting Ultralytics' train/val/predict/export accept (its default configuration's keys)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return set(DEFAULT_CFG_DICT)


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """Format a warning as one line for people, without the source line of the library that raised it."""
    return f"warning: {message}\n"


def run_tool(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main(argv)``, turning expected failures into a one-line message and exit status 1.

    Errors that mean "the input is wrong" (missing files, bad values, bad YAML rows) are reported without a
    traceback; anything else is a bug and keeps its traceback.
    """
    from ..errors import ModelConfigError, UnsupportedUltralyticsError

    warnings.formatwarning = _warning_line  # e.g. "skipping bad label line file:line" reads as one line
    expected = (FileNotFoundError, NotADirectoryError, ValueError, TypeError, KeyError, ModelConfigError)
    try:
        return main(list(sys.argv[1:] if argv is None else argv)) or EXIT_OK
    except UnsupportedUltralyticsError as e:
        fail(str(e), EXIT_FAILURE)
    except expected as e:
        # KeyError's str() wraps the message in quotes; its first argument is the message itself
        message = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip() or type(e).__name__
        fail(" ".join(message.split()) if len(message) < 2000 else message, EXIT_FAILURE)
    except KeyboardInterrupt:
        fail("interrupted; a training run can be continued with resume=True", 130)
    return EXIT_FAILURE
