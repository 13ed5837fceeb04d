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
SUMMARY_SECONDS = 30.0  # a running/waiting/done line at least this often while runs train
KEYS = ("address", "cpus_per_run", "gpus_per_run", "max_retries")  # ablate's keys for this backend


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


def backend_options(backend: str, given: dict[str, Any]) -> dict[str, Any]:
    """The Ray keys of ``ablate`` (:data:`KEYS`) checked for ``backend``: values for ``backend=ray``, else ``{}``.

    For ``backend=ray`` Ray is imported here, so a missing Ray is one line before anything trains.

    Args:
        backend: The ``backend=`` value.
        given: The Ray keys as given (None where not given).

    Raises:
        ValueError: A Ray key with another backend, or a value out of range, naming the key and the fix.
        RayUnavailableError: ``backend=ray`` where Ray is not installed.
    """
    set_keys = {k: v for k, v in given.items() if v is not None}
    if backend != "ray":
        if set_keys:
            keys = ", ".join(f"{k}=" for k in set_keys)
            raise ValueError(f"{keys} applies to backend=ray only (backend={backend}). Fix: add backend=ray.")
        return {}
    import_ray()
    for key, low in (("cpus_per_run", 0.0), ("gpus_per_run", 0.0), ("max_retries", 0)):
        value = set_keys.get(key)
        if value is None:
            continue
        whole = key == "max_retries"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
            raise ValueError(f"{key}={value!r} is not a {'whole ' if whole else ''}number. Fix: e.g. {key}=1.")
        if value < low or (key == "cpus_per_run" and value == 0):
            raise ValueError(f"{key}={value} is out of range. Fix: {key}={'0 or more' if low == 0 else 'above 0'}.")
    if "address" in set_keys:
        set_keys["address"] = str(set_keys["address"])
    return set_keys


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


def start_ray(ray, address: str | None, log: Callable[[str], Any] = print) -> float:
    """Join the cluster at ``address``, or start a Ray on this machine; returns the seconds it took.

    Without ``address`` a new local Ray is started even when ``RAY_ADDRESS`` or a ``ray start`` on this machine
    exists (``address="local"``): the default never joins a cluster the user did not name. The runs' own output
    (Ultralytics' epoch lines) stays in Ray's worker logs and the dashboard, so the driver's console shows the
    progress lines; each run's ``results.csv`` is in its run directory as with the local backend.
    """
    t0 = time.monotonic()
    context = ray.init(
        address=address or "local",
        runtime_env=runtime_env(local=not address),
        log_to_driver=False,
        configure_logging=False,
    )
    seconds = time.monotonic() - t0
    where = f"joined the Ray cluster at {address}" if address else "started a local Ray"
    line = f"Ray: {where} in {seconds:.1f} s"
    if getattr(context, "dashboard_url", None):
        line += f"; dashboard http://{context.dashboard_url}"
    session = (getattr(context, "address_info", None) or {}).get("session_dir")
    if session:
        line += f"; the runs' logs: {Path(session) / 'logs'}" + (" on the head node" if address else "")
    log(line)
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


def call_run(run: Callable[[Any], dict], spec: Any) -> dict:
    """The Ray task: ``run(spec)`` in a worker process.

    A module-level function of this package, so the worker imports ``attnyolo`` (registering the layers) to find it,
    and ``run`` (often a ``functools.partial`` of the ablation's run function, which ``ray.remote`` does not take
    directly) travels as an argument.
    """
    return run(spec)


def default_gpus(ray) -> float:
    """``gpus_per_run`` when not given: one GPU per run where the cluster has GPUs, none otherwise."""
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def summary_line(ray, refs: dict, total: int, done: int) -> str:
    """``running R, waiting W, done D of N``: running from Ray's state API, else the tasks in flight are counted.

    The state API (``ray[default]``) reports task states about a second late, so a run that has just been given a
    worker may still count as waiting.
    """
    in_flight = len(refs)
    try:
        from ray.util.state import list_tasks  # part of ray[default]; fails without the dashboard

        ids = {ref.task_id().hex() for ref in refs}
        tasks = list_tasks(filters=[("state", "=", "RUNNING")], limit=10_000, raise_on_missing_output=False)
        running = len({t.task_id for t in tasks} & ids)
        return f"Ray: running {running}, waiting {in_flight - running}, done {done} of {total}"
    except Exception:  # the state API is a convenience: progress must not fail with it
        return f"Ray: in flight {in_flight} (running or waiting for resources), done {done} of {total}"


def attempts(ref) -> int | None:
    """How many times Ray ran the task of ``ref`` (2 and more: retried after its worker was lost); None if unknown."""
    try:
        from ray.util.state import list_tasks  # part of ray[default]; fails without the dashboard

        found = list_tasks(filters=[("task_id", "=", ref.task_id().hex())], raise_on_missing_output=False)
        return max(t.attempt_number for t in found) + 1 if found else None
    except Exception:  # a convenience for the progress line only
        return None


def finished_line(spec: dict[str, Any], record: dict[str, Any], tries: int | None) -> str:
    """The driver's line for one finished run: run, model, seed, metrics, wall time and any retries."""
    coco = record.get("coco", {})
    metrics = ", ".join(f"{k} {coco[k]:.4f}" for k in ("AP", "AP50") if coco.get(k) is not None)
    line = f"{spec['name']} ({spec['model']}, seed {spec['seed']}) finished on Ray: {metrics}"
    line += f"; {record.get('train_seconds', 0):.0f} s wall"
    if tries and tries > 1:
        line += f" in its last attempt (attempt {tries}: Ray retried it after its worker was lost; it resumed)"
    return line


def run_ray(
    specs: Sequence[dict[str, Any]],
    run: Callable[[dict[str, Any]], dict[str, Any]],
    on_finished: Callable[[dict[str, Any], dict[str, Any]], Any],
    log: Callable[[str], Any] = print,
    *,
    out_dir: str | Path,
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float = 1.0,
    max_retries: int = DEFAULT_RETRIES,
) -> None:
    """The Ray backend: every spec is one Ray task; each finished record goes to ``on_finished`` on this driver.

    Args:
        specs: The runs still to do (plain dicts with ``name``, ``model``, ``seed``).
        run: ``run(spec)`` trains or resumes one run into its own directory and returns its record (picklable:
            a module-level function, or a ``functools.partial`` of one).
        on_finished: Called here as ``on_finished(spec, record)`` as each run finishes; it writes the state file,
            so only this process ever writes it.
        log: Where progress lines go.
        out_dir: The ablation directory, checked for shared storage on every node first.
        address: A running Ray cluster to join (the address ``ray start --head`` printed); None starts a local Ray.
        gpus_per_run: GPUs each run asks for; None means 1 where the cluster has GPUs, else 0.
        cpus_per_run: CPUs each run asks for (Ray also sets the run's thread count to it).
        max_retries: How often Ray reruns a run whose worker died; the rerun resumes from the run's ``last.pt``.

    Raises:
        RayUnavailableError: Ray is not installed.
        SharedStorageError: A node cannot see ``out_dir``.
        RunsFailedError: Runs that failed (an error in training, or lost more than ``max_retries`` times), after every
            other run has finished and been recorded.
    """
    ray = import_ray()
    specs = list(specs)
    if not specs:
        return
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(ray, address, log)
    try:
        nodes = check_shared_storage(ray, out_dir)
        log(f"Ray: {len(nodes)} node(s) see {Path(out_dir).resolve()}")
        gpus = default_gpus(ray) if gpus_per_run is None else float(gpus_per_run)
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False)(
            call_run
        )
        refs = {task.options(name=spec["name"]).remote(run, spec): spec for spec in specs}
        log(f"Ray: {len(refs)} runs submitted, each asking for {cpus_per_run:g} CPU and {gpus:g} GPU")
        started, done, failed, last_summary = time.monotonic(), 0, [], time.monotonic()
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=SUMMARY_SECONDS)
            for ref in ready:
                spec = refs.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as e:  # an error in the run, or its worker lost too often
                    failed.append(f"{spec['name']} ({type(e).__name__}: {_first_line(e)})")
                    log(f"{spec['name']}: FAILED on Ray: {_first_line(e)}")
                    continue
                log(finished_line(spec, record, attempts(ref)))
                on_finished(spec, record)
                done += 1
            if ready or time.monotonic() - last_summary >= SUMMARY_SECONDS:
                elapsed = (time.monotonic() - started) / 60
                log(f"{summary_line(ray, refs, len(specs), done)}, {elapsed:.1f} min since submitting")
                last_summary = time.monotonic()
        if failed:
            raise RunsFailedError(
                f"{len(failed)} run(s) failed on Ray: {'; '.join(failed)}. The finished runs are recorded; fix the "
                "cause and run the same command again to continue."
            )
    finally:
        if started_here:
            ray.shutdown()
