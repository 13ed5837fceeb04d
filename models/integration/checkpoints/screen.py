"""Screening a checkpoint before anything is unpickled.

The globals its pickles reference (:mod:`.pickles`) are checked against the allowlist (:mod:`.allowlist`) and
registered with torch's weights-only unpickler for the read.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from ...utils.cli import checkpoints_trusted
from .allowlist import (
    _fixed_globals,
    allowed_call,
    allowed_global,
)
from .formats import detect_format
from .pickles import (
    MAX_PICKLE_BYTES,
    AmbiguousArchive,
    OversizedPickle,
    archive_pickle,
    legacy_pickles,
    legacy_storage_excess,
    scan_pickles,
    torch_default_globals,
    torch_save_format,
)
from .refusals import TRUST_HINT, _damaged, _oversized, checkpoint_label_of, refusal

_registered: dict[str, Any] = {}  # name -> object already given to torch.serialization.add_safe_globals


_lock = threading.Lock()


def load_weights_only(path: str | Path, **kwargs: Any) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, without torch's warning about the pickle protocol.

    torch warns about any protocol but 2 before it reads a pickle; the package's own scan has judged the file by then,
    and the warning would be a second, unrelated line before the one-line result.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)


def _torch_registered_names() -> set[str]:
    """Names of the globals in torch's process-wide weights-only allowlist (public ``get_safe_globals``)."""
    names = set()
    for entry in torch.serialization.get_safe_globals():
        obj, name = entry if isinstance(entry, tuple) else (entry, None)
        names.add(name or f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}")
    return names


def referenced_globals(path: str | Path, label: str | None = None) -> tuple[list[str], bool]:
    """The globals a torch.save file references beyond those torch's weights-only unpickler allows by itself.

    Listed by disassembling the file's pickles (:func:`pickle_globals`); nothing is unpickled. The answer does not
    depend on what is registered with torch at the moment, unlike torch's ``get_unsafe_globals_in_checkpoint``, which
    leaves out whatever a concurrent load has registered (e.g. the stand-ins of a classic YOLOv5 read).

    Args:
        path: The file.
        label: How messages name the file (default: the path).

    Returns:
        ``(names, legacy)``: the names in order of first use, and whether the file is in torch's pre-1.6 format.

    Raises:
        CheckpointError: A TorchScript archive, a damaged file, or not a torch.save file at all.
    """
    path = Path(path)
    label = label or str(path)
    fmt = torch_save_format(path)
    if fmt is None:
        raise _damaged(label, ValueError("not a zip archive or a pickle"))
    if fmt == "pickle":
        scan = legacy_pickles(path)  # a truncated file: the load reports it, with what it names refused first
        if scan.oversized:
            raise _oversized(label, f"its pickles run past {MAX_PICKLE_BYTES:,} bytes")
        if scan.storage_bytes > path.stat().st_size:  # torch's pre-1.6 reader allocates them before reading
            raise _damaged(label, ValueError(legacy_storage_excess(scan.storage_bytes, path.stat().st_size)))
        names, calls = list(scan.names), list(scan.calls)
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                record = next((n for n in archive.namelist() if n.rpartition("/")[2] == "data.pkl"), "data.pkl")
                members = [n.rpartition("/")[2] for n in archive.namelist()]
            if "constants.pkl" in members:  # TorchScript archives keep their constants there (torch.jit.save)
                raise _damaged(label, RuntimeError("TorchScript archive"))
            data = archive_pickle(path)
        except OversizedPickle as error:
            raise _oversized(label, f"its pickle {record} is {error.size:,} bytes uncompressed") from None
        except AmbiguousArchive as error:
            raise CheckpointError(
                f"{label}: refused to load: {error}, which torch.save never writes and which could be read in two "
                f"ways. {TRUST_HINT}"
            ) from None
        except CheckpointError:
            raise
        except Exception as error:  # zipfile and torch raise BadZipFile, OSError, RuntimeError, ... for damaged files
            if "without data.pkl" in str(error):
                raise _damaged(label, ValueError("a zip archive without data.pkl")) from None
            raise _damaged(label, error) from None
        try:
            scan = scan_pickles(data)
        except ValueError as error:
            raise _damaged(label, error) from None
        names, calls = list(scan.names), list(scan.calls)
    default = torch_default_globals()
    # A call of a global that may be referenced but never called (a layer class with arguments, bytearray(n)) is listed
    # as "a call of <name>", which no reader allows; one of a global refused anyway is named once, as that global.
    allowed = [name for name in calls if allowed_global(name) is not None or name in (default or ())]
    names += [f"a call of {name}" for name in allowed if not allowed_call(name)]
    names += ["a call of a value computed while unpickling"] if "<computed>" in calls else []
    if default is None and fmt == "zip":
        # Without torch's table: its public scan answers "not allowed by torch or by a registration"; what is
        # registered is known here (under the lock no registration of this module changes).
        with _lock:
            unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
            default = frozenset(set(names) - unsafe - _torch_registered_names())
    return [name for name in names if name not in (default or ())], fmt == "pickle"


# ------------------------------------------------------------------- the one registry of torch's weights-only allowlist
# torch.serialization.add_safe_globals registers for the whole process; its safe_globals context manager removes its
# entries again on exit, also those another load registered in the meantime. Every registration of the package goes
# through here instead, under one lock: permanent entries (allow_globals) are never removed, and an entry for one load
# (scoped_globals) is added only if nothing registered it already, shared by concurrent scopes, and removed only when
# the last of them ends and nothing has made it permanent meanwhile.
_scoped: dict[str, list] = {}  # name -> [object, open scopes, torch's context that added it]


def allow_globals(names: list[str], label: str) -> None:
    """Register each global of ``names`` with torch's weights-only unpickler for the process, or refuse the file.

    Each name is checked by :func:`allowed_global`. Registration is for the process (torch's ``add_safe_globals``):
    a scoped entry would be removed from under a concurrent load in another thread. Only what a file references is
    added, since torch rebuilds its lookup table from the whole registered set at every pickle opcode that needs it.

    Args:
        names: Globals a file references (:func:`referenced_globals`).
        label: How the refusal names the file.

    Raises:
        CheckpointError: Naming the first global checkpoints never hold.
    """
    if "numpy.dtype" in names:  # dtype(...) builds an instance of its class (numpy.dtypes.Float64DType), unnamed
        names = [*names, *(name for name in _fixed_globals() if name.startswith("numpy.dtypes."))]
    with _lock:
        wanted = {name: allowed_global(name) for name in names if name not in _registered}
        refused = [name for name, obj in wanted.items() if obj is None]
        if refused:
            raise refusal(label, refused)
        new = {name: obj for name, obj in wanted.items() if name not in _scoped or _scoped[name][0] is not obj}
        _registered.update(wanted)  # a name open in a scope with this object is in torch's set: it now stays there
        if new:
            torch.serialization.add_safe_globals([(obj, name) for name, obj in new.items()])


@contextlib.contextmanager
def scoped_globals(entries: dict[str, Any]) -> Iterator[None]:
    """Allow ``entries`` (name -> object) for torch's weights-only unpickler inside the block only.

    For objects no other load may see, e.g. the code-free stand-ins a classic YOLOv5 checkpoint is read with. An entry
    already registered for the process stays as it is; one open in a concurrent scope is shared; on exit only entries
    this call added, and that no other open scope or permanent registration uses, are removed.

    Args:
        entries: The globals, by the name pickle records them under.

    Raises:
        ValueError: A name already registered for another object.
    """
    opened = []
    with _lock:
        present = _torch_registered_names()
        for name, obj in entries.items():
            current = _registered.get(name, _scoped.get(name, [None])[0])
            if current is not None and current is not obj:
                raise ValueError(f"{name} is already allowed as {current!r}, not {obj!r}")
            if name in _registered or (name not in _scoped and name in present):
                continue  # registered for the process (by this module or by other code): left alone
            if name in _scoped:
                _scoped[name][1] += 1
            else:
                context = torch.serialization.safe_globals([(obj, name)])
                context.__enter__()
                _scoped[name] = [obj, 1, context]
            opened.append(name)
    try:
        yield
    finally:
        with _lock:
            for name in opened:
                entry = _scoped[name]
                entry[1] -= 1
                if entry[1] == 0:
                    del _scoped[name]
                    if name not in _registered:
                        entry[2].__exit__(None, None, None)  # removes exactly this entry from torch's set


def screen_checkpoint(path: str | Path, label: str | None = None, foreign: bool | None = None) -> None:
    """Refuse now what :func:`read_checkpoint` would refuse for what the file references, without loading it.

    For arguments read only later in a run (``pretrained=``, read once the trainer has made its run folder): the
    file's pickle is scanned, nothing is unpickled. Nothing is checked when the user trusts checkpoints.

    Args:
        path: The checkpoint file.
        label: How messages name the file (default: the path).
        foreign: Whether the file is in a foreign format :mod:`.formats` reads, when the caller has
            detected that already (None: detected here, only if the file references a disallowed global).

    Raises:
        CheckpointError: A damaged file, or one referencing a global no checkpoint holds (named, with the opt-in).
    """
    if checkpoints_trusted():
        return
    label = label or checkpoint_label_of(path)
    refused = [name for name in referenced_globals(path, label)[0] if allowed_global(name) is None]
    if refused and foreign is None:
        foreign = detect_format(Path(path)) is not None  # detected, not converted: converting it would cost a read
    if refused and not foreign:  # a foreign format's reader gives its own answer when loading
        raise refusal(label, refused)


def _with_model(ckpt: Any, label: str) -> Any:
    """``ckpt`` when it holds a model (``ckpt["ema"]`` or ``ckpt["model"]`` is a module); else a one-line error.

    Ultralytics' loader answers a file without a model (a state_dict, a list) with advice about its own supported
    format; the user needs to hear that the file holds no model, and what it holds instead.
    """
    if isinstance(ckpt, dict) and isinstance(ckpt.get("ema") or ckpt.get("model"), torch.nn.Module):
        return ckpt
    if not isinstance(ckpt, dict):
        what = f"it holds a {type(ckpt).__name__}"
    elif ckpt and all(isinstance(value, torch.Tensor) for value in ckpt.values()):
        what = f"it is a state_dict ({len(ckpt)} tensors, the weights without the model they belong to)"
    elif "model" in ckpt or "ema" in ckpt:
        key = "model" if "model" in ckpt else "ema"
        value = ckpt[key]
        kind = "None" if value is None else f"a {type(value).__name__}"
        hint = " (a state_dict?)" if isinstance(value, dict) else ""
        what = f"its '{key}' entry is {kind}{hint}, not a model"
    else:
        what = f"it is a dict without a 'model' entry (keys: {', '.join(map(str, list(ckpt)[:5]))})"
    raise CheckpointError(
        f"{label} holds no model: {what}. Fix: pass a checkpoint written by training (e.g. weights/best.pt), which "
        "holds the model itself."
    )
