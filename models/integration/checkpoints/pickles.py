"""What a torch.save file references, listed without unpickling it (:func:`pickle_globals`).

Used by every checkpoint reader of the package, through :func:`attnyolo.integration.checkpoints.referenced_globals`.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import zipfile
from dataclasses import dataclass, field
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
_INT_OPCODES = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
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


class _Global(str):
    """A global's ``module.name`` on the simulated stack of :func:`_scan_one` (told apart from a pickled string)."""


@dataclass
class PickleScan:
    """What :func:`scan_pickles` found: what the pickles reference, and what they would call with arguments.

    Attributes:
        names: The globals, each once, in order of first use.
        calls: The globals the pickles call (``REDUCE``, or ``NEWOBJ``/``NEWOBJ_EX`` with arguments, which run
            ``__new__`` with them), each once, in order; ``<computed>`` for a callable that is no global (the result
            of another call), which no checkpoint has.
        storages: The persistent ids of the tensor storages (``('storage', type, key, location, numel, ...)``), with
            the values the scan could follow (ints, strings, globals; None for anything else).
    """

    names: dict[str, None] = field(default_factory=dict)
    calls: dict[str, None] = field(default_factory=dict)
    storages: list[tuple] = field(default_factory=list)


def _callee(value: Any) -> str:
    """How :attr:`PickleScan.calls` names a callable on the simulated stack."""
    return str(value) if isinstance(value, _Global) else "<computed>"


def _scan_one(stream: BinaryIO, found: PickleScan, limit: int | None = None) -> None:
    """Add what one pickle, read from ``stream`` up to its STOP opcode, references and calls to ``found``.

    The pickle's stack is followed with :mod:`pickletools`' own description of each opcode (``stack_before`` /
    ``stack_after``), keeping only what names a callable or a storage: globals, strings, ints and tuples of them;
    every other value is None. Nothing is built, and memory is bounded by the pickle's size.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[Any, Any] = {}
    for opcode, arg, pos in pickletools.genops(stream):
        if limit is not None and pos is not None and pos > limit:
            raise OversizedPickle(pos)
        name, before, after = opcode.name, opcode.stack_before, opcode.stack_after
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name in _MEMO_OPCODES:  # store the top of the stack, change nothing
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            continue
        if name == "POP" and marks and marks[-1] == len(stack):  # POP of a mark
            marks.pop()
            continue
        if pickletools.markobject in before:  # the items above the last mark, and those below it the opcode takes
            start = marks.pop()
            items = stack[start:]
            below = before.index(pickletools.markobject)
            del stack[start:]
            taken = stack[len(stack) - below :] if below else []
            del stack[len(stack) - below :]
        else:
            items = stack[len(stack) - len(before) :] if before else []
            if len(items) != len(before):
                raise ValueError(f"stack underflow at {name}")
            del stack[len(stack) - len(before) :]
            taken = []
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            value = _Global(_py3_global(module, attr))
        elif name == "STACK_GLOBAL":
            # Its module and name are the two values pushed just before (strings, or strings fetched from the memo);
            # anything computed at load time cannot be named here, so it is listed as the opcode and refused.
            module, attr = items
            ok = type(module) is str and type(attr) is str
            value = _Global(f"{module}.{attr}" if ok else "<pickle opcode STACK_GLOBAL>")
        elif name in {"INST", "OBJ"}:  # protocols 0-1 class instantiation: torch neither writes nor loads it
            value = _Global(f"<pickle opcode {name}>")
        elif name in _STRING_OPCODES:
            value = str(arg)
        elif name in _INT_OPCODES:
            value = arg
        elif name in _GET_OPCODES:
            value = memo.get(arg)
        elif name == "EMPTY_TUPLE":
            value = ()
        elif name in {"TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"}:
            value = tuple(items)
        elif name == "DUP":
            value = items[0]
        elif name == "REDUCE":
            found.calls.setdefault(_callee(items[0]))
            value = None
        elif name in {"NEWOBJ", "NEWOBJ_EX"}:  # cls.__new__(cls, *args): a call only when it has arguments
            if items[1] != () or (name == "NEWOBJ_EX" and items[2] is not None):
                found.calls.setdefault(_callee(items[0]))
            value = None
        elif name in {"BINPERSID", "PERSID"}:
            pid = items[0] if name == "BINPERSID" else arg
            if isinstance(pid, tuple):
                found.storages.append(pid)
            value = None
        else:
            value = None
        if isinstance(value, _Global):
            found.names.setdefault(str(value))
        del taken  # what an opcode consumes below a mark (SETITEMS' dict, APPENDS' list) is pushed again as `value`
        if after:
            stack.extend([value] * len(after))
        if name == "STOP":
            return


def scan_pickles(
    source: bytes | BinaryIO, pickles: int = 1, partial: bool = False, limit: int | None = MAX_PICKLE_BYTES
) -> PickleScan:
    """What ``pickles`` consecutive pickles reference (every global, in order of first use) and call.

    The pickles are disassembled with :mod:`pickletools`, never loaded. ``GLOBAL`` (protocols 0-3) names are mapped
    from Python 2's module names as pickle maps them on loading (``__builtin__.set`` -> ``builtins.set``);
    ``STACK_GLOBAL`` (protocol 4+) takes its module and name from the two strings pushed before it. ``INST`` and
    ``OBJ`` (protocols 0-1) are listed as ``<pickle opcode INST>``: torch.save never writes them and torch's
    weights-only unpickler does not support them, so a check refuses them by that name.

    Args:
        source: The pickle bytes, or a binary file positioned at the first pickle.
        pickles: How many pickles follow each other (torch's pre-1.6 format writes 4 before its tensor bytes).
        partial: Return what was found so far when the data ends or breaks off early, instead of raising.
        limit: Stop at this stream position (bytes): no checkpoint's pickles are longer (None: no limit).

    Raises:
        OversizedPickle: The pickles run on past ``limit`` (also when ``partial``).
        ValueError: Damaged pickle data (unless ``partial``).
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    found = PickleScan()
    try:
        for _ in range(pickles):
            _scan_one(stream, found, limit)  # what was found is kept when the data breaks off later
    except OversizedPickle:
        raise
    except Exception as error:  # pickletools raises ValueError and others on truncated or corrupt data
        if not partial:
            raise ValueError(f"damaged pickle data ({first_line(error)})") from None
    return found


def pickle_globals(
    source: bytes | BinaryIO, pickles: int = 1, partial: bool = False, limit: int | None = MAX_PICKLE_BYTES
) -> list[str]:
    """The ``module.name`` of every global the pickles reference, each once, in order of first use.

    :func:`scan_pickles`' ``names``; the arguments and exceptions are its.
    """
    return list(scan_pickles(source, pickles, partial, limit).names)


@dataclass(frozen=True)
class LegacyPickles:
    """What the pickles of a file in torch's pre-1.6 format reference (:func:`legacy_pickles`).

    Attributes:
        names: The globals, in order of first use (those found before the data ended, when it did).
        oversized: The pickles run on past :data:`MAX_PICKLE_BYTES`: no checkpoint's do, so the file is refused as such.
        damaged: Why the pickles break off or cannot be disassembled, or "" when they are whole.
        calls: The globals the pickles call with arguments (:attr:`PickleScan.calls`).
        storage_bytes: The bytes the storages the pickles declare take together: torch's pre-1.6 reader allocates
            them as the pickle says before it reads the tensor bytes that follow.
    """

    names: tuple[str, ...]
    oversized: bool
    damaged: str
    calls: tuple[str, ...] = ()
    storage_bytes: int = 0


_legacy_cache: dict[str, LegacyPickles] = {}  # the last file scanned: import_weights asks twice (why unreadable, what)


def legacy_pickles(path: str | Path) -> LegacyPickles:
    """Scan the pickles of a file in torch's pre-1.6 format once, from memory; nothing is unpickled.

    The pickles (magic number, protocol, system information, the object, the storage keys) come before the tensor
    bytes and must end within :data:`MAX_PICKLE_BYTES`, so that much is read: scanning from memory is several times
    faster than byte reads from the file. The last result is kept for the file's size and modification time, since
    :func:`attnyolo.engine.importing.describe_unreadable` and the check of what the file references both need it.
    """
    stat = Path(path).stat()
    key = f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    if key in _legacy_cache:
        return _legacy_cache[key]
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read(MAX_PICKLE_BYTES + 1))
    found = PickleScan()
    damaged = ""
    try:
        for _ in range(_LEGACY_PICKLES + 1):  # the storage keys' pickle names no global, but a cut in it is damage
            _scan_one(stream, found, None)
    except Exception as error:  # pickletools raises ValueError and others on truncated or corrupt data
        damaged = f"damaged pickle data ({first_line(error)})"
    # Checked first: pickles that ran on to the end of what was read are too large, not merely cut short.
    oversized = stream.tell() > MAX_PICKLE_BYTES
    result = LegacyPickles(tuple(found.names), oversized, damaged, tuple(found.calls), storage_bytes(found.storages))
    _legacy_cache.clear()
    _legacy_cache[key] = result
    return result


class AmbiguousArchive(ValueError):
    """A zip archive whose records could be read in two ways (a name twice, two pickles): no torch.save file is."""


def _unambiguous(names: list[str]) -> None:
    """Refuse a listing of zip records that holds a name twice, or more than one pickle (``data.pkl``)."""
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise AmbiguousArchive(f"the zip archive holds {twice[0]!r} twice")
    pickles = [name for name in names if name.rpartition("/")[2] == "data.pkl"]
    if len(pickles) > 1:
        raise AmbiguousArchive(f"the zip archive holds {len(pickles)} pickles ({', '.join(pickles[:3])})")


def archive_pickle(path: str | Path) -> bytes:
    """The pickle of a torch.save zip archive: exactly the bytes ``torch.load`` unpickles, read by torch's own reader.

    Before anything is read, the archive must be unambiguous: no record name twice and one ``data.pkl`` only, as
    listed both by Python's :mod:`zipfile` and by torch's reader (``torch._C.PyTorchFileReader``, the one
    ``torch.load`` uses, which takes the last of two records of one name where :mod:`zipfile`'s list shows the first).
    The record's size is checked against :data:`MAX_PICKLE_BYTES` before it is read.

    Raises:
        AmbiguousArchive: A record name twice, or more than one pickle.
        OversizedPickle: The pickle is larger than any checkpoint's.
        RuntimeError, zipfile.BadZipFile, OSError, ...: Not a readable zip archive.
    """
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    _unambiguous([info.filename for info in infos])
    reader = torch._C.PyTorchFileReader(str(path))
    _unambiguous(reader.get_all_records())
    if not reader.has_record("data.pkl"):
        raise ValueError("a zip archive without data.pkl")
    if hasattr(reader, "get_record_size"):
        size = reader.get_record_size("data.pkl")
    else:  # older torch (2.6) has no get_record_size; with no name twice, zipfile's entry is the record torch reads
        size = max(i.file_size for i in infos if i.filename == "data.pkl" or i.filename.endswith("/data.pkl"))
    if size > MAX_PICKLE_BYTES:
        raise OversizedPickle(size)
    return bytes(reader.get_record("data.pkl"))


def legacy_storage_excess(declared: int, size: int) -> str:
    """Why a file in torch's pre-1.6 format whose storages need more bytes than the file holds is not read."""
    return (
        f"its pickle declares {declared:,} bytes of tensor storage, more than the whole file ({size:,} bytes), which "
        "torch's pre-1.6 reader would allocate before reading"
    )


def zip_pickle_record(path: str | Path) -> bytes | None:
    """The pickle (``data.pkl``) of a torch.save zip archive, or None when ``path`` is no readable, unambiguous one.

    Read by :func:`archive_pickle`. A record larger than :data:`MAX_PICKLE_BYTES` is not read (None too): no
    checkpoint's pickle is that large, and :func:`attnyolo.integration.checkpoints.referenced_globals` refuses the file
    with its size.
    """
    try:
        return archive_pickle(path)
    except Exception:  # zipfile and torch's reader raise BadZipFile, RuntimeError, OSError, ... for damaged archives
        return None


# Bytes per element of torch's typed storage classes (torch.<Kind>Storage), as torch.save names them in a persistent id.
_STORAGE_ELEMENT_BYTES = {
    **dict.fromkeys(["Double", "Long", "ComplexFloat"], 8),
    **dict.fromkeys(["Float", "Int", "QInt32"], 4),
    **dict.fromkeys(["Half", "BFloat16", "Short"], 2),
    "ComplexDouble": 16,
}


def storage_bytes(storages: list[tuple]) -> int:
    """How many bytes the storages of :attr:`PickleScan.storages` declare: each key counted once, as torch allocates.

    A persistent id is ``('storage', storage type, key, location, numel, ...)``; the element size comes from the
    storage type's name (``torch.FloatStorage``: 4 bytes; ``torch.UntypedStorage``: bytes). An id whose size the scan
    could not follow counts as 0 (torch then fails on it).
    """
    sizes: dict[Any, int] = {}
    for pid in storages:
        if len(pid) < 5 or not isinstance(pid[4], int) or isinstance(pid[4], bool):
            continue
        element = _STORAGE_ELEMENT_BYTES.get(str(pid[1]).rpartition(".")[2].removesuffix("Storage"), 1)
        sizes[pid[2]] = max(sizes.get(pid[2], 0), pid[4] * element)
    return sum(sizes.values())


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
