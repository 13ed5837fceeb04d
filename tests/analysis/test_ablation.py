"""The ablation runner: a real two-model ablation through the tool, then resumption and recipe checks in-process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
import torch

from attnyolo.analysis import ablation
from attnyolo.analysis.ablation import STATE_FILE, load_state, run_ablation
from attnyolo.data.sample import make_sample_dataset
from attnyolo.errors import ModelConfigError

MODELS = "yolov8n.yaml,yolov8n-CoordAtt.yaml"
RECIPE = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sample_dataset(tmp_path_factory.mktemp("ablation-data"), n_train=8, n_val=4, imgsz=64, video=False)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory, tool):
    project = tmp_path_factory.mktemp("ablations")
    args = [f"models={MODELS}", f"data={data}", *(f"{k}={v}" for k, v in RECIPE.items())]
    args += [f"project={project}", "name=abl", "latency_repeats=2"]
    r = tool("ablate", *args)
    assert r.returncode == 0, r.stderr[-4000:]
    return project / "abl", args, r


@pytest.mark.slow
def test_ablation_tool_writes_table_figure_and_state(finished):
    out, _, r = finished
    assert "[1/2] yolov8n.yaml" in r.stdout and "[2/2] yolov8n-CoordAtt.yaml" in r.stdout  # progress across runs
    rows = [ln for ln in (out / "ablation.md").read_text().splitlines() if ln.startswith("|")]
    assert len({ln.count("|") for ln in rows}) == 1 and len(rows) == 4  # header, rule, two models
    assert rows[0].split("|")[2:9] == [" AP ", " AP50 ", " AP75 ", " APs ", " APm ", " APl ", " VOC07 mAP50 "]
    assert "(1.000×)" in rows[2] and rows[3].startswith("| yolov8n-CoordAtt.yaml |")
    assert "epochs=1" in (out / "ablation.md").read_text()  # the recipe is printed with the table
    with open(out / "ablation.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["kind"] for t in table] == ["baseline", "CoordAtt"]
    assert all(0.0 <= float(t["AP"]) <= 1.0 and float(t["params"]) > 1e6 and float(t["latency_ms"]) > 0 for t in table)
    image = cv2.imread(str(out / "ablation.png"))
    assert image is not None and image.shape[1] > image.shape[0]  # two panels: AP vs params, AP vs latency
    state = load_state(out)
    assert set(state["finished"]) == {"yolov8n", "yolov8n-CoordAtt"} and state["recipe"]["epochs"] == 1
    for run in state["finished"].values():
        metrics = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
        assert metrics["coco"]["AP"] == run["coco"]["AP"]  # the table holds the evaluator's numbers
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_rerun_skips_finished_runs(finished, tool):
    out, args, _ = finished
    before = (out / STATE_FILE).read_text()
    r = tool("ablate", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("finished earlier, skipped") == 2 and "Epoch" not in r.stdout
    assert (out / STATE_FILE).read_text() == before


@pytest.fixture(autouse=True)
def no_model_summary(request, monkeypatch):
    """Tests with a fake trainer have no real checkpoints to measure; the slow end-to-end tests measure real ones."""
    if "finished" not in request.fixturenames:
        monkeypatch.setattr(ablation, "model_summary", lambda path, imgsz: {"params": 1000, "gflops": 0.5})


def _fake_train(calls, fail_on=None):
    """Stand-in for attnyolo.engine.trainer.train: records the call and leaves a run directory with a best.pt."""

    def train(model=None, data=None, resume=False, project=None, name=None, **kw):
        calls.append({"model": model, "resume": resume, "name": name, **kw})
        if fail_on is not None and model == fail_on:
            raise KeyboardInterrupt  # the ablation is killed while training this model
        run_dir = Path(resume).parents[1] if resume else Path(project) / name
        (run_dir / "weights").mkdir(parents=True, exist_ok=True)
        (run_dir / "weights" / "best.pt").write_bytes(b"")
        ap = 0.5 if model and "CoordAtt" in model else 0.4
        metrics = {"coco": dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"), ap)}
        return {**metrics, "voc": {"mAP50_11point": ap, "mAP50_area": ap}}, run_dir, None

    return train


def test_killed_ablation_continues_with_unfinished_runs(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    models = ["yolov8n.yaml", "yolov8n-CoordAtt.yaml", "yolov8n-ECA.yaml"]
    calls = []
    monkeypatch.setattr(ablation, "train", _fake_train(calls, fail_on="yolov8n-CoordAtt.yaml"))
    with pytest.raises(KeyboardInterrupt):
        run_ablation(models, data=data, out_dir=out, latency_repeats=0, log=lambda s: None, **RECIPE)
    assert list(load_state(out)["finished"]) == ["yolov8n"]  # written before the kill, atomically

    calls.clear()
    monkeypatch.setattr(ablation, "train", _fake_train(calls))
    result = run_ablation(models, data=data, out_dir=out, latency_repeats=0, log=lambda s: None, **RECIPE)
    assert [c["model"] for c in calls] == ["yolov8n-CoordAtt.yaml", "yolov8n-ECA.yaml"]
    assert all(c["epochs"] == 1 and c["seed"] == 0 and c["imgsz"] == 64 for c in calls)  # one recipe for all
    assert [r["coco"]["AP"] for r in result["rows"]] == [0.4, 0.5, 0.4]
    assert Path(result["files"]["png"]).is_file()


def test_interrupted_training_resumes_from_its_last_checkpoint(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    weights = out / "runs" / "yolov8n" / "weights"
    weights.mkdir(parents=True)
    torch.save({"epoch": 3, "optimizer": {"state": {}}}, weights / "last.pt")  # what a killed Ultralytics run leaves
    calls = []
    monkeypatch.setattr(ablation, "train", _fake_train(calls))
    run_ablation(["yolov8n.yaml"], data=data, out_dir=out, latency_repeats=0, log=lambda s: None, **RECIPE)
    assert calls[0]["resume"] == str(weights / "last.pt")


def test_run_killed_after_training_is_scored_not_retrained(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    weights = out / "runs" / "yolov8n" / "weights"
    weights.mkdir(parents=True)
    torch.save({"epoch": -1, "optimizer": None}, weights / "last.pt")  # Ultralytics strips finished checkpoints
    (weights / "best.pt").write_bytes(b"")
    calls, scored = [], []
    monkeypatch.setattr(ablation, "train", _fake_train(calls))

    def validate(model, data, **kw):
        scored.append((model, kw))
        return {"coco": dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"), 0.3), "voc": {}}, None

    monkeypatch.setattr(ablation, "validate_model", validate)
    result = run_ablation(["yolov8n.yaml"], data=data, out_dir=out, latency_repeats=0, log=lambda s: None, **RECIPE)
    assert not calls and scored[0][0] == str(weights / "best.pt") and scored[0][1]["imgsz"] == 64
    assert result["rows"][0]["coco"]["AP"] == 0.3


def test_continuing_with_another_recipe_is_refused(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    monkeypatch.setattr(ablation, "train", _fake_train([]))
    run_ablation(["yolov8n.yaml"], data=data, out_dir=out, latency_repeats=0, log=lambda s: None, **RECIPE)
    with pytest.raises(ValueError, match=r"another recipe \(epochs: 1 -> 5\)"):
        run_ablation(["yolov8n.yaml"], data=data, out_dir=out, latency_repeats=0, **{**RECIPE, "epochs": 5})
    # settings left out are the ablation's own, and workers/device may change
    calls = []
    monkeypatch.setattr(ablation, "train", _fake_train(calls))
    run_ablation(["yolov8n-ECA.yaml"], data=data, out_dir=out, latency_repeats=0, log=lambda s: None, workers=1)
    assert calls[0]["epochs"] == 1 and calls[0]["imgsz"] == 64 and calls[0]["workers"] == 1


def test_duplicate_or_missing_models_are_refused(data, tmp_path):
    with pytest.raises(ValueError, match="names one run twice"):
        run_ablation(["yolov8n.yaml", "cfg/yolov8n.yaml"], data=data, out_dir=tmp_path)
    with pytest.raises(ValueError, match="models= is empty"):
        run_ablation([], data=data, out_dir=tmp_path)
    # A bad name anywhere in the list stops the ablation before the first model trains.
    with pytest.raises(FileNotFoundError, match="Did you mean yolov8n-CoordAtt.yaml"):
        run_ablation(["yolov8n.yaml", "yolov8n-Coordatt.yaml"], data=data, out_dir=tmp_path / "bad")
    assert not (tmp_path / "bad" / "runs").exists()
    bad_row = tmp_path / "bad-row.yaml"
    bad_row.write_text("nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, CoordAt, [16]]\nhead: []\n")
    with pytest.raises(ModelConfigError, match="unknown layer 'CoordAt'. Did you mean CoordAtt"):
        run_ablation(["yolov8n.yaml", str(bad_row)], data=data, out_dir=tmp_path / "bad-row")
    assert not (tmp_path / "bad-row" / "runs").exists()


def test_new_ablation_recipe_starts_from_the_sample_recipe_only_on_sample_data(tmp_path):
    from attnyolo.analysis.ablation import ABLATION_DEFAULTS, initial_recipe
    from attnyolo.engine.trainer import DEFAULT_RECIPE
    from attnyolo.utils.paths import sample_data_dir

    on_sample = initial_recipe(sample_data_dir() / "data.yaml", {"epochs": 2, "seed": 3})
    assert on_sample == {**DEFAULT_RECIPE, "seed": 3, "deterministic": True, "plots": False, "epochs": 2}
    elsewhere = initial_recipe(tmp_path / "voc.yaml", {"imgsz": 640})
    assert elsewhere == {**ABLATION_DEFAULTS, "imgsz": 640}
    assert "epochs" not in elsewhere and "lr0" not in elsewhere  # Ultralytics' defaults apply there


@pytest.mark.slow
def test_the_recipe_wins_and_each_models_own_defaults_are_recorded(tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)  # the sample dataset lives in data/sample under the working directory
    make_sample_dataset(tmp_path / "data" / "sample", n_train=8, n_val=4, imgsz=64, video=False)
    out = tmp_path / "abl"
    models = ["yolov5n-classic.yaml", "yolov8n.yaml"]
    run_ablation(models, out_dir=out, latency_repeats=0, log=lambda s: None, epochs=1, imgsz=64, batch=4, workers=0)
    state = load_state(out)
    for name, run in state["finished"].items():
        args = yaml.safe_load((Path(run["run_dir"]) / "args.yaml").read_text())
        # every recorded key is what the run trained with: epochs=1, not attnyolo train's 30 for classic models
        assert {k: args[k] for k in state["recipe"]} == state["recipe"], name
    # Keys the recipe leaves open: YOLOv5's hyp.scratch-low box gain (Ultralytics: 7.5) and, on the sample data, no
    # mosaic (Ultralytics: 1.0) for the classic model; its other hyp.scratch-low values equal Ultralytics' defaults.
    assert state["finished"]["yolov5n-classic"]["settings"] == {"box": 0.05, "mosaic": 0.0}
    assert state["finished"]["yolov8n"]["settings"] == {}
    assert "- yolov5n-classic.yaml: box=0.05, mosaic=0.0" in (out / "ablation.md").read_text()
