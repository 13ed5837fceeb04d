"""The command-line convention shared by every script in tools/: Ultralytics-style ``key=value`` arguments.

Unknown keys are rejected with close-match suggestions, ``help``/``-h`` prints the usage, and failures a person can
fix end in a one-line message and a non-zero exit status instead of a traceback. ``ATTNYOLO_DEBUG=1`` in the
environment keeps the traceback of every failure (:data:`DEBUG_ENV`).
"""

from __future__ import annotations

import ast
import difflib
import errno
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
from ultralytics.cfg import CFG_BOOL_KEYS, DEFAULT_CFG_DICT

from ..errors import MissingDependencyError, UnsupportedUltralyticsError, without_unsafe_advice
from .atomic import temporary_target

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# Set to 1 (true, yes, on) to see the full traceback of every failure run_tool would report in one line.
DEBUG_ENV = "ATTNYOLO_DEBUG"
# Errors that may come from a bug rather than from the input: still one line, with how to see the traceback.
_MAYBE_BUGS = (TypeError, KeyError)


# The spellings of a boolean value, any case (parse_bool). Every boolean key of every tool and the switches read from
# the environment (ATTNYOLO_TRUST_CHECKPOINTS, ATTNYOLO_DEBUG) are parsed by this one table.
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})
# Keys whose value is a boolean or something else (a path, a cache kind, a compile mode): a boolean spelling is
# parsed as one, any other value is kept as it is (Ultralytics' resume=, pretrained=, cache=, compile=).
BOOL_OR_VALUE_KEYS = frozenset({"resume", "pretrained", "cache", "compile"})


def parse_bool(value, key: str | None = None) -> bool | None:
    """``value`` as a boolean: True/False, 1/0, yes/no, on/off in any case (also the bool and the ints 1 and 0).

    Args:
        value: The value given (text from the command line or the environment, or an already parsed value).
        key: The key it was given for; with a key, a value that is no boolean spelling is an error naming both.

    Returns:
        The boolean, or None for a value that is none of the spellings (only without ``key``).

    Raises:
        ValueError: ``key`` given and ``value`` is no boolean spelling.
    """
    text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    if key is None:
        return None
    raise ValueError(
        f"{key}={value} is not true or false. Fix: give {key}=True or {key}=False (also 1/0, yes/no, on/off)."
    )


def boolean_keys(defaults: dict, passthrough: Iterable[str] = ()) -> frozenset[str]:
    """The keys among ``defaults`` and ``passthrough`` that take only a boolean.

    A tool's keys with a bool default, and Ultralytics' settings with a bool default (``save_json``, ``exist_ok``,
    ``half``, ...), less :data:`BOOL_OR_VALUE_KEYS`.
    """
    keys = {key for key, value in defaults.items() if isinstance(value, bool)}
    passthrough = set(passthrough) - set(defaults)
    if passthrough:
        ultralytics = set(CFG_BOOL_KEYS) | {key for key, value in DEFAULT_CFG_DICT.items() if isinstance(value, bool)}
        keys |= passthrough & ultralytics
    return frozenset(keys - BOOL_OR_VALUE_KEYS)


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
    given = {item.partition("=")[0].strip().lstrip("-").replace("-", "_") for item in argv}
    booleans = boolean_keys(defaults, given & set(passthrough))
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
        if key in booleans:  # parsed before anything reads it: trust_checkpoint=no must never mean "trust"
            try:
                args[key] = parse_bool(value, key)
            except ValueError as error:
                fail(str(error))
        elif key in BOOL_OR_VALUE_KEYS and parse_bool(value) is not None:
            args[key] = parse_bool(value)
        else:
            args[key] = convert_value(value)
    return args


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colour codes (Ultralytics colours parts of its messages)


def plain(text: str) -> str:
    """``text`` without terminal colour codes or Ultralytics' emoji, for one-line messages and log files."""
    for mark in ("❌️", "❌", "⚠️", "✅", "🚀"):
        text = text.replace(mark, "")
    return _ANSI.sub("", text)


def fail(message: str, status: int = EXIT_USAGE) -> None:
    """Print ``error: message`` to stderr (no colour codes) and exit with ``status``."""
    print(f"error: {plain(message)}", file=sys.stderr)
    raise SystemExit(status)


# errno -> (what it means, the fix) for the OS failures a run meets while writing its outputs.
_OS_FAILURES = {
    errno.ENOSPC: ("the disk is full", "free some space, or write elsewhere with project= (out= for data tools)"),
    errno.EROFS: ("the file system is read-only", "write elsewhere with project= (out= for data tools)"),
    errno.EACCES: ("permission denied", "write elsewhere with project= (out= for data tools), or fix permissions"),
    errno.EPERM: ("operation not permitted", "write elsewhere with project= (out= for data tools)"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space, or write elsewhere with project="),
    errno.EIO: ("an input/output error (failing disk or lost network share)", "check the disk, then run again"),
    errno.ENAMETOOLONG: ("the file name is too long", "use shorter project=/name= values"),
    errno.EISDIR: ("a folder is in the way of the file", "move the folder away, or name another file or folder"),
    errno.EEXIST: ("something of that name is in the way", "move it away, or name another file or folder"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path, or name another folder"),
    errno.ELOOP: ("the path is a loop of symbolic links", "check the links along the path"),
    errno.ENOTEMPTY: ("the folder is not empty", "move its contents away, or name another folder"),
    errno.ETXTBSY: ("the file is in use", "close the program using it, or write elsewhere"),
    errno.EFBIG: ("the file is too large for the file system", "write elsewhere with project= (out= for data tools)"),
}


def os_failure_message(error: OSError) -> str:
    """One line for an OS failure: the file (the real one, not its temporary name), what happened, and the fix."""
    what, fix = _OS_FAILURES.get(error.errno, (error.strerror or type(error).__name__, "check the path and run again"))
    name = errno.errorcode.get(error.errno, "") if error.errno else ""
    path = error.filename
    if path is not None:
        path = temporary_target(path) or path
    where = f"cannot write {path}" if path is not None else "a file operation failed"
    return f"{where}: {what}{f' ({name})' if name else ''}. Fix: {fix}."


TRUST_KEY = "trust_checkpoint"  # every tool that opens checkpoints accepts it
TRUST_ENV = "ATTNYOLO_TRUST_CHECKPOINTS"  # "1": read every checkpoint with full unpickling (the user vouches for it)


def checkpoints_trusted() -> bool:
    """Whether the user vouched for every checkpoint this process opens (``ATTNYOLO_TRUST_CHECKPOINTS=1``)."""
    return parse_bool(os.environ.get(TRUST_ENV, "")) is True  # anything but a true spelling keeps files untrusted


def trust_checkpoints(enabled: bool = True) -> None:
    """Read every checkpoint of this process, and of the processes it starts, with full unpickling (or stop).

    Tools call this for ``trust_checkpoint=True``. Full unpickling runs whatever code a file names, so it is only for
    files the user vouches for; by default :func:`attnyolo.integration.checkpoints.read_checkpoint` refuses them.
    The setting lives in the environment, so the processes a run starts (multi-GPU workers) inherit it.

    Args:
        enabled: True to trust, False to return to safe loading.
    """
    if enabled:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)


def apply_trust_checkpoint(args: dict) -> None:
    """Remove ``trust_checkpoint`` from parsed arguments; when true, read checkpoints with full unpickling.

    By default checkpoints are read without running code from them, and a file that references anything Ultralytics
    and AttnYOLO checkpoints never contain is refused. ``trust_checkpoint=True`` says the user vouches for the files
    this run opens (the setting is inherited by the processes it starts, e.g. multi-GPU workers).
    """
    trusted = parse_bool(args.pop(TRUST_KEY, False), TRUST_KEY)  # parse_kv_args has parsed it; a caller's dict too
    if trusted:
        trust_checkpoints()


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_run_settings(settings: dict, task: str) -> None:
    """Check ``batch``, ``imgsz``, ``conf``, ``iou`` and ``workers`` before any work starts; None means "default".

    Ultralytics accepts some bad values silently (``batch=-5`` trains with its default) and fails on others deep
    inside the run with an unrelated message (``need at least one array to stack``).

    Args:
        settings: The parsed arguments.
        task: ``train`` (batch may also be -1, AutoBatch, or a fraction in (0, 1) of GPU memory), ``val``,
            ``predict`` or ``export``.

    Raises:
        ValueError: One line naming the key, the value and what is accepted.
    """
    batch = settings.get("batch")
    if batch is not None:
        fraction = task == "train" and isinstance(batch, float) and 0 < batch < 1
        if not (fraction or (_is_int(batch) and (batch >= 1 or (task == "train" and batch == -1)))):
            accepted = "a whole number >= 1" + (
                ", -1 (AutoBatch: fill GPU memory) or a fraction in (0, 1) of GPU memory" if task == "train" else ""
            )
            raise ValueError(f"batch={batch!r} is not a batch size. Fix: give {accepted}, e.g. batch=16.")
    imgsz = settings.get("imgsz")
    if imgsz is not None:
        sizes = list(imgsz) if isinstance(imgsz, (list, tuple)) and task != "train" else [imgsz]
        if not (1 <= len(sizes) <= 2 and all(_is_int(v) and v >= 32 for v in sizes)):
            shape = "a whole number >= 32" + (" or [height, width]" if task != "train" else "")
            raise ValueError(f"imgsz={imgsz!r} is not an image size. Fix: give {shape} in pixels, e.g. imgsz=640.")
    for key in ("conf", "iou"):
        value = settings.get(key)
        if value is not None and not (
            isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
        ):
            raise ValueError(f"{key}={value!r} must be a number from 0 to 1, e.g. {key}=0.25.")
    workers = settings.get("workers")
    if workers is not None and not (_is_int(workers) and workers >= 0):
        raise ValueError(f"workers={workers!r} must be a whole number >= 0 (0 loads data in the main process).")
    check_device(settings.get("device"))


def check_device(device) -> None:
    """Refuse a CUDA ``device`` this machine does not have, naming the value as the user gave it.

    Ultralytics' ``select_device`` rewrites the value before it complains (``device=cuda`` is reported as
    ``device=0``); the user should see what they typed.

    Raises:
        ValueError: ``cuda``, ``cuda:N`` or GPU indices (``0``, ``0,1``) without that many CUDA devices.
    """
    if device is None:
        return
    # 0,1 arrives parsed as the tuple (0, 1); shown and checked as typed
    text = ",".join(map(str, device)) if isinstance(device, (list, tuple)) else str(device).strip().lower()
    text = text.replace(" ", "")
    indices = text.removeprefix("cuda:").split(",") if text.startswith("cuda:") else text.split(",")
    if text != "cuda" and not all(index.isdigit() for index in indices):
        return  # cpu, mps, -1 (idle GPU), or a value Ultralytics judges itself
    wanted = 1 if text == "cuda" else max(int(index) for index in indices) + 1
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if wanted > available:
        seen = f"only {available} CUDA device(s)" if available else "no CUDA device"
        shown = text if isinstance(device, (list, tuple)) else device
        raise ValueError(f"device={shown} asks for a CUDA device, but torch sees {seen} here. Fix: device=cpu.")


def ultralytics_keys() -> set[str]:
    """Every setting Ultralytics' train/val/predict/export accept (its default configuration's keys)."""
    return set(DEFAULT_CFG_DICT)


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """Format a warning as one line for people, without the source line of the library that raised it."""
    return f"warning: {message}\n"


_advice: list[Callable[[], str | None]] = []  # what run_tool says after Ctrl-C; set by the running command


def set_interrupt_advice(advice: Callable[[], str | None] | None) -> None:
    """Tell :func:`run_tool` what to advise if the command is interrupted: ``advice()`` returns the next step.

    It is called when Ctrl-C arrives, so it can look at the files the run has written by then (e.g. whether a
    ``last.pt`` can be resumed). None clears it.
    """
    _advice[:] = [advice] if advice is not None else []


def _interrupted_message() -> str:
    """``interrupted``, plus the advice the command set, if any (an advice that fails adds nothing)."""
    try:
        text = _advice[0]() if _advice else None
    except Exception:
        text = None
    return f"interrupted; {text}" if text else "interrupted"


def debugging() -> bool:
    """Whether ``ATTNYOLO_DEBUG`` asks for tracebacks (any value but empty, 0, false, no, off)."""
    value = os.environ.get(DEBUG_ENV, "").strip()
    return bool(value) and parse_bool(value) is not False


def _one_line(error: BaseException) -> str:
    """An error's whole message on one line (KeyError's str() wraps it in quotes; its first argument is the text)."""
    message = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    message = without_unsafe_advice(message or type(error).__name__)
    return " ".join(message.split()) if len(message) < 2000 else message


def failure_message(error: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit status :func:`run_tool` reports for ``error``, or None to keep its traceback.

    Wrong input (missing files, bad values and YAML rows: ``FileNotFoundError``, ``ValueError`` and its subclasses
    ``ModelConfigError``/``CheckpointError``), an unsupported Ultralytics, a missing dependency, an OS failure a person
    can act on (full or read-only disk, permissions, a dropped connection) and Ctrl-C get one line. ``TypeError`` and
    ``KeyError`` get one line too, since a wrong value often ends in one, but they may also be a bug in attnyolo, so the
    line says how to see the traceback. Anything else is a bug and keeps its traceback.
    """
    if isinstance(error, KeyboardInterrupt):
        return _interrupted_message(), 130
    if isinstance(error, (UnsupportedUltralyticsError, MissingDependencyError)):
        return str(error), EXIT_FAILURE
    if isinstance(error, OSError) and error.errno in _OS_FAILURES:  # a full or read-only disk, a folder in the way
        return os_failure_message(error), EXIT_FAILURE  # before NotADirectoryError: the OS's own carry no advice
    if isinstance(error, (FileNotFoundError, NotADirectoryError, ValueError)):
        return _one_line(error), EXIT_FAILURE
    if isinstance(error, _MAYBE_BUGS):
        hint = f"{type(error).__name__}; if the input is right, this is a bug: {DEBUG_ENV}=1 shows the traceback"
        return f"{_one_line(error).rstrip('.')} ({hint}).", EXIT_FAILURE
    if isinstance(error, ConnectionError):  # a camera or stream that drops
        return " ".join(str(error).split()), EXIT_FAILURE
    return None


def _show_hidden_causes(error: BaseException) -> None:
    """Undo ``raise ... from None`` along the chain, so a traceback also shows the errors a message restated."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__suppress_context__ = False
        error = error.__cause__ or error.__context__


def run_tool(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main(argv)``, turning failures a person can act on into one line and a non-zero exit status.

    What gets one line is :func:`failure_message`'s decision; anything else is a bug and keeps its traceback. With
    ``ATTNYOLO_DEBUG=1`` every failure keeps its traceback, including the errors that one-line messages replaced
    (raised ``from None``), so the first cause is visible.
    """
    warnings.formatwarning = _warning_line  # e.g. "skipping bad label line file:line" reads as one line
    set_interrupt_advice(None)
    try:
        return main(list(sys.argv[1:] if argv is None else argv)) or EXIT_OK
    except (Exception, KeyboardInterrupt) as error:
        failure = None if debugging() else failure_message(error)
        if failure is None:
            _show_hidden_causes(error)
            raise
        fail(*failure)
    finally:
        set_interrupt_advice(None)
    return EXIT_FAILURE
