"""What a torch.save file references, listed without unpickling it (:func:`pickle_globals`).

Used by every checkpoint reader of the package, through :func:`attnyolo.integration.checkpoints.referenced_globals`.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ...errors import first_line

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
# The most pickle data a checkpoint may hold. A checkpoint's pickle records the structure only (module tree,
# attributes, arguments, optimizer groups); the tensors are separate records (zip) or follow the pickles (pre-1.6).
# The biggest measured: 680 KB, a yolo11x training checkpoint pickling both model and EMA with 1000 epochs of results
# (yolox-x-CBAM 645 KB, yolov5x-classic 535 KB, yolov8x 463 KB). 8 MiB is 12 times that; it bounds the scan of a
# hostile file (pickletools reads one opcode per byte at worst, about 3 MB/s) to a few seconds and its memory to 8 MiB.
MAX_PICKLE_BYTES = 8 * 1024 * 1024


class OversizedPickle(ValueError):
    """Pickle data longer than :data:`MAX_PICKLE_BYTES`, which no checkpoint has; it is not scanned further."""

    def __init__(self, size: int):
        """``size``: the pickle's size in bytes, or how far a scan had read when it stopped."""
        self.size = size
        super().__init__(f"at least {size:,} bytes of pickle data, more than any checkpoint has ({MAX_PICKLE_BYTES:,})")


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
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _one_pickle_globals(stream: BinaryIO, limit: int | None = None) -> Iterator[str]:
    """The globals one pickle references, read from ``stream`` up to its STOP opcode (or past ``limit`` bytes)."""
    memo: dict[Any, Any] = {}
    # What the opcodes since the last other opcode pushed (a string, or None for anything else); STACK_GLOBAL needs
    # the last two only, so a pickle of many strings is scanned in linear time.
    pushed: deque[Any] = deque([None, None], maxlen=2)
    for opcode, arg, pos in pickletools.genops(stream):
        if limit is not None and pos is not None and pos > limit:
            raise OversizedPickle(pos)
        name = opcode.name
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            yield _py3_global(module, attr)
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            # Its module and name are the two values pushed just before (strings, or strings fetched from the memo);
            # anything computed at load time cannot be named here, so it is listed as the opcode and refused.
            module, attr = pushed
            ok = isinstance(module, str) and isinstance(attr, str)
            yield f"{module}.{attr}" if ok else "<pickle opcode STACK_GLOBAL>"
            pushed.append(None)
        elif name in {"INST", "OBJ"}:  # protocols 0-1 class instantiation: torch neither writes nor loads it
            yield f"<pickle opcode {name}>"
            pushed.append(None)
        elif name in _STRING_OPCODES:
            pushed.append(str(arg))
        elif name in _MEMO_OPCODES:
            memo[len(memo) if name == "MEMOIZE" else arg] = pushed[-1]
        elif name in _GET_OPCODES:
            pushed.append(memo.get(arg))
        else:
            pushed.append(None)


def pickle_globals(
    source: bytes | BinaryIO, pickles: int = 1, partial: bool = False, limit: int | None = MAX_PICKLE_BYTES
) -> list[str]:
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
        limit: Stop at this stream position (bytes): no checkpoint's pickles are longer (None: no limit).

    Returns:
        The names, each once.

    Raises:
        OversizedPickle: The pickles run on past ``limit`` (also when ``partial``).
        ValueError: Damaged pickle data (unless ``partial``).
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    found: dict[str, None] = {}
    try:
        for _ in range(pickles):
            for name in _one_pickle_globals(stream, limit):
                found.setdefault(name)  # kept when the data breaks off later
    except OversizedPickle:
        raise
    except Exception as error:  # pickletools raises ValueError and others on truncated or corrupt data
        if not partial:
            raise ValueError(f"damaged pickle data ({first_line(error)})") from None
    return list(found)


@dataclass(frozen=True)
class LegacyPickles:
    """What the pickles of a file in torch's pre-1.6 format reference (:func:`legacy_pickles`).

    Attributes:
        names: The globals, in order of first use (those found before the data ended, when it did).
        oversized: The pickles run on past :data:`MAX_PICKLE_BYTES`: no checkpoint's do, so the file is refused as such.
        damaged: Why the pickles break off or cannot be disassembled, or "" when they are whole.
    """

    names: tuple[str, ...]
    oversized: bool
    damaged: str


_legacy_cache: dict[str, LegacyPickles] = {}  # the last file scanned: import_weights asks twice (why unreadable, what)


def legacy_pickles(path: str | Path) -> LegacyPickles:
    """Scan the pickles of a file in torch's pre-1.6 format once, from memory; nothing is unpickled.

    The pickles (magic number, protocol, system information, the object, the storage keys) come before the tensor
    bytes and must end within :data:`MAX_PICKLE_BYTES`, so that much is read: scanning from memory is several times
    faster than byte reads from the file. The last result is kept for the file's size and modification time, since
    :func:`attnyolo.integration.formats.describe_unreadable` and the check of what the file references both need it.
    """
    stat = Path(path).stat()
    key = f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    if key in _legacy_cache:
        return _legacy_cache[key]
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read(MAX_PICKLE_BYTES + 1))
    found: dict[str, None] = {}
    damaged = ""
    try:
        for _ in range(_LEGACY_PICKLES + 1):  # the storage keys' pickle names no global, but a cut in it is damage
            for name in _one_pickle_globals(stream, None):
                found.setdefault(name)
    except Exception as error:  # pickletools raises ValueError and others on truncated or corrupt data
        damaged = f"damaged pickle data ({first_line(error)})"
    # Checked first: pickles that ran on to the end of what was read are too large, not merely cut short.
    result = LegacyPickles(tuple(found), stream.tell() > MAX_PICKLE_BYTES, damaged)
    _legacy_cache.clear()
    _legacy_cache[key] = result
    return result


def zip_pickle_info(archive: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    """The entry of a torch.save zip archive's pickle (``<folder>/data.pkl``), or None when there is none."""
    return next((i for i in archive.infolist() if i.filename.rpartition("/")[2] == "data.pkl"), None)


def read_zip_pickle(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The pickle record ``info`` of ``archive``, checked against :data:`MAX_PICKLE_BYTES` before it is read.

    Raises:
        OversizedPickle: The record is larger (its uncompressed size, which also bounds what zipfile returns).
    """
    if info.file_size > MAX_PICKLE_BYTES:
        raise OversizedPickle(info.file_size)
    return archive.read(info)


def zip_pickle_record(path: str | Path) -> bytes | None:
    """The pickle (``data.pkl``) of a torch.save zip archive, or None when ``path`` is no readable such archive.

    A record larger than :data:`MAX_PICKLE_BYTES` is not read (None too): no checkpoint's pickle is that large, and
    :func:`attnyolo.integration.checkpoints.referenced_globals` refuses the file with its size.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = zip_pickle_info(archive)
            return read_zip_pickle(archive, info) if info else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):  # OversizedPickle is a ValueError
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
