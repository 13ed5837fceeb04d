"""The fused CPU kernels of ``csrc/fused_attention.cpp``, compiled on first use; the eager path where they cannot be.

Eager PyTorch walks a feature map once per operation, so Coordinate Attention and ELA read ``x`` four times and write
a temporary (two strip means, ``x * g_h`` and ``* g_w``), CBAM eight times. The kernels do the same arithmetic in
fewer passes (see the C++ file). They are built with ``torch.utils.cpp_extension`` the first time an attention layer
runs its inference path on a CPU float32 tensor (about 10 s with g++ on 2 cores), then cached by PyTorch under
``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``) for every later process.

The build's name carries a key of everything that makes one build differ from another (:func:`build_key`): the
kernel source's content, torch's version and install, the Python ABI and headers, the compiler and its flags. PyTorch
rebuilds a cached extension whenever the ninja command for its name changes, so without the key two environments
sharing the cache (two clones, two virtual environments, the project at two commits) rebuild over each other on
every run. The source is staged in the cache under its content key too, so identical copies of the package share
one build instead of differing by the source's path.

Building needs a C++ compiler, the Python headers and ninja (``requirements.txt``); with OpenMP the kernels run on
torch's threads, without it (Apple clang) on one. Where any is missing, or ``ATTNYOLO_FUSED_KERNELS=0`` is set,
:func:`fused_ops` returns None once with one logged line saying why, and the layers run their eager path: the same
results, only slower.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any

import torch
from ultralytics.utils import LOGGER

from ...utils.atomic import write_bytes_atomic

SOURCE = Path(__file__).with_name("csrc") / "fused_attention.cpp"
ENV_SWITCH = "ATTNYOLO_FUSED_KERNELS"  # "0" keeps every layer on its eager path
ENV_ISA = "ATTNYOLO_FUSED_ISA"  # "generic" builds the portable loops even on an AVX2 CPU (tests, odd toolchains)

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ops": None, "reason": None}


def build_name(serial: bool = False) -> str:
    """Extension name of one build: ``attnyolo_fused_<isa>[_serial]_<key>``.

    One build per instruction set, so a shared cache never hands AVX2 code to an older CPU; ``_serial`` is the build
    without OpenMP; ``<key>`` is :func:`build_key` of that build's flags.
    """
    cflags, ldflags = _flags(serial)
    return f"attnyolo_fused_{vector_isa()}{'_serial' if serial else ''}_{build_key(cflags, ldflags)}"


def build_key(cflags: list[str], ldflags: list[str]) -> str:
    """12 hex digits of SHA-256 over everything that makes one build of the kernels differ from another.

    The kernel source's bytes; torch's version, C++ ABI and install folder (its headers, libraries and the include
    paths in PyTorch's build command); the Python ABI tag and header folder; the compiler (``CXX``, as PyTorch's build
    reads it) and the flags. Two environments that differ in any of these get two builds side by side; identical ones
    share one.
    """
    parts = [
        SOURCE.read_bytes(),
        torch.__version__,
        str(torch.compiled_with_cxx11_abi()),
        str(Path(torch.__file__).resolve().parent),
        sys.implementation.cache_tag or "",
        sysconfig.get_config_var("SOABI") or "",
        sysconfig.get_paths()["include"],
        os.environ.get("CXX", "c++"),
        " ".join(cflags),
        " ".join(ldflags),
    ]
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode()
        digest.update(len(data).to_bytes(8, "little") + data)  # length-prefixed: no two lists hash alike
    return digest.hexdigest()[:12]


def vector_isa() -> str:
    """``avx2`` where PyTorch itself runs AVX2 or AVX-512 kernels on this CPU, else ``generic``."""
    forced = os.environ.get(ENV_ISA, "").strip().lower()
    if forced == "generic":
        return "generic"
    if forced:
        raise ValueError(f"{ENV_ISA}={os.environ[ENV_ISA]!r} is not understood; use generic, or unset it.")
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")()
    return "avx2" if capability.upper().startswith(("AVX2", "AVX512")) else "generic"


def _flags(serial: bool) -> tuple[list[str], list[str]]:
    """``(cflags, ldflags)`` of the OpenMP build, or of the serial one."""
    base = ["-O3"] + (["-mavx2", "-mfma"] if vector_isa() == "avx2" else [])
    return (base, []) if serial else ([*base, "-fopenmp"], ["-fopenmp"])


def _variants() -> list[tuple[str, list[str], list[str]]]:
    """Builds to try, best first, as ``(name, cflags, ldflags)``.

    With OpenMP, ``at::parallel_for`` uses torch's threads. Without it (Apple clang has no ``-fopenmp``) the same
    kernels run on one thread, still in fewer passes than eager PyTorch. AVX2/FMA only where the CPU has them.
    """
    return [(build_name(serial), *_flags(serial)) for serial in (False, True)]


def _built(root: Path, name: str) -> bool:
    """Whether PyTorch's cache holds a build of ``name`` (the name's key covers the source, so any build is current)."""
    return any(p.exists() for p in (*root.glob(f"*/{name}/{name}.so"), root / name / f"{name}.so"))


def _staged_source(root: Path) -> Path:
    """The kernel source, copied into the cache under a name of its content's hash; returns the copy's path.

    PyTorch's build command names the source file, so two copies of the package at two paths would otherwise rebuild
    each other's (identical) build. Written once, atomically; an existing copy is left as it is, so its time stamp
    (which ninja compares) never moves.
    """
    data = SOURCE.read_bytes()
    staged = root / "attnyolo_sources" / f"fused_attention_{hashlib.sha256(data).hexdigest()[:16]}.cpp"
    if not staged.is_file() or staged.read_bytes() != data:
        staged.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(staged, data)
    return staged


def _load() -> Any:
    """Compile (or load the cached build of) the kernels and return their ``torch.ops`` namespace.

    Tries :func:`_variants` in order, a variant already built first, and raises the first failure if none builds.
    """
    # cpp_extension logs a CUDA_HOME warning on import where no CUDA toolkit is installed, and a compiler-ABI banner
    # per attempt when the compiler is not g++; neither concerns these CPU kernels, and a failed build is reported
    # below in one line with its cause. Keep them off the user's console.
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        return _load_quietly()
    finally:
        cpp_logger.setLevel(level)


def _load_quietly() -> Any:
    """:func:`_load` with PyTorch's extension logger already turned down."""
    from torch.utils import cpp_extension  # heavy: the C++ build machinery, loaded only to build the kernels

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
    variants = _variants()
    variants.sort(key=lambda v: not _built(root, v[0]))  # stable: a cached build first, else the preferred order
    if not _built(root, variants[0][0]):
        LOGGER.info(f"attnyolo: compiling the fused CPU attention kernels into {root} (once per environment) ...")
    source = _staged_source(root)
    first_error = None
    for name, cflags, ldflags in variants:
        try:
            cpp_extension.load(
                name=name,
                sources=[str(source)],
                extra_cflags=cflags,
                extra_ldflags=ldflags,
                is_python_module=False,
                verbose=False,
            )
            return torch.ops.attnyolo_fused
        except Exception as e:  # the next variant may still build (no OpenMP); report the best one's failure
            first_error = first_error or e
    raise first_error


def _cause(error: Exception) -> str:
    """One line of a build failure: the compiler's own error line where there is one, else the message's first line.

    PyTorch's message for a failed build starts with the whole compile command; the line that says what went wrong
    ("fatal error: Python.h: No such file or directory", "c++: not found") comes later.
    """
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()] or [""]
    telling = [ln for ln in lines[1:] if "error" in ln.lower() or "not found" in ln.lower()]
    return (telling or lines)[0][:300]


def fused_ops() -> Any:
    """The kernels' ``torch.ops`` namespace, or None when they are switched off or cannot be built here.

    The first call builds or loads them (thread-safe; PyTorch's file lock covers concurrent processes). A failure is
    logged once, naming the cause and the fix, and is not retried in this process.
    """
    if _state["tried"]:
        return _state["ops"]
    with _lock:
        if _state["tried"]:
            return _state["ops"]
        if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
            _state["reason"] = f"switched off by {ENV_SWITCH}={os.environ[ENV_SWITCH]}"
        else:
            try:
                _state["ops"] = _load()
            except Exception as e:  # no compiler, no ninja, no Python headers, unsupported platform flags
                _state["reason"] = f"{type(e).__name__}: {_cause(e)}"
                LOGGER.warning(
                    f"attnyolo: the fused CPU attention kernels could not be built ({_state['reason']}). The layers "
                    "run their eager PyTorch path: same results, slower on CPU. Fix: install a C++ compiler (g++ or "
                    f"clang) and `pip install ninja`, or set {ENV_SWITCH}=0 to skip the build and this message. A "
                    "broken cached build can be deleted from TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions)."
                )
        _state["tried"] = True
    return _state["ops"]


def fused_unavailable_reason() -> str | None:
    """Why :func:`fused_ops` returned None (None while it has not been called or the kernels loaded)."""
    return _state["reason"]


def usable(x: torch.Tensor) -> bool:
    """Whether the kernels take ``x``: a float32 (N, C, H, W) CPU tensor, contiguous or channels-last contiguous.

    Channels-last matters as much as NCHW: Ultralytics' predictor and validator convert a PyTorch model to
    channels-last on x86 CPUs, so that is the memory order the layers see inside ``predict``/``val``.
    """
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))
        and x.numel() > 0
        and fused_ops() is not None
    )
