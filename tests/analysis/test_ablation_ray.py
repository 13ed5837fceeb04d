"""The ablation on Ray: the same records as the local backend, lost workers retried and resumed, nodes checked.

The slow tests start a local Ray (the machine's CPUs, 2 here) and need the `ray` extra (CI installs it); the fast
ones need no Ray at all.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from attnyolo.analysis import ablation, ray_backend
from attnyolo.analysis.ablation_runs import train_run
from attnyolo.analysis.ablation_state import load_state
from attnyolo.data.sample import make_sample_dataset

MODELS = "yolov8n.yaml,yolov8n-CoordAtt.yaml"
RECIPE = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0}
LOSSES = ("train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "val/cls_loss", "val/dfl_loss")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sample_dataset(tmp_path_factory.mktemp("ray-data"), n_train=8, n_val=4, imgsz=64, video=False)


def _epochs(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------------- without Ray
def test_backend_ray_without_ray_is_one_line_naming_the_install(run_command, data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    r = run_command("ablate", f"models={MODELS}", f"data={data}", "backend=ray", f"project={tmp_path}", "epochs=1")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "attnyolo[ray]"' in lines[0] and "backend=ray" in lines[0], r.stderr
    assert not (tmp_path / "exp" / "runs").exists()  # refused before anything trained


def test_ray_keys_without_backend_ray_are_refused(run_command, data, tmp_path):
    r = run_command("ablate", f"models={MODELS}", f"data={data}", "address=10.0.0.1:6379", f"project={tmp_path}")
    assert r.returncode != 0 and "address=" in r.stderr and "backend=ray" in r.stderr


def test_the_worker_setup_hook_names_a_function_that_registers():
    env = ray_backend.runtime_env(local=True)
    module, _, name = env["worker_process_setup_hook"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is ray_backend.setup_worker  # the string Ray imports
    assert ray_backend.runtime_env(local=False).get("env_vars") is None  # a cluster's nodes keep their environment


def test_finished_line_names_run_model_seed_metrics_time_and_retries():
    spec = {"name": "yolov8n-seed1", "model": "yolov8n.yaml", "seed": 1}
    record = {"coco": {"AP": 0.25, "AP50": 0.5}, "train_seconds": 12.3}
    line = ray_backend.finished_line(spec, record, 1)
    assert line == "yolov8n-seed1 (yolov8n.yaml, seed 1) finished on Ray: AP 0.2500, AP50 0.5000; 12 s wall"
    assert "attempt 2" in ray_backend.finished_line(spec, record, 2)


# ---------------------------------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def local_and_ray(data, tmp_path_factory, tool):
    """The same 2 models x 2 seeds ablation with backend=local and backend=ray (2 runs at a time on 2 CPUs)."""
    pytest.importorskip("ray")
    project = tmp_path_factory.mktemp("ray-ablations")
    args = [f"models={MODELS}", f"data={data}", "seeds=2", *(f"{k}={v}" for k, v in RECIPE.items())]
    args += [f"project={project}", "latency_repeats=0", "bootstrap=0"]
    env = {"OMP_NUM_THREADS": "1"}  # Ray gives each run cpus_per_run=1 threads; the local runs get as many
    local = tool("ablate", *args, "name=local", env=env)
    assert local.returncode == 0, local.stderr[-3000:]
    on_ray = tool("ablate", *args, "name=ray", "backend=ray", "cpus_per_run=1", env=env)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:] + on_ray.stdout[-3000:]
    return project / "local", project / "ray", on_ray


@pytest.mark.slow
def test_ray_backend_records_the_same_runs_as_the_local_backend(local_and_ray):
    local_dir, ray_dir, r = local_and_ray
    local, on_ray = load_state(local_dir), load_state(ray_dir)
    names = {f"{m}-seed{s}" for m in ("yolov8n", "yolov8n-CoordAtt") for s in (0, 1)}
    assert set(local["finished"]) == set(on_ray["finished"]) == names
    for name in names:
        a, b = local["finished"][name], on_ray["finished"][name]
        assert a["coco"] == b["coco"] and a["voc"] == b["voc"], name  # deterministic training: the same scores
        # the per-epoch losses too (AP is near 0 after one epoch on 8 images; the losses are not)
        epochs_a, epochs_b = _epochs(local_dir / a["run_dir"]), _epochs(ray_dir / b["run_dir"])
        assert [[e[k] for k in LOSSES] for e in epochs_a] == [[e[k] for k in LOSSES] for e in epochs_b], name
        assert len(epochs_b) == RECIPE["epochs"]
    # the same report: the table rows are the same
    table = [ln for ln in (ray_dir / "ablation.md").read_text().splitlines() if ln.startswith("| yolov8n")]
    assert table and table == [ln for ln in (local_dir / "ablation.md").read_text().splitlines() if ln in table]
    # progress on the driver: one line per finished run with model, seed, metrics and wall time, and a summary
    finished = [ln for ln in r.stdout.splitlines() if "finished on Ray:" in ln]
    assert len(finished) == 4 and all(" AP " in ln and " s wall" in ln and ", seed " in ln for ln in finished)
    assert "done 4 of 4" in r.stdout and "Ray: started a local Ray" in r.stdout


def _ray_ablation(monkeypatch, train_run_with, data, out: Path, log, **recipe) -> None:
    """yolov8n x 2 seeds on a local Ray, 1 CPU a run, each run trained by ``train_run_with`` (wrapping train_run)."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    monkeypatch.setattr(ablation, "train_run", train_run_with)
    ablation.run_ablation(
        ["yolov8n.yaml"],
        data=data,
        out_dir=out,
        seeds=2,
        backend="ray",
        backend_options={"cpus_per_run": 1},  # 2 CPUs here (CI: at least 2), so Ray may run both at once
        latency_repeats=0,
        bootstrap=0,
        log=log,
        **{**RECIPE, **recipe},
    )


def train_run_meeting_a_partner(spec, *args, **kw):
    """``train_run``, after waiting (60 s at most) until a second run has started too; records when it trained.

    Runs of a few seconds each finish before a slow worker has even started, so their file times alone cannot show
    whether Ray ran two at once: this meeting point makes that deterministic. Run side by side, the two first runs
    find each other at once; run one after another, the first waits out the 60 s alone and trains by itself.
    """
    import time

    out = Path(kw["out_dir"])
    (out / f"started-{spec['name']}").write_text("")
    deadline = time.monotonic() + 60
    while len(list(out.glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    begin = time.time()
    record = train_run(spec, *args, **kw)
    (out / f"trained-{spec['name']}").write_text(f"{begin} {time.time()}")
    return record


@pytest.mark.slow
def test_ray_trains_two_runs_side_by_side(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    _ray_ablation(monkeypatch, train_run_meeting_a_partner, data, out, log=lambda line: None)
    (a_begin, a_end), (b_begin, b_end) = sorted(
        tuple(map(float, (out / f"trained-yolov8n-seed{s}").read_text().split())) for s in (0, 1)
    )
    assert b_begin < a_end, ((a_begin, a_end), (b_begin, b_end))  # the second began before the first ended
    assert set(load_state(out)["finished"]) == {"yolov8n-seed0", "yolov8n-seed1"}


def train_run_killed_once(spec, *args, **kw):
    """``train_run``, except that the worker running seed 1 dies (os._exit) after that run's first epoch, once."""
    from ultralytics.utils.callbacks import base

    marker = Path(kw["out_dir"]) / f"killed-{spec['name']}"
    if spec["seed"] == 1 and not marker.exists():

        def die(trainer):
            if not marker.exists():  # the pid, the epoch index, and results.csv as the first attempt left it
                marker.write_text(f"{os.getpid()} {trainer.epoch}\n" + Path(trainer.csv).read_text())
                os._exit(1)  # the whole worker process goes, as when its node is lost: no exception, no cleanup

        base.default_callbacks["on_fit_epoch_end"].append(die)  # copied into every trainer built after this
    return train_run(spec, *args, **kw)


@pytest.mark.slow
def test_a_lost_worker_is_retried_and_resumes_from_its_last_epoch(data, tmp_path, monkeypatch):
    out, lines = tmp_path / "abl", []
    _ray_ablation(monkeypatch, train_run_killed_once, data, out, log=lines.append, epochs=2)
    killed = (out / "killed-yolov8n-seed1").read_text().splitlines()
    assert killed[0].split()[1] == "0"  # the worker died after the first epoch (index 0)
    state = load_state(out)
    assert set(state["finished"]) == {"yolov8n-seed0", "yolov8n-seed1"}  # the table is complete
    run_dir = out / state["finished"]["yolov8n-seed1"]["run_dir"]
    csv_lines = (run_dir / "results.csv").read_text().splitlines()
    assert [e["epoch"] for e in _epochs(run_dir)] == ["1", "2"]  # each epoch once
    # resumed, not restarted from epoch 0: the first attempt's epoch-1 row (its own time and losses) is kept, and
    # Ultralytics recorded the resume in the run's arguments
    assert len(killed) == 3 and csv_lines[:2] == killed[1:]  # the header and epoch 1
    args = yaml.safe_load((run_dir / "args.yaml").read_text())
    assert Path(args["resume"]) == run_dir / "weights" / "last.pt"
    assert (
        json.loads((run_dir / "metrics.json").read_text())["coco"]["AP"]
        == state["finished"]["yolov8n-seed1"]["coco"]["AP"]
    )
    retried = [ln for ln in lines if ln.startswith("yolov8n-seed1 ") and "finished on Ray" in ln]
    assert len(retried) == 1 and "attempt 2" in retried[0]  # Ray ran it a second time
    assert not any("attempt" in ln for ln in lines if ln.startswith("yolov8n-seed0 "))
    assert (out / "ablation.md").is_file()


def probe_worker():
    """Run in a worker: whether attnyolo was imported and registered before anything of this task imported it."""
    import sys

    internals = sys.modules.get("attnyolo.integration.internals")
    return {
        "imported": "attnyolo" in sys.modules,
        "registered": bool(internals and internals.is_registered()),
        "torch_extensions_dir": os.environ.get("TORCH_EXTENSIONS_DIR"),
    }


@pytest.mark.slow
def test_workers_are_set_up_and_nodes_checked(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "kernels"))
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # pickled by value: unpickling imports nothing
    ray_backend.start_ray(ray, None, log=lambda s: None)
    try:
        facts = ray.get(ray.remote(probe_worker).remote())
        # the setup hook ran before the task: the layers are registered in a worker whose task never imported them
        assert facts == {"imported": True, "registered": True, "torch_extensions_dir": str(tmp_path / "kernels")}

        nodes = ray_backend.check_shared_storage(ray, tmp_path)
        assert len(nodes) == 1 and nodes[0]["ok"] and not list(tmp_path.glob(".ray-storage-check-*"))

        # a node that does not see the directory: the marker the driver writes never reaches it
        monkeypatch.setattr(ray_backend, "write_text_atomic", lambda path, text: None)
        with pytest.raises(ray_backend.SharedStorageError) as e:
            ray_backend.check_shared_storage(ray, tmp_path)
        message = str(e.value)
        assert "\n" not in message and nodes[0]["node"] in message and str(tmp_path.resolve()) in message
        assert "FileNotFoundError" in message and "project=" in message
    finally:
        ray.shutdown()
