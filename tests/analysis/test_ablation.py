"""The ablation: seeds, reuse of finished runs, resumption, placements per family, the report files.

Fast tests run the driver with a stand-in trainer (each "run" leaves a run directory and fixed metrics); the slow ones
train real tiny models through the tool: a finished ablation, a rerun that trains nothing, and an ablation killed in
the middle of a run whose rerun gives the same tables as the uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy import stats

from attnyolo.analysis import ablation_report, ablation_runs, ablation_state
from attnyolo.analysis.ablation import initial_recipe, model_entries, run_ablation
from attnyolo.analysis.ablation_runs import expand_grid, parse_seeds
from attnyolo.analysis.ablation_state import STATE_FILE, load_state
from attnyolo.analysis.placements import check_placements, placement_models, placement_yaml
from attnyolo.analysis.summary import attention_placements
from attnyolo.data.sample import make_sample_dataset
from attnyolo.errors import ModelConfigError

MODELS = "yolov8n.yaml,yolov8n-CoordAtt.yaml"
RECIPE = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0}
TOOLS = Path(__file__).resolve().parents[2] / "tools"


def quiet(_):
    """A log that drops progress lines."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sample_dataset(tmp_path_factory.mktemp("ablation-data"), n_train=8, n_val=4, imgsz=64, video=False)


# --- seeds and the grid -------------------------------------------------------------------------------------------


def test_seeds_are_a_count_or_a_list():
    assert parse_seeds(3) == [0, 1, 2]  # seeds=3: a count
    assert parse_seeds(1) == [0]
    assert parse_seeds((0, 1, 2)) == [0, 1, 2]  # seeds=0,1,2 as the command line converts it
    assert parse_seeds("4,7") == [4, 7] and parse_seeds([5]) == [5]
    assert parse_seeds(None) == [0]
    for bad, match in [
        (0, "count must be 1 or more"),
        ("1,x", "'x' is not a seed"),
        ("1,1", "appears twice"),
        ((1, -2), "'-2' is not a seed"),
        (True, "not a seed count"),
        ("", "names no seed"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_seeds(bad)


def test_grid_runs_every_model_at_each_seed_before_the_next_seed():
    entries = [{"label": "yolov8n", "model": "yolov8n.yaml"}, {"label": "yolov8n-SE", "model": "yolov8n-SE.yaml"}]
    specs = expand_grid(entries, [0, 1], {"epochs": 2})
    assert [s.name for s in specs] == ["yolov8n-seed0", "yolov8n-SE-seed0", "yolov8n-seed1", "yolov8n-SE-seed1"]
    assert [s.kind for s in specs] == ["baseline", "SE", "baseline", "SE"]
    assert specs[3].overrides == {"epochs": 2, "seed": 1} and specs[3].to_dict()["seed"] == 1
    with pytest.raises(ValueError, match="names the run yolov8n twice"):
        expand_grid([*entries, {"label": "yolov8n", "model": "cfg/yolov8n.yaml"}], [0], {})


def test_a_new_recipe_starts_from_the_sample_recipe_only_on_sample_data(tmp_path):
    from attnyolo.engine.trainer import DEFAULT_RECIPE
    from attnyolo.utils.paths import sample_data_dir

    on_sample = initial_recipe(sample_data_dir() / "data.yaml", {"epochs": 2, "seed": 3})
    assert on_sample == {**DEFAULT_RECIPE, "deterministic": True, "plots": False, "epochs": 2}  # no seed: per run
    elsewhere = initial_recipe(tmp_path / "voc.yaml", {"imgsz": 640})
    assert elsewhere == {"deterministic": True, "plots": False, "imgsz": 640}


# --- the driver with a stand-in trainer ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_model_summary(request, monkeypatch):
    """Stand-in runs leave no real checkpoint to measure; the slow end-to-end tests measure real ones."""
    if "slow" not in request.keywords:
        monkeypatch.setattr(ablation_report, "model_summary", lambda path, imgsz: {"params": 1000, "gflops": 0.5})


AP = {"yolov8n": [0.40, 0.42, 0.38], "yolov8n-CoordAtt": [0.45, 0.46, 0.44], "yolov8n-ECA": [0.41, 0.40, 0.42]}


def _fake_train(calls, fail_on=None):
    """Stand-in for attnyolo.engine.trainer.train: records the call, leaves a run directory, returns fixed metrics."""

    def train(model=None, data=None, resume=False, project=None, name=None, **kw):
        calls.append({"model": model, "resume": resume, "name": name, **kw})
        if fail_on is not None and name == fail_on:
            raise KeyboardInterrupt  # the ablation is killed while training this run
        run_dir = Path(resume).parents[1] if resume else Path(project) / name
        (run_dir / "weights").mkdir(parents=True, exist_ok=True)
        (run_dir / "weights" / "best.pt").write_bytes(b"")
        label, seed = run_dir.name.rsplit("-seed", 1)
        ap = dict(enumerate(AP.get(label, []))).get(int(seed), 0.3)
        metrics = {"coco": dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"), ap)}
        return {**metrics, "voc": {"mAP50_11point": ap, "mAP50_area": ap}}, run_dir, None

    return train


def _run(models, data, out, **kw):
    kw = {"latency_repeats": 0, "bootstrap": 0, "log": quiet, **RECIPE, **kw}
    return run_ablation(models, data=data, out_dir=out, **kw)


def test_adding_seeds_and_models_retrains_nothing(data, tmp_path, monkeypatch):
    out, calls = tmp_path / "abl", []
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    _run(["yolov8n.yaml", "yolov8n-CoordAtt.yaml"], data, out, seeds=2)
    assert [c["name"] for c in calls] == [
        "yolov8n-seed0",
        "yolov8n-CoordAtt-seed0",
        "yolov8n-seed1",
        "yolov8n-CoordAtt-seed1",
    ]
    assert [c["seed"] for c in calls] == [0, 0, 1, 1] and all(c["epochs"] == 1 and c["imgsz"] == 64 for c in calls)
    first = load_state(out)["finished"]

    calls.clear()
    result = _run(["yolov8n.yaml", "yolov8n-CoordAtt.yaml", "yolov8n-ECA.yaml"], data, out, seeds=3)
    # only the new runs: the third seed of the first two models and every seed of the new model
    assert [c["name"] for c in calls] == [
        "yolov8n-ECA-seed0",
        "yolov8n-ECA-seed1",
        "yolov8n-seed2",
        "yolov8n-CoordAtt-seed2",
        "yolov8n-ECA-seed2",
    ]
    state = load_state(out)
    assert all(state["finished"][name] == record for name, record in first.items())  # reused as they were
    assert [m["label"] for m in result["models"]] == ["yolov8n", "yolov8n-CoordAtt", "yolov8n-ECA"]

    calls.clear()
    again = _run(["yolov8n.yaml", "yolov8n-CoordAtt.yaml", "yolov8n-ECA.yaml"], data, out, seeds=3)
    assert not calls and Path(again["files"]["md"]).read_text() == Path(result["files"]["md"]).read_text()


def test_report_statistics_match_scipy_and_the_files_parse(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    monkeypatch.setattr(ablation_runs, "train", _fake_train([]))
    result = _run(["yolov8n.yaml", "yolov8n-CoordAtt.yaml", "yolov8n-ECA.yaml"], data, out, seeds=3)
    assert result["baseline"] == "yolov8n"  # the one model without attention
    ca = next(m for m in result["models"] if m["label"] == "yolov8n-CoordAtt")
    values = np.array(AP["yolov8n-CoordAtt"])
    s = ca["metrics"]["AP"]
    assert s["n"] == 3 and s["mean"] == pytest.approx(values.mean()) and s["sd"] == pytest.approx(values.std(ddof=1))
    low, high = stats.t.interval(0.95, 2, loc=values.mean(), scale=values.std(ddof=1) / np.sqrt(3))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((low, high))
    diffs = values - np.array(AP["yolov8n"])  # per seed: +0.05, +0.04, +0.06
    paired = ca["vs_baseline"]["paired"]["AP"]
    assert paired["diffs"] == pytest.approx(list(diffs)) and paired["p"] == pytest.approx(
        stats.ttest_rel(values, AP["yolov8n"]).pvalue
    )
    assert paired["verdict"] == "better"  # every seed gains 4-6 points with a spread of 1
    eca = next(m for m in result["models"] if m["label"] == "yolov8n-ECA")
    assert eca["vs_baseline"]["paired"]["AP"]["verdict"] == "no difference detected (CI contains 0)"

    md = (out / "ablation.md").read_text()
    assert "| yolov8n-CoordAtt | - | 3 | 45.0 ± 1.0 |" in md
    assert "| yolov8n-CoordAtt | 3 | +5.0, +4.0, +6.0 | +5.0 |" in md and "| better |" in md
    assert all(note in md for note in result["notes"].values())  # a line per interval saying what it covers
    with open(out / "ablation.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and {r["seed"] for r in rows} == {"0", "1", "2"}  # one row per run
    first = rows[0]
    assert first["name"] == "yolov8n-seed0" and float(first["AP"]) == 0.40 and float(first["VOC07_mAP50"]) == 0.40
    assert first["epochs"] == "1" and first["imgsz"] == "64" and first["deterministic"] == "True"  # every setting
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and len(saved["runs"]) == 9 and saved["baseline"] == "yolov8n"
    image = cv2.imread(str(out / "ablation.png"))
    assert image is not None and image.shape[1] > 0


def _coco_files(run_dir: Path, good: bool) -> None:
    """A 4-image COCO ground truth and a model's detections: all boxes right (``good``) or half of them wrong."""
    boxes = [[10, 10, 20, 20], [30, 30, 25, 15]]
    images = [{"id": i, "width": 64, "height": 64, "file_name": f"{i}.jpg"} for i in range(1, 5)]
    anns = [
        {"id": 10 * i + k, "image_id": i, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for i in range(1, 5)
        for k, b in enumerate(boxes)
    ]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    dets = [
        {"image_id": i, "category_id": 1, "bbox": b if good or k == 0 else [0, 40, 8, 8], "score": 0.9 - 0.1 * k}
        for i in range(1, 5)
        for k, b in enumerate(boxes)
    ]
    (run_dir / "ground_truth.json").write_text(json.dumps(gt))
    (run_dir / "predictions.json").write_text(json.dumps(dets))
    metrics = {"ground_truth": {"coco": "built", "coco_file": str(run_dir / "ground_truth.json")}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_each_run_keeps_what_the_bootstrap_needs_and_the_report_bootstraps(data, tmp_path, monkeypatch):
    out, calls = tmp_path / "abl", []
    fake = _fake_train(calls)

    def train(**kw):
        metrics, run_dir, t = fake(**kw)
        _coco_files(run_dir, good="CoordAtt" in run_dir.name)
        return metrics, run_dir, t

    monkeypatch.setattr(ablation_runs, "train", train)
    result = _run(["yolov8n.yaml", "yolov8n-CoordAtt.yaml"], data, out, seeds=1, bootstrap=200)
    record = load_state(out)["finished"]["yolov8n-CoordAtt-seed0"]
    assert record["predictions"] == "runs/yolov8n-CoordAtt-seed0/predictions.json"  # relative: the folder can move
    assert (out / record["ground_truth"]).is_file()
    boot = result["models"][1]["vs_baseline"]["bootstrap"]
    assert [b["seed"] for b in boot] == [0] and boot[0]["resamples"] == 200
    ap = boot[0]["metrics"]["AP"]
    assert ap["a"] == pytest.approx(1.0) and ap["diff"] == pytest.approx(ap["a"] - ap["b"]) and ap["diff"] > 0
    assert ap["verdict"] == "better"  # better on every image, so on every resample
    assert "| yolov8n-CoordAtt | 0 | 100.0 |" in (out / "ablation.md").read_text()


def test_killed_ablation_continues_with_unfinished_runs(data, tmp_path, monkeypatch):
    out, calls = tmp_path / "abl", []
    models = ["yolov8n.yaml", "yolov8n-CoordAtt.yaml", "yolov8n-ECA.yaml"]
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls, fail_on="yolov8n-CoordAtt-seed0"))
    with pytest.raises(KeyboardInterrupt):
        _run(models, data, out)
    assert list(load_state(out)["finished"]) == ["yolov8n-seed0"]  # written before the kill, atomically

    calls.clear()
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    result = _run(models, data, out)
    assert [c["name"] for c in calls] == ["yolov8n-CoordAtt-seed0", "yolov8n-ECA-seed0"]
    assert [m["metrics"]["AP"]["mean"] for m in result["models"]] == [0.4, 0.45, 0.41]
    assert not list(out.glob(".*.tmp"))


def test_interrupted_training_resumes_from_its_last_checkpoint(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    weights = out / "runs" / "yolov8n-seed0" / "weights"
    weights.mkdir(parents=True)
    torch.save({"epoch": 3, "optimizer": {"state": {}}}, weights / "last.pt")  # what a killed Ultralytics run leaves
    calls = []
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    _run(["yolov8n.yaml"], data, out)
    assert calls[0]["resume"] == str(weights / "last.pt")


def test_run_killed_after_training_is_scored_not_retrained(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    weights = out / "runs" / "yolov8n-seed0" / "weights"
    weights.mkdir(parents=True)
    torch.save({"epoch": -1, "optimizer": None}, weights / "last.pt")  # Ultralytics strips finished checkpoints
    (weights / "best.pt").write_bytes(b"")
    calls, scored = [], []
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))

    def validate(model, data, **kw):
        scored.append((model, kw))
        return {"coco": dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"), 0.3), "voc": {}}, None

    monkeypatch.setattr(ablation_runs, "validate_model", validate)
    result = _run(["yolov8n.yaml"], data, out)
    assert not calls and scored[0][0] == str(weights / "best.pt") and scored[0][1]["imgsz"] == 64
    assert result["models"][0]["metrics"]["AP"]["mean"] == 0.3


def test_continuing_with_another_recipe_is_refused(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    monkeypatch.setattr(ablation_runs, "train", _fake_train([]))
    _run(["yolov8n.yaml"], data, out)
    with pytest.raises(ValueError, match=r"another recipe \(epochs: 1 -> 5\)"):
        _run(["yolov8n.yaml"], data, out, epochs=5)
    # settings left out are the ablation's own, and workers/device may change; another seed is not another recipe
    calls = []
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    run_ablation(
        ["yolov8n-ECA.yaml"], data=data, out_dir=out, latency_repeats=0, bootstrap=0, log=quiet, workers=1, seeds="4"
    )
    assert calls[0]["epochs"] == 1 and calls[0]["imgsz"] == 64 and calls[0]["workers"] == 1 and calls[0]["seed"] == 4
    calls.clear()
    run_ablation(["yolov8n.yaml"], data=data, out_dir=out, latency_repeats=0, bootstrap=0, log=quiet, seed=3)
    assert [c["name"] for c in calls] == ["yolov8n-seed3"]  # seed=3 is seed 3 alone, not a count
    with pytest.raises(ValueError, match="seed=1 and seeds=2 both given"):
        _run(["yolov8n.yaml"], data, out, seed=1, seeds=2)


def test_a_version_1_state_is_read_as_its_one_seed(data, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    run_dir = out / "runs" / "yolov8n"
    (run_dir / "weights").mkdir(parents=True)
    coco = dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"), 0.25)
    old = {
        "data": str(data),
        "recipe": {**initial_recipe(data, RECIPE), "seed": 0},
        "finished": {
            "yolov8n": {
                "model": "yolov8n.yaml",
                "run_dir": str(run_dir),
                "checkpoint": str(run_dir / "weights" / "best.pt"),
                "coco": coco,
                "voc": {"mAP50_11point": 0.2, "mAP50_area": 0.2},
                "train_seconds": 1.0,
                "settings": {},
            }
        },
    }
    (out / STATE_FILE).write_text(json.dumps(old))
    calls = []
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    result = _run(["yolov8n.yaml"], data, out)
    assert not calls and result["models"][0]["metrics"]["AP"]["mean"] == 0.25
    assert load_state(out)["finished"]["yolov8n-seed0"]["run_dir"] == "runs/yolov8n"


def test_duplicate_or_missing_models_are_refused(data, tmp_path):
    with pytest.raises(ValueError, match="names the run yolov8n twice"):
        _run(["yolov8n.yaml", "cfg/yolov8n.yaml"], data, tmp_path)
    with pytest.raises(ValueError, match="models= is empty"):
        _run([], data, tmp_path)
    # A bad name anywhere in the list stops the ablation before the first model trains.
    with pytest.raises(FileNotFoundError, match="Did you mean yolov8n-CoordAtt.yaml"):
        _run(["yolov8n.yaml", "yolov8n-Coordatt.yaml"], data, tmp_path / "bad")
    assert not (tmp_path / "bad" / "runs").exists()
    bad_row = tmp_path / "bad-row.yaml"
    bad_row.write_text("nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, CoordAt, [16]]\nhead: []\n")
    with pytest.raises(ModelConfigError, match="unknown layer 'CoordAt'. Did you mean CoordAtt"):
        _run(["yolov8n.yaml", str(bad_row)], data, tmp_path / "bad-row")
    assert not (tmp_path / "bad-row" / "runs").exists()


# --- placements -----------------------------------------------------------------------------------------------------

# Per family at scale n, by hand from the base YAMLs: rows of the inserted layers and the channels entering them.
# backbone: after the last P3/P4/P5 backbone block (before SPPF/SPP/C2PSA); neck: after the rows Detect reads.
# Channels: the row's unscaled count x width (0.25 at n): 256 -> 64, 512 -> 128, 1024 -> 256; YOLO11's P3 stage is
# C3k2 [512] (-> 128).
PLACED = {
    "yolov8n.yaml": {"backbone": [(5, 64), (8, 128), (11, 256)], "neck": [(16, 64), (20, 128), (24, 256)]},
    "yolov5n.yaml": {"backbone": [(5, 64), (8, 128), (11, 256)], "neck": [(18, 64), (22, 128), (26, 256)]},
    "yolo11n.yaml": {"backbone": [(5, 128), (8, 128), (11, 256)], "neck": [(17, 64), (21, 128), (25, 256)]},
    "yolov5n-classic.yaml": {"backbone": [(5, 64), (8, 128), (11, 256)], "neck": [(18, 64), (22, 128), (26, 256)]},
    "yolox-nano.yaml": {"backbone": [(5, 64), (8, 128), (12, 256)], "neck": [(18, 64), (22, 128), (26, 256)]},
}
# "all": the backbone rows stay, the neck rows move down by the three backbone layers.
for _rows in PLACED.values():
    _rows["all"] = _rows["backbone"] + [(r + 3, c) for r, c in _rows["neck"]]


def _build(tmp_path, base, kind, placement):
    from ultralytics.nn.tasks import DetectionModel

    name, text, inserted = placement_yaml(base, kind, placement)
    path = tmp_path / name
    path.write_text(text)
    return DetectionModel(str(path), verbose=False), inserted, text


@pytest.mark.parametrize("base", list(PLACED))
def test_placements_put_the_layers_on_the_rows_and_channels_they_define(base, tmp_path):
    for placement, expected in PLACED[base].items():
        model, inserted, text = _build(tmp_path, base, "ELA-S", placement)
        found = [(a["row"], a["channels"]) for a in attention_placements(model)]
        assert found == expected, (base, placement)
        assert inserted == [r for r, _ in expected] and "attention: ELA-S" in text
        assert {a["layer"] for a in attention_placements(model)} == {"ELA S"}  # ELA, variant S
        levels = [a["level"] for a in attention_placements(model)]
        assert levels == ["P3", "P4", "P5"] * (2 if placement == "all" else 1)
        head = model.model[-1].f
        stock = [r - k - 1 for k, (r, _) in enumerate(PLACED[base]["neck"])]  # the rows the base's head reads
        if placement == "backbone":
            assert head == [r + 3 for r in stock]  # the same rows, three rows further down
        else:
            assert head == [r for r, _ in expected[-3:]]  # the head reads the neck layers' outputs


@pytest.mark.parametrize("base", ["yolov8n.yaml", "yolov5n.yaml", "yolo11n.yaml", "yolov5n-classic.yaml"])
def test_backbone_placement_is_the_shipped_attention_model(base, tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    generated, _, _ = _build(tmp_path, base, "CoordAtt", "backbone")
    shipped = DetectionModel(base.replace(".yaml", "-CoordAtt.yaml"), verbose=False)
    assert [type(m).__name__ for m in generated.model] == [type(m).__name__ for m in shipped.model]
    assert [m.f for m in generated.model] == [m.f for m in shipped.model]
    a, b = generated.state_dict(), shipped.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)


def test_yolox_backbone_placement_is_the_ela_authors_backbone_rows(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    generated, _, _ = _build(tmp_path, "yolox-nano.yaml", "CoordAtt", "backbone")
    shipped = DetectionModel("yolox-nano-CoordAtt.yaml", verbose=False)  # the authors' 3 backbone + 4 neck positions
    ours = [(a["row"], a["channels"]) for a in attention_placements(generated)]
    theirs = [(a["row"], a["channels"]) for a in attention_placements(shipped)]
    assert ours == theirs[:3]


def test_placement_names_and_bases_are_checked(tmp_path):
    assert check_placements("backbone,neck") == ["backbone", "neck"] and check_placements(("all",)) == ["all"]
    with pytest.raises(ValueError, match="'head' is not a placement. Fix: use one or more of backbone, neck, all"):
        check_placements("backbone,head")
    with pytest.raises(ValueError, match="names a placement twice"):
        check_placements("neck,neck")
    with pytest.raises(ModelConfigError, match="already has attention rows"):
        placement_yaml("yolov8n-CoordAtt.yaml", "ELA-S", "neck")
    with pytest.raises(ValueError, match="unknown attention kind"):
        placement_yaml("yolov8n.yaml", "CoordAttt", "neck")
    entries = placement_models("yolov8n.yaml", ["CoordAtt", "ELA-S"], ["neck", "all"])
    assert [e["label"] for e in entries] == [
        "yolov8n",
        "yolov8n-neck-CoordAtt",
        "yolov8n-all-CoordAtt",
        "yolov8n-neck-ELA-S",
        "yolov8n-all-ELA-S",
    ]
    assert [e["label"] for e in model_entries(["yolov8n.yaml"], "yolov8n.yaml", ["SE"], ["neck"])] == [
        "yolov8n",
        "yolov8n-neck-SE",
    ]
    with pytest.raises(ValueError, match="placements= needs base="):
        model_entries([], None, ["SE"], ["neck"])


def test_each_generated_yaml_is_saved_beside_its_run(data, tmp_path, monkeypatch):
    out, calls = tmp_path / "abl", []
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    result = _run([], data, out, base="yolov8n.yaml", kinds=["CoordAtt"], placements=["neck"], seeds=2)
    saved = out / "runs" / "yolov8n-neck-CoordAtt-seed1" / "yolov8n-neck-CoordAtt.yaml"
    assert calls[1]["model"] == str(out / "runs" / "yolov8n-neck-CoordAtt-seed0" / "yolov8n-neck-CoordAtt.yaml")
    assert saved.read_text() == placement_yaml("yolov8n.yaml", "CoordAtt", "neck")[1]
    assert (out / "models" / "yolov8n-neck-CoordAtt.yaml").is_file()
    assert [(m["label"], m["placement"], m["kind"]) for m in result["models"]] == [
        ("yolov8n", None, "baseline"),
        ("yolov8n-neck-CoordAtt", "neck", "CoordAtt"),
    ]
    assert (out / "ablation-CoordAtt-placements.png").is_file()


# --- end to end through the tool (slow) ---------------------------------------------------------------------------


def _args(data, project, name):
    return [
        f"models={MODELS}",
        "seeds=2",
        f"data={data}",
        *(f"{k}={v}" for k, v in RECIPE.items()),
        f"project={project}",
        f"name={name}",
        "latency_repeats=2",
        "bootstrap=100",
    ]


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory, tool):
    project = tmp_path_factory.mktemp("ablations")
    r = tool("ablate", *_args(data, project, "abl"))
    assert r.returncode == 0, r.stderr[-4000:]
    return project, r


@pytest.mark.slow
def test_ablation_tool_writes_the_report(finished):
    project, r = finished
    out = project / "abl"
    assert "yolov8n-CoordAtt-seed1" in r.stdout and "4/4 runs finished" in r.stdout
    md = (out / "ablation.md").read_text()
    assert "| yolov8n-CoordAtt | - | 2 |" in md and "Test-set bootstrap" in md and "latency ms |" in md
    with open(out / "ablation.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(t["label"], t["seed"]) for t in table] == [
        ("yolov8n", "0"),
        ("yolov8n-CoordAtt", "0"),
        ("yolov8n", "1"),
        ("yolov8n-CoordAtt", "1"),
    ]
    assert all(0.0 <= float(t["AP"]) <= 1.0 and float(t["params"]) > 1e6 and float(t["latency_ms"]) > 0 for t in table)
    state = load_state(out)
    for run in state["finished"].values():
        metrics = json.loads((out / run["run_dir"] / "metrics.json").read_text())
        assert metrics["coco"]["AP"] == run["coco"]["AP"]  # the table holds the evaluator's numbers
        assert (out / run["predictions"]).is_file() and run["ground_truth"] == f"{run['run_dir']}/ground_truth.json"
    # The bootstrap's full-set AP of each run is the evaluator's (pycocotools on the same files), for both sides.
    report = json.loads((out / "ablation.json").read_text())
    for model in report["models"][1:]:
        assert [boot["seed"] for boot in model["vs_baseline"]["bootstrap"]] == [0, 1]  # the training seeds, in order
        for boot in model["vs_baseline"]["bootstrap"]:
            ap, seed = boot["metrics"]["AP"], boot["seed"]
            assert ap["a"] == pytest.approx(state["finished"][f"yolov8n-CoordAtt-seed{seed}"]["coco"]["AP"], abs=1e-9)
            assert ap["b"] == pytest.approx(state["finished"][f"yolov8n-seed{seed}"]["coco"]["AP"], abs=1e-9)
    assert cv2.imread(str(out / "ablation.png")) is not None


@pytest.mark.slow
def test_rerun_prints_the_same_report_without_training(finished, data, tool):
    project, _ = finished
    out = project / "abl"
    before = (out / "ablation.md").read_text()
    r = tool("ablate", *_args(data, project, "abl"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("finished earlier, reused") == 4 and "Epoch" not in r.stdout
    assert (out / "ablation.md").read_text() == before and before.strip() in r.stdout


@pytest.mark.slow
def test_killed_mid_run_then_the_same_command_gives_the_same_tables(finished, data, tool):
    project, _ = finished
    args = _args(data, project, "killed")
    out = project / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(TOOLS / "ablate.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        target = out / "runs" / "yolov8n-CoordAtt-seed0"  # the second run: killed while it trains
        deadline = time.monotonic() + 600
        while not target.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert target.exists() and proc.poll() is None, "the ablation ended before its second run started"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert list(load_state(out)["finished"]) == ["yolov8n-seed0"]
    r = tool("ablate", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("finished earlier, reused") == 1

    def tables(path):  # everything but the latency measurement, which is a new measurement in each ablation
        lines, in_gain_table = [], False
        for line in path.read_text().split("Cost (")[0].splitlines():
            in_gain_table = "ΔAP per added ms" in line or (in_gain_table and line.startswith("|"))
            # the last column, AP gain per added millisecond, is derived from that latency measurement
            lines.append(line.rsplit("|", 2)[0] if in_gain_table else line)
        return "\n".join(lines)

    assert tables(out / "ablation.md") == tables(project / "abl" / "ablation.md")
    uninterrupted = {r["name"]: r["coco"] for r in load_state(project / "abl")["finished"].values()}
    resumed = {r["name"]: r["coco"] for r in load_state(out)["finished"].values()}
    assert resumed == uninterrupted


@pytest.mark.slow
def test_the_recipe_wins_and_each_models_own_defaults_are_recorded(tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)  # the sample dataset lives in data/sample under the working directory
    make_sample_dataset(tmp_path / "data" / "sample", n_train=8, n_val=4, imgsz=64, video=False)
    out = tmp_path / "abl"
    models = ["yolov5n-classic.yaml", "yolov8n.yaml"]
    run_ablation(models, out_dir=out, latency_repeats=0, bootstrap=0, log=quiet, epochs=1, imgsz=64, batch=4, workers=0)
    state = load_state(out)
    for name, run in state["finished"].items():
        args = yaml.safe_load((out / run["run_dir"] / "args.yaml").read_text())
        # every recorded key is what the run trained with: epochs=1, not attnyolo train's 30 for classic models
        assert {k: args[k] for k in state["recipe"]} == state["recipe"], name
        assert args["seed"] == 0
    # Keys the recipe leaves open: YOLOv5's hyp.scratch-low box gain (Ultralytics: 7.5) and, on the sample data, no
    # mosaic (Ultralytics: 1.0) for the classic model; its other hyp.scratch-low values equal Ultralytics' defaults.
    assert state["finished"]["yolov5n-classic-seed0"]["settings"] == {"box": 0.05, "mosaic": 0.0}
    assert state["finished"]["yolov8n-seed0"]["settings"] == {}
    assert "- yolov5n-classic: box=0.05, mosaic=0.0" in (out / "ablation.md").read_text()


def test_one_driver_per_ablation_directory(data, tmp_path, monkeypatch):
    out, calls = tmp_path / "abl", []
    out.mkdir()
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    (out / ablation_state.LOCK_FILE).write_text(str(os.getppid()))  # a live process drives this ablation
    with pytest.raises(ValueError, match=rf"another ablate \(process {os.getppid()}\) is running"):
        _run(["yolov8n.yaml"], data, out)
    assert not calls
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / ablation_state.LOCK_FILE).write_text(str(gone.pid))  # left by a killed driver: taken over
    _run(["yolov8n.yaml"], data, out)
    assert [c["name"] for c in calls] == ["yolov8n-seed0"] and not (out / ablation_state.LOCK_FILE).exists()


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("seeds=0", "seeds=0: a seed count must be 1 or more"),
        ("seeds=1,1", "seeds=(1, 1): a seed appears twice"),
        ("placements=head", "placements: 'head' is not a placement. Fix: use one or more of backbone, neck, all"),
        ("backend=slurm", "backend=slurm is not one of local"),
        ("bootstrap=-1", "bootstrap=-1 must be a whole number >= 0"),
        ("confidence=95", "confidence=95 must be a number between 0 and 1"),
        ("baseline=yolov8s.yaml", "baseline=yolov8s.yaml is not one of the models (yolov8n, yolov8n-CoordAtt)"),
    ],
)
def test_bad_settings_fail_in_one_line_before_anything_starts(arg, expected, data, tmp_path, capsys, monkeypatch):
    from attnyolo.commands import run

    calls = []
    monkeypatch.setattr(ablation_runs, "train", _fake_train(calls))
    with pytest.raises(SystemExit) as done:
        run("ablate", [f"models={MODELS}", f"data={data}", arg, f"project={tmp_path}", "name=abl"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert done.value.code == 1 and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert errors[0].startswith(f"error: {expected}")
    assert not calls and not (tmp_path / "abl").exists()
