"""The ablation on a Ray cluster: one Ray task per run, Ray's retries for lost workers, one driver that records.

``attnyolo ablate ... backend=ray`` hands the runs that are not finished yet to :func:`run_on_ray`. Each run (model x
seed x placement) becomes one Ray task (``ray.remote`` with ``num_cpus``/``num_gpus``), so Ray's scheduler decides
where and how many run at once, and a task whose worker process dies (a node lost, a pre-empted VM, an OOM kill) is
run again by Ray itself, up to ``max_retries`` times. The function a task runs is the ablation's own run function: it
trains the run into its own directory, or continues it from that directory's ``last.pt`` (Ultralytics resume), so a
retry continues from the last finished epoch rather than from epoch 0. Tasks never write the ablation's state file:
the driver receives each finished run's record (``ray.wait``) and the ablation records it, atomically, before the
next one, so no run is counted twice and none is lost, whichever process dies.

Ray is an optional dependency (``pip install "attnyolo[ray]"``); this module imports it only inside
:func:`import_ray`, so the local backend, the fast tests and the README's commands never need it.

Reference: Ray Core's task API and fault tolerance, https://docs.ray.io/en/latest/ray-core/fault_tolerance/tasks.html;
node affinity, https://docs.ray.io/en/latest/ray-core/scheduling/index.html#nodeaffinityschedulingstrategy.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..integration import is_registered, register
from ..utils.atomic import write_text_atomic

INSTALL = 'pip install "attnyolo[ray]"'  # the extra of pyproject.toml; requirements-ray.txt installs the same range
DEFAULT_RETRIES = 3  # Ray's own default for tasks; a run lost more often than that is reported, not retried forever
MARKER_PREFIX = ".ray-storage-check-"
# Environment the workers of a Ray this driver starts should share with it: Ultralytics' offline and no-pip switches,
# and where compiled fused kernels are cached (one build per node, not per run or per worker process).
SHARED_ENV = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR", "TORCH_EXTENSIONS_DIR", "ATTNYOLO_FUSED_KERNELS")
SUMMARY_SECONDS = 60.0  # a running/waiting/done line at least this often while runs train


class RayUnavailableError(ValueError):
    """``backend=ray`` where Ray is not installed; the message names the install command."""


class SharedStorageError(ValueError):
    """A Ray node that cannot see the ablation directory; the message names the node, the path and the fix."""


class RunsFailedError(RuntimeError):
    """Runs that failed on Ray after their retries; the finished ones are recorded and the same command continues."""


def import_ray():
    """Ray, or :class:`RayUnavailableError` in one line naming the install command when it is not installed."""
    try:
        import ray  # optional dependency: only backend=ray needs it
    except ImportError as e:
        raise RayUnavailableError(
            f"backend=ray needs Ray, which is not installed here ({e.name or 'ray'} not found). Fix: {INSTALL}, "
            "or use backend=local."
        ) from None
    return ray


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook``: register the layers in every worker process before it runs a task.

    Ray runs the hook when a worker process starts, before it unpickles a task's function or arguments, so a model
    YAML with attention rows builds and a checkpoint that pickles them loads in the worker, whatever the task.
    """
    register()  # idempotent; importing this module (attnyolo) has already registered them


def worker_facts() -> dict[str, Any]:
    """What a worker process sees: host, pid, whether the layers are registered, and the kernel cache it uses."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "registered": is_registered(),
        "attnyolo": __version__,
        "torch_extensions_dir": os.environ.get("TORCH_EXTENSIONS_DIR"),
    }


def runtime_env(local: bool) -> dict[str, Any]:
    """The job's Ray ``runtime_env``: the setup hook everywhere; on a Ray this driver starts, its environment too.

    On a cluster joined with ``address=`` each node keeps the environment its ``ray start`` was given (its own kernel
    cache, default ``~/.cache/torch_extensions``: one build per node); a path of this machine may not exist there.
    """
    env: dict[str, Any] = {"worker_process_setup_hook": f"{__name__}.setup_worker"}
    if local:
        env["env_vars"] = {k: os.environ[k] for k in SHARED_ENV if k in os.environ}
    return env


def start_ray(ray, address: str | None, log: Callable[[str], None] = print) -> float:
    """Join the cluster at ``address``, or start a Ray on this machine; returns the seconds it took.

    Without ``address`` a new local Ray is started even when ``RAY_ADDRESS`` or a ``ray start`` on this machine
    exists (``address="local"``): the default never joins a cluster the user did not name.
    """
    t0 = time.monotonic()
    context = ray.init(
        address=address or "local",
        runtime_env=runtime_env(local=not address),
        log_to_driver=True,
        configure_logging=False,
    )
    seconds = time.monotonic() - t0
    where = f"joined the Ray cluster at {address}" if address else "started a local Ray"
    dashboard = getattr(context, "dashboard_url", None)
    log(f"{where} in {seconds:.1f} s" + (f"; dashboard: http://{dashboard}" if dashboard else ""))
    return seconds


def read_marker(path: str, token: str) -> dict[str, Any]:
    """Run on one node: whether ``path`` holds ``token`` as the driver wrote it, with the node's facts."""
    facts = worker_facts()
    try:
        seen = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        return {**facts, "ok": False, "why": f"{type(e).__name__}: {e.strerror or e}"}
    if seen != token:
        return {**facts, "ok": False, "why": "it holds another ablation's marker (a different directory at that path)"}
    return {**facts, "ok": True, "why": ""}


def check_shared_storage(ray, out_dir: str | Path, timeout: float = 300.0) -> list[dict[str, Any]]:
    """Check that every alive node of the cluster sees the ablation directory, before any run starts.

    The driver writes a marker file with a fresh random token into ``out_dir``; one task pinned to each alive node
    (``NodeAffinitySchedulingStrategy``, not soft) reads it back.

    Returns:
        One dict per node (``node``, ``host``, ``ok``, ...).

    Raises:
        SharedStorageError: A node could not read the marker, naming the node, the path and the fix.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # optional dependency

    out = Path(out_dir).resolve()
    token = uuid.uuid4().hex
    marker = out / f"{MARKER_PREFIX}{token[:8]}"
    write_text_atomic(marker, token + "\n")
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        task = ray.remote(read_marker)
        refs = {
            task.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(marker), token): n
            for n in nodes
        }
        seen = []
        for ref, node in refs.items():
            name = node.get("NodeManagerAddress") or node["NodeID"]
            try:
                found = ray.get(ref, timeout=timeout)
            except Exception as e:  # the task could not run there: attnyolo missing on that node, node lost, ...
                raise SharedStorageError(
                    f"Ray node {name} could not check the ablation directory {out} ({type(e).__name__}: "
                    f"{_first_line(e)}). Fix: install attnyolo with the same version on every node."
                ) from None
            seen.append({"node": name, **found})
            if not found["ok"]:
                raise SharedStorageError(
                    f"Ray node {name} ({found['host']}) cannot see the ablation directory {out}: reading {marker} "
                    f"there failed ({found['why']}). Fix: give project= a directory on storage every node mounts at "
                    "the same path (NFS, a cluster filesystem), or run without address= on one machine."
                )
        return seen
    finally:
        marker.unlink(missing_ok=True)


def _first_line(error: BaseException) -> str:
    """The first non-empty line of an error's text (Ray's errors carry the remote traceback after it)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(error).__name__


def default_gpus(ray) -> float:
    """``gpus_per_run`` when not given: one GPU per run where the cluster has GPUs, none otherwise."""
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def summary_line(ray, refs: dict, total: int, done: int) -> str:
    """``running R, waiting W, done D of N``; running comes from Ray's state API, else in-flight tasks are counted."""
    in_flight = len(refs)
    try:
        from ray.util.state import list_tasks  # part of ray[default]; absent or unreachable without the dashboard

        ids = {ref.task_id().hex() for ref in refs}
        running = sum(t.task_id in ids and t.state == "RUNNING" for t in list_tasks(limit=10_000, raise_on_missing_output=False))
        return f"running {running}, waiting {in_flight - running}, done {done} of {total}"
    except Exception:  # the state API is a convenience: progress must not fail with it
        return f"in flight {in_flight}, done {done} of {total}"


def run_on_ray(
    specs: Sequence[Any],
    run: Callable[[Any], dict],
    on_finished: Callable[[Any, dict], None],
    *,
    out_dir: str | Path,
    label: Callable[[Any], str] = str,
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float = 1.0,
    max_retries: int = DEFAULT_RETRIES,
    log: Callable[[str], None] = print,
) -> None:
    """Run ``run(spec)`` for every spec as a Ray task and hand each finished record to ``on_finished`` on the driver.

    Args:
        specs: The runs still to do (picklable).
        run: A module-level function that trains or resumes one run into its own directory and returns its record.
        on_finished: Called on the driver with ``(spec, record)`` as each run finishes (records the state file).
        out_dir: The ablation directory, checked for shared storage on every node first.
        label: A spec's name for the progress lines.
        address: A running Ray cluster to join (``ray start --head`` printed it); None starts a local Ray.
        gpus_per_run: GPUs each run asks for; None means 1 where the cluster has GPUs, else 0.
        cpus_per_run: CPUs each run asks for (Ray also sets the run's thread count to it).
        max_retries: How often Ray reruns a run whose worker died; the rerun resumes from the run's ``last.pt``.
        log: Where progress lines go.

    Raises:
        RayUnavailableError: Ray is not installed.
        SharedStorageError: A node cannot see ``out_dir``.
        RunsFailedError: Runs that failed (an error in training, or lost more than ``max_retries`` times), after every
            other run has finished and been recorded.
    """
    ray = import_ray()
    if not specs:
        return
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(ray, address, log)
    try:
        nodes = check_shared_storage(ray, out_dir)
        log(f"{len(nodes)} Ray node(s) see {Path(out_dir).resolve()}")
        gpus = default_gpus(ray) if gpus_per_run is None else float(gpus_per_run)
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False)(run)
        t0 = time.monotonic()
        refs = {task.options(name=label(spec)).remote(spec): (spec, time.monotonic()) for spec in specs}
        log(f"{len(refs)} runs submitted ({cpus_per_run:g} CPU, {gpus:g} GPU each; {max_retries} retries)")
        done, failed, last_summary = 0, [], time.monotonic()
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=SUMMARY_SECONDS)
            for ref in ready:
                spec, submitted = refs.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as e:  # an error in the run, or its worker lost too often
                    failed.append(f"{label(spec)} ({type(e).__name__}: {_first_line(e)})")
                    log(f"{label(spec)}: FAILED on Ray: {_first_line(e)}")
                    continue
                on_finished(spec, record)
                done += 1
                log(f"{label(spec)}: finished, {time.monotonic() - submitted:.0f} s since submitted")
            if ready or time.monotonic() - last_summary >= SUMMARY_SECONDS:
                log(summary_line(ray, refs, len(specs), done) + f", {(time.monotonic() - t0) / 60:.1f} min elapsed")
                last_summary = time.monotonic()
        if failed:
            raise RunsFailedError(
                f"{len(failed)} run(s) failed on Ray: {'; '.join(failed)}. The finished runs are recorded; fix the "
                "cause and run the same command again to continue."
            )
    finally:
        if started_here:
            ray.shutdown()
