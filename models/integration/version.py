"""Which Ultralytics releases the seam is proven on, and a behavioural self-check for the others.

CI runs the whole test suite on the newest release of :data:`TESTED_RANGE` and the fast tier on the oldest
(``.ci/run``). Ultralytics releases every few days, and its internals change, so outside that range
``import attnyolo`` does not refuse: it warns once and runs :func:`self_check`, which runs every check of
:data:`attnyolo.integration.plugins.SELF_CHECKS` (the seam's, :mod:`.self_checks`, and the families': tiny models
through every patched path, the layouts of the data structures read, compared with what they must be). Only a
failing check refuses, with a message naming the Ultralytics internal that changed. A pass is recorded in the user
cache (:func:`attnyolo.utils.paths.cache_dir`), keyed by the Ultralytics, AttnYOLO and torch versions, so later
processes (every command, every DDP worker) warn without paying the check's seconds again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import ultralytics

from ..errors import UnsupportedUltralyticsError
from ..utils.atomic import write_text_atomic
from ..utils.paths import cache_dir, package_version
from . import self_checks  # noqa: F401  (registers the seam's self-checks)
from .plugins import SELF_CHECKS
from .self_checks import _LAYERS_CFG  # noqa: F401  (the tiny layer config, for tests)

LOGGER = logging.getLogger("attnyolo")

# The Ultralytics releases CI tests (.ci/run installs both ends); pyproject.toml admits exactly this range.
TESTED_RANGE = ("8.4.180", "8.4.190")

_state = {"checked": None}  # the version a self-check already passed for, so it runs once per process


def version_tuple(version: str) -> tuple[int, ...]:
    """Turn '8.4.190' (or '8.4.190.dev0') into (8, 4, 190) for ordering."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def installed_version() -> str:
    """The installed Ultralytics version string."""
    return ultralytics.__version__


def in_tested_range(version: str) -> bool:
    """Whether ``version`` lies inside :data:`TESTED_RANGE` (both ends included)."""
    low, high = TESTED_RANGE
    return version_tuple(low) <= version_tuple(version) <= version_tuple(high)


def self_check() -> None:
    """Run every check of :data:`SELF_CHECKS`; raise naming the first Ultralytics internal that behaves differently.

    Raises:
        UnsupportedUltralyticsError: Naming the check, the internal, what was seen, and the fix.
    """
    for name, (internal, check) in SELF_CHECKS.items():
        try:
            check()
        except Exception as error:
            raise UnsupportedUltralyticsError(
                f"ultralytics {installed_version()} changed {internal}: the '{name}' self-check failed "
                f"({first_line(error)}). "
                f"attnyolo is tested with ultralytics {TESTED_RANGE[0]} to {TESTED_RANGE[1]}. Fix: "
                f"pip install 'ultralytics>={TESTED_RANGE[0]},<={TESTED_RANGE[1]}'."
            ) from error


def first_line(error: BaseException) -> str:
    """The first non-blank line of ``error``'s message, whitespace collapsed, marked when more lines were cut.

    The refusal is printed as one line (``attnyolo._refusal_as_one_line``, and the last line of a traceback under
    ``ATTNYOLO_DEBUG``), but a torch error can span many lines (torch 2.11's argument-mismatch message lists every
    overload); the whole text stays on the exception chain (``raise ... from error``), shown under ``ATTNYOLO_DEBUG``.
    """
    lines = [" ".join(line.split()) for line in str(error).splitlines()]
    lines = [line for line in lines if line] or [type(error).__name__]
    more = len(lines) - 1
    return lines[0] + (f" [{more} more line{'s' * (more > 1)}: ATTNYOLO_DEBUG=1 shows them]" if more else "")


def pass_record(version: str) -> Path:
    """The file that records a passed self-check for ``version`` with this AttnYOLO and torch."""
    attnyolo = package_version()
    return cache_dir() / f"self-check-passed_ultralytics-{version}_attnyolo-{attnyolo}_torch-{torch.__version__}"


def _record_pass(version: str) -> None:
    """Write :func:`pass_record` (best effort: an unwritable cache only means the check runs again next time)."""
    record = pass_record(version)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, f"self-check passed {time.strftime('%Y-%m-%d %H:%M:%S')}\n", durable=False)
    except OSError as error:
        LOGGER.debug(f"attnyolo: could not record the self-check pass at {record}: {error}")


def check_installed() -> str:
    """Inside the tested range: nothing to do. Outside it: warn once and run :func:`self_check` (once per machine).

    Returns:
        The installed version.

    Raises:
        UnsupportedUltralyticsError: The self-check failed.
    """
    version = installed_version()
    if in_tested_range(version) or _state["checked"] == version:
        return version
    record = pass_record(version)
    if record.is_file():
        _state["checked"] = version
        LOGGER.warning(
            f"attnyolo: ultralytics {version} is outside the tested range {TESTED_RANGE[0]} to {TESTED_RANGE[1]}; "
            f"its integration self-check passed earlier on this machine ({record}; delete it to run the check again)."
        )
        return version
    LOGGER.warning(
        f"attnyolo: ultralytics {version} is outside the tested range {TESTED_RANGE[0]} to {TESTED_RANGE[1]}; "
        "running a self-check of the integration (tiny models through every patched path)."
    )
    self_check()
    _state["checked"] = version
    _record_pass(version)
    LOGGER.warning(f"attnyolo: self-check passed on ultralytics {version}.")
    return version
