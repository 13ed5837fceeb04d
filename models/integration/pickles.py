"""What a torch.save file references, listed without unpickling it (:func:`pickle_globals`).

Used by every checkpoint reader of the package, through :func:`attnyolo.integration.checkpoints.referenced_globals`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import first_line

# torch.save writes a zip archive whose data.pkl holds the object (torch >= 1.6) or, in the older format, a sequence of
# pickles before the tensor bytes: magic number, protocol version, system information, the object
# (torch/serialization.py, _legacy_save).
_LEGACY_PICKLES = 4
# The first of them, torch.serialization.MAGIC_NUMBER pickled (LONG1, 10 bytes): within the first 32 bytes of every
# file in that format, whatever the pickle protocol (protocol 4 and later put a frame header before it).
LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_STRING_OPCODES = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
)
_MEMO_OPCODES = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"})  # store the top of the stack, change nothing
_GET_OPCODES = frozenset({"GET", "BINGET", "LONG_BINGET"})


def torch_save_format(path: str | Path) -> str | None:
    """Which of torch.save's formats ``path`` is in, by its first bytes.

    Returns:
        ``"zip"`` (a zip archive, torch >= 1.6), ``"pickle"`` (the older format: a pickle, protocol 2 or later, starts
        with the PROTO opcode 0x80), or None: neither, so not a checkpoint at all.
    """
    with open(path, "rb") as f:
        head = f.read(2)
    if head.startswith(b"PK"):
        return "zip"
    return "pickle" if head[:1] == b"\x80" else None


def _py3_global(module: str, name: str) -> str:
    """A GLOBAL opcode's ``module name`` as pickle and torch's weights-only unpickler resolve it (Python 2 names)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _one_pickle_globals(stream: BinaryIO) -> Iterator[str]:
    """The globals one pickle references, read from ``stream`` up to its STOP opcode."""
    import pickletools

    memo: dict[Any, Any] = {}
    pushed: list[Any] = []  # what the opcodes since the last other opcode pushed (a string, or None for anything else)
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            yield _py3_global(module, attr)
            pushed = [None]
        elif name == "STACK_GLOBAL":
            # Its module and name are the two values pushed just before (strings, or strings fetched from the memo);
            # anything computed at load time cannot be named here, so it is listed as the opcode and refused.
            ok = len(pushed) >= 2 and all(isinstance(s, str) for s in pushed[-2:])
            yield f"{pushed[-2]}.{pushed[-1]}" if ok else "<pickle opcode STACK_GLOBAL>"
            pushed = [None]
        elif name in {"INST", "OBJ"}:  # protocols 0-1 class instantiation: torch neither writes nor loads it
            yield f"<pickle opcode {name}>"
            pushed = [None]
        elif name in _STRING_OPCODES:
            pushed = [*pushed, str(arg)]
        elif name in _MEMO_OPCODES:
            memo[len(memo) if name == "MEMOIZE" else arg] = pushed[-1] if pushed else None
        elif name in _GET_OPCODES:
            pushed = [*pushed, memo.get(arg)]
        else:
            pushed = [None]


def pickle_globals(source: bytes | BinaryIO, pickles: int = 1, partial: bool = False) -> list[str]:
    """The ``module.name`` of every global ``pickles`` consecutive pickles reference, in order of first use.

    The pickles are disassembled with :mod:`pickletools`, never loaded. ``GLOBAL`` (protocols 0-3) names are mapped
    from Python 2's module names as pickle maps them on loading (``__builtin__.set`` -> ``builtins.set``);
    ``STACK_GLOBAL`` (protocol 4+) takes its module and name from the two strings pushed just before it. ``INST`` and
    ``OBJ`` (protocols 0-1) are listed as ``<pickle opcode INST>``: torch.save never writes them and torch's
    weights-only unpickler does not support them, so a check refuses them by that name.

    Args:
        source: The pickle bytes, or a binary file positioned at the first pickle.
        pickles: How many pickles follow each other (torch's pre-1.6 format writes 4 before its tensor bytes).
        partial: Return the names found so far when the data ends or breaks off early, instead of raising.

    Returns:
        The names, each once.

    Raises:
        ValueError: Damaged pickle data (unless ``partial``).
    """
    import io

    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    found: dict[str, None] = {}
    try:
        for _ in range(pickles):
            for name in _one_pickle_globals(stream):
                found.setdefault(name)  # kept when the data breaks off later
    except Exception as error:  # pickletools raises ValueError and others on truncated or corrupt data
        if not partial:
            raise ValueError(f"damaged pickle data ({first_line(error)})") from None
    return list(found)


def zip_pickle_record(path: str | Path) -> bytes | None:
    """The pickle (``data.pkl``) of a torch.save zip archive, or None when ``path`` is no readable such archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            record = next((n for n in archive.namelist() if n.rpartition("/")[2] == "data.pkl"), None)
            return archive.read(record) if record else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def torch_default_globals() -> frozenset[str] | None:
    """The globals torch's weights-only unpickler allows by itself (tensors, storages, OrderedDict, ...).

    The table is private in torch (``torch._weights_only_unpickler._get_allowed_globals``, torch 2.4 to 2.14 at
    least); None on a torch without it.
    """
    table = getattr(getattr(torch, "_weights_only_unpickler", None), "_get_allowed_globals", None)
    try:
        return frozenset(table()) if callable(table) else None
    except Exception:  # a changed private signature: treated like its absence
        return None
