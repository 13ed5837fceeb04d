"""Reading and writing checkpoints: the one place a ``.pt`` file is checked, opened and saved.

Ultralytics pickles whole models, so the import paths of AttnYOLO's classes are part of the checkpoint format
(``attnyolo/__init__.py`` keeps the paths of earlier releases importable). This module:

* reads checkpoints without running code from them (:func:`read_checkpoint`): ``torch.load(weights_only=True)`` with
  an allowlist of exactly what Ultralytics and AttnYOLO put into checkpoints (model layers, their head and model
  classes, Ultralytics' argument namespace, numpy scalars, paths). A file that references anything else is refused
  with one line naming the first such global, unless the user vouches for it (:func:`checkpoints_trusted`).
  ``YOLO(path)`` reads through it too, once ``attnyolo`` is imported (:func:`wrap_torch_safe_load`);
* gives the readers of other projects' files (:mod:`attnyolo.yolov5.checkpoint`) the same pieces: the globals a file
  references, listed without unpickling it (:func:`referenced_globals`, :func:`~.pickles.pickle_globals`), the data
  types checkpoints hold (:func:`~.allowlist.data_globals`), and the one registry of torch's weights-only
  allowlist, permanent (:func:`allow_globals`) or for one load (:func:`scoped_globals`), safe with concurrent loads;
* checks a checkpoint argument once for every tool (:func:`check_checkpoint_file`) and opens it with one-line errors
  (:func:`load_model`);
* makes the trainer's checkpoint writes atomic (:func:`save_model_atomically`), and the optimizer strip that
  Ultralytics' ``final_eval`` runs over ``last.pt``/``best.pt`` too (:func:`wrap_strip_optimizer`): a crash mid-write
  never leaves a truncated checkpoint where a complete one was.

What may be unpickled is :mod:`attnyolo.integration.allowlist`; how a file's globals are listed,
:mod:`attnyolo.integration.pickles` (both re-exported here). Slightly over the project's ~400 lines on purpose: every
way a checkpoint is validated, opened and registered with torch stays in this one module.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import pickle
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, first_line, without_unsafe_advice
from ..utils.atomic import (
    atomic_path,
    name_failure,
    remove_stale_temporaries,
    replace_atomically,
    temporary_sibling,
)
from ..utils.cli import parse_bool
from .allowlist import (  # noqa: F401  (re-exported)
    _checkpoint_getattr,
    _fixed_globals,
    allowed_call,
    allowed_global,
    data_globals,
    numpy_scalar_globals,
)
from .pickles import (  # noqa: F401  (re-exported: the listing every reader uses)
    _LEGACY_PICKLES,
    MAX_PICKLE_BYTES,
    AmbiguousArchive,
    OversizedPickle,
    archive_pickle,
    legacy_pickles,
    legacy_storage_excess,
    pickle_globals,
    scan_pickles,
    torch_default_globals,
    torch_save_format,
    zip_pickle_record,
)

TRUST_ENV = "ATTNYOLO_TRUST_CHECKPOINTS"  # "1": read every checkpoint with full unpickling (the user vouches for it)
TRUST_HINT = f"If you trust this file, pass trust_checkpoint=True (or set {TRUST_ENV}=1)."


_registered: dict[str, Any] = {}  # name -> object already given to torch.serialization.add_safe_globals
_lock = threading.Lock()
_label: contextvars.ContextVar[str | None] = contextvars.ContextVar("attnyolo_checkpoint_label", default=None)


def checkpoints_trusted() -> bool:
    """Whether the user vouched for every checkpoint this process opens (``ATTNYOLO_TRUST_CHECKPOINTS=1``)."""
    return parse_bool(os.environ.get(TRUST_ENV, "")) is True  # anything but a true spelling keeps files untrusted


def trust_checkpoints(enabled: bool = True) -> None:
    """Read every checkpoint of this process, and of the processes it starts, with full unpickling (or stop).

    Tools call this for ``trust_checkpoint=True``. Full unpickling runs whatever code a file names, so it is only for
    files the user vouches for; by default :func:`read_checkpoint` refuses them instead.

    Args:
        enabled: True to trust, False to return to safe loading.
    """
    if enabled:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)


def refusal(label: str, names: list[str], writers: str = "Ultralytics or AttnYOLO") -> CheckpointError:
    """The one-line refusal naming the first disallowed global (and how many more there are) and the opt-in.

    Every reader of the package refuses a file in these words, so the opt-in is always named.

    Args:
        label: How the message names the file (e.g. ``model=best.pt``).
        names: The disallowed globals, in order of first use.
        writers: What writes the kind of checkpoint the file claims to be.
    """
    more = f" (and {len(names) - 1} more disallowed)" if len(names) > 1 else ""
    return CheckpointError(
        f"{label}: refused to load: it references {names[0]}{more}, which checkpoints written by {writers} never "
        f"contain. {TRUST_HINT}"
    )


def checkpoint_label_of(path: str | Path) -> str:
    """How messages name ``path``: the label of the enclosing :func:`checkpoint_label` block, else the path."""
    return _label.get() or str(path)


def load_weights_only(path: str | Path, **kwargs: Any) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, without torch's warning about the pickle protocol.

    torch warns about any protocol but 2 before it reads a pickle; the package's own scan has judged the file by then,
    and the warning would be a second, unrelated line before the one-line result.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)


def _oversized(label: str, what: str) -> CheckpointError:
    """The one-line refusal of a file whose pickle is larger than any checkpoint's (:data:`MAX_PICKLE_BYTES`)."""
    return CheckpointError(
        f"{label}: refused to load: {what}, more than the {MAX_PICKLE_BYTES:,} bytes a checkpoint's pickle needs (it "
        f"holds the model's structure; the tensors are stored apart). {TRUST_HINT}"
    )


def _damaged(label: str, error: BaseException) -> CheckpointError:
    """The one-line error for a file torch cannot read at all."""
    reason = first_line(error).split(". ")[0].rstrip(".")
    if "TorchScript" in reason:
        return CheckpointError(
            f"{label} is a TorchScript archive, not an Ultralytics checkpoint. Fix: pass the .pt file written by "
            "training (export it again for TorchScript)."
        )
    return CheckpointError(
        f"{label} is not a loadable checkpoint: the file is empty, truncated or corrupted "
        f"({type(error).__name__}: {reason[:160]}). Fix: pass a .pt file written by training, e.g. "
        "runs/train/exp/weights/best.pt."
    )


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


def _foreign(path: Path) -> dict[str, Any] | None:
    """The checkpoint dict of a file in a foreign format AttnYOLO maps without unpickling code, else None."""
    from ..engine.importing import detect_format

    fmt = detect_format(path)
    return fmt.load(path)[0] if fmt is not None else None


def _weights_only_reason(error: BaseException) -> str:
    """The reason in torch's weights-only error, without its advice to load with full unpickling."""
    reason = without_unsafe_advice(str(error))
    if reason.startswith("torch's weights-only reader refused it ("):
        reason = reason[len("torch's weights-only reader refused it (") : -1]
    return reason if reason != str(error) else first_line(error).rstrip(".")


def read_checkpoint(path: str | Path, trust: bool = False, label: str | None = None, mmap: bool = False) -> Any:
    """Read a checkpoint without running code from it; refuse one that references anything checkpoints never hold.

    The file is read with ``torch.load(weights_only=True)`` after registering the globals it references, each checked
    by :func:`allowed_global`. A file in a foreign format that :mod:`attnyolo.engine.importing` recognises (e.g. a
    classic YOLOv5 checkpoint) is read by that format's loader, which maps it without unpickling its code.

    Args:
        path: The checkpoint file.
        trust: Read with full unpickling (the user vouches for the file); also on when :func:`checkpoints_trusted`.
        label: How messages name the file (default: the path), e.g. ``model=best.pt``.
        mmap: Map the tensors instead of reading them (zip checkpoints), to look at a large file's metadata cheaply.

    Returns:
        What the file holds: for Ultralytics and AttnYOLO checkpoints the checkpoint dict.

    Raises:
        CheckpointError: A disallowed global (naming the first one and the opt-in), or a damaged file.
    """
    path = Path(path)
    label = label or checkpoint_label_of(path)
    if trust or checkpoints_trusted():
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
            raise _damaged(label, error) from None
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise CheckpointError(
            f"{label}: reading a checkpoint without running code from it needs torch >= 2.6 (installed: "
            f"{torch.__version__}). Fix: pip install 'torch>=2.6'. {TRUST_HINT}"
        )
    names, legacy = referenced_globals(path, label)
    try:
        allow_globals(names, label)
    except CheckpointError:
        foreign = _foreign(path)
        if foreign is not None:
            return foreign
        raise
    try:
        return load_weights_only(path, mmap=mmap and not legacy)
    except pickle.UnpicklingError as error:
        if legacy:
            raise CheckpointError(
                f"{label}: refused to load: it is in torch's pre-1.6 serialization format, which stores model classes "
                f"in a form that cannot be read without running code ({_weights_only_reason(error)}). {TRUST_HINT}"
            ) from None
        raise CheckpointError(
            f"{label}: refused to load: {_weights_only_reason(error)}; checkpoints written by Ultralytics or AttnYOLO "
            f"never need that. {TRUST_HINT}"
        ) from None
    except (RuntimeError, EOFError) as error:
        raise _damaged(label, error) from None


def load_trusted(path: str | Path, substitutes: dict[str, Any] | None = None) -> Any:
    """Unpickle ``path`` in full, running what it names: only for a file the user vouches for (``trust_checkpoint``).

    Args:
        path: The file.
        substitutes: Globals to resolve to the given objects instead of importing them (``module.Name`` -> object),
            e.g. the code-free stand-ins of a classic YOLOv5 checkpoint's classes.

    Raises:
        CheckpointError: The file is damaged.
    """
    import types

    substitutes = dict(substitutes or {})

    class Unpickler(pickle.Unpickler):
        """pickle's Unpickler, with ``substitutes`` resolved to their objects."""

        def find_class(self, module, name):
            """The substitute for ``module.name``, else what pickle finds."""
            return substitutes.get(f"{module}.{name}") or super().find_class(module, name)

    pickle_module = types.ModuleType("attnyolo_trusted_pickle")  # torch.load subclasses pickle_module.Unpickler
    pickle_module.Unpickler, pickle_module.load = Unpickler, pickle.load
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise _damaged(checkpoint_label_of(path), error) from None


def screen_checkpoint(path: str | Path, label: str | None = None, foreign: bool | None = None) -> None:
    """Refuse now what :func:`read_checkpoint` would refuse for what the file references, without loading it.

    For arguments read only later in a run (``pretrained=``, read once the trainer has made its run folder): the
    file's pickle is scanned, nothing is unpickled. Nothing is checked when the user trusts checkpoints.

    Args:
        path: The checkpoint file.
        label: How messages name the file (default: the path).
        foreign: Whether the file is in a foreign format :mod:`attnyolo.engine.importing` reads, when the caller has
            detected that already (None: detected here, only if the file references a disallowed global).

    Raises:
        CheckpointError: A damaged file, or one referencing a global no checkpoint holds (named, with the opt-in).
    """
    if checkpoints_trusted():
        return
    label = label or checkpoint_label_of(path)
    refused = [name for name in referenced_globals(path, label)[0] if allowed_global(name) is None]
    if refused and foreign is None:
        from ..engine.importing import detect_format

        foreign = detect_format(Path(path)) is not None  # detected, not converted: converting it would cost a read
    if refused and not foreign:  # a foreign format's reader gives its own answer when loading
        raise refusal(label, refused)


@contextlib.contextmanager
def checkpoint_label(label: str) -> Iterator[None]:
    """Name checkpoint files ``label`` (e.g. ``model=best.pt``) in the messages of loads inside the block."""
    token = _label.set(label)
    try:
        yield
    finally:
        _label.reset(token)


def wrap_torch_safe_load(original):
    """Return a torch_safe_load that reads through :func:`read_checkpoint` unless the user trusts checkpoints.

    Ultralytics' ``load_checkpoint`` (behind ``YOLO(path)``, resume, ``pretrained=``, AutoBackend) opens every ``.pt``
    file with ``torch_safe_load``, which unpickles in full. Kept from the original: the ``.pt`` suffix check, bare
    asset names downloaded through ``attempt_download_asset``, one re-download of a damaged cached asset, and a
    pickled whole model turned into ``{"model": ...}``. With the user's opt-in the original runs unchanged, except
    that files in a foreign format (:mod:`attnyolo.engine.importing`) are always read by that format's loader. A file
    that exists at the path given is read as given, never swapped for the stock weight Ultralytics renames it to.
    """

    @functools.wraps(original)
    def torch_safe_load(weight, *args, **kwargs):
        """Load a checkpoint as Ultralytics does, but with :func:`read_checkpoint`'s allowlist."""
        if checkpoints_trusted():
            # A foreign format is still read by its own loader: Ultralytics cannot build such a file's classes.
            foreign = _foreign(Path(str(weight))) if Path(str(weight)).is_file() else None
            if foreign is not None:
                return foreign, str(weight)
            ckpt, file = original(weight, *args, **kwargs)
            return _with_model(ckpt, checkpoint_label_of(file)), file
        from ultralytics.utils.checks import check_suffix
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

        check_suffix(file=weight, suffix=".pt")
        # A file that exists is read as given: attempt_download_asset renames yolov5s.pt/yolov3.pt-style names to
        # Ultralytics' "u" models (yolov5su.pt) first, the names under which classic YOLOv5 released its weights.
        file = str(weight) if Path(str(weight)).is_file() else attempt_download_asset(weight)
        try:
            ckpt = read_checkpoint(file)
        except CheckpointError as error:
            name = Path(str(weight)).name
            if str(weight) != name or name not in GITHUB_ASSETS_NAMES or "not a loadable" not in str(error):
                raise
            Path(file).unlink(missing_ok=True)  # a damaged cached stock asset, asked for by name: fetch it again
            file = attempt_download_asset(weight)
            ckpt = read_checkpoint(file)
        if not isinstance(ckpt, dict) and isinstance(getattr(ckpt, "model", ckpt), torch.nn.Module):
            ckpt = {"model": getattr(ckpt, "model", ckpt)}  # a whole YOLO object saved with torch.save
        return _with_model(ckpt, checkpoint_label_of(file)), file

    torch_safe_load._attnyolo_original = original
    return torch_safe_load


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


def check_checkpoint_file(path: str | Path, key: str = "model") -> Path:
    """The checkpoint path, or a one-line error when it is missing or clearly not a checkpoint.

    Args:
        path: The value the user gave.
        key: The argument's name, for the message (``model``, ``pretrained``, ``resume``).

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: A model YAML or another file type where trained weights are needed.
    """
    given = str(path)
    if "://" in given:  # Path() would collapse the '//' of a URL in the message
        raise CheckpointError(
            f"{key}={given} is a URL; checkpoints are read from files, and a downloaded file is checked like any "
            "other. Fix: download it, then pass the file's path."
        )
    path = Path(given)
    if path.is_dir():
        raise CheckpointError(f"{key}={path} is a folder, not a checkpoint file. Fix: pass the .pt file inside it.")
    if path.exists() and not path.is_file():  # a FIFO, socket or device: reading it could block or never end
        raise CheckpointError(
            f"{key}={path} is not a regular file (a pipe, socket or device). Fix: pass the .pt file training wrote."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path} does not exist. Fix: pass a trained checkpoint, e.g. weights/best.pt.")
    if path.suffix.lower() in {".yaml", ".yml"}:
        raise CheckpointError(f"{key}={path} is a model definition, not trained weights. Fix: pass a .pt checkpoint.")
    if path.suffix.lower() != ".pt":
        raise CheckpointError(f"{key}={path} is not a .pt checkpoint. Fix: pass the .pt file written by training.")
    return path


def load_model(path: str | Path, key: str = "model"):
    """Open a checkpoint as an Ultralytics ``YOLO`` model, with one-line errors for every way it can be wrong.

    Args:
        path: A ``.pt`` checkpoint.
        key: The argument's name, for messages.

    Returns:
        The ``ultralytics.YOLO`` model.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Not a checkpoint, damaged, or not a detection model; the message names the file.
    """
    from ultralytics import YOLO

    path = check_checkpoint_file(path, key)
    try:
        with checkpoint_label(f"{key}={path}"):
            yolo = YOLO(str(path))
    except CheckpointError:
        raise
    except Exception as error:  # torch, pickle and Ultralytics raise many types for a file that is not a checkpoint
        reason = first_line(error)
        reason = reason.split("—", 1)[1].strip() if "—" in reason else reason  # drop Ultralytics' "<file> is ..."
        raise CheckpointError(
            f"{key}={path} is not a loadable checkpoint: {reason.rstrip('.')}. Fix: pass a .pt file written by "
            "training, e.g. runs/train/exp/weights/best.pt."
        ) from None
    if yolo.task != "detect":
        raise CheckpointError(f"{key}={path} is a '{yolo.task}' model; AttnYOLO's tools handle detection models only.")
    return yolo


def save_model_atomically(trainer: Any, save: Callable[[], Any]) -> Any:
    """Run the trainer's ``save_model`` with ``last.pt``/``best.pt`` written to temporary files renamed into place.

    Ultralytics' ``BaseTrainer.save_model`` writes to the paths in its documented ``last`` and ``best`` attributes;
    they point at temporary siblings while ``save`` runs, and each file that was written replaces its target after.

    Args:
        trainer: An Ultralytics trainer.
        save: The trainer's original ``save_model`` (bound).

    Returns:
        Whatever ``save`` returns.
    """
    final = {"last": Path(trainer.last), "best": Path(trainer.best)}
    tmp = {key: temporary_sibling(path) for key, path in final.items()}
    for key, path in tmp.items():  # a leftover from a crash must not be renamed over a good checkpoint below
        path.unlink(missing_ok=True)
        remove_stale_temporaries(final[key])  # nor fill the disk: a killed run's temporaries go here
    trainer.last, trainer.best = tmp["last"], tmp["best"]
    try:
        saved = save()
        for key, path in tmp.items():
            if path.exists():
                replace_atomically(path, final[key])
    except OSError as error:  # Ultralytics writes last.pt, then best.pt; a failed write names no file
        name_failure(error, final["best"] if tmp["best"].exists() else final["last"])
        raise
    finally:
        trainer.last, trainer.best = final["last"], final["best"]
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return saved


def wrap_strip_optimizer(original):
    """Return a strip_optimizer that writes through a temporary file renamed into place.

    Ultralytics' ``final_eval`` strips the optimizer from ``last.pt`` and ``best.pt`` by loading each and saving it
    over itself; a crash during that save would leave a truncated checkpoint where a complete one was.
    """

    @functools.wraps(original)
    def strip_optimizer(f="best.pt", s="", updates=None):
        """Strip as Ultralytics does, into a temporary file that replaces ``s or f`` only once fully written."""
        with atomic_path(Path(s or f), "strip.tmp") as tmp:
            return original(f, s=str(tmp), updates=updates)

    strip_optimizer._attnyolo_original = original
    return strip_optimizer
