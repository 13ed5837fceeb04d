"""The benchmark library and tool: timing helpers, the layer and model benchmarks, and the tool end to end."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from attnyolo.analysis.layers import benchmark_layers, format_layer_table
from attnyolo.analysis.models import benchmark_models, format_model_table, model_kind
from attnyolo.analysis.report import write_results
from attnyolo.analysis.timing import paired_ratio, time_interleaved
from attnyolo.integration.internals import predictor_channels_last
from attnyolo.layers.registry import KINDS, kind_names

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5


# --------------------------------------------------------------------------------------------------------- timing
def test_time_interleaved_runs_each_candidate_warmup_settle_and_repeats():
    counts = {"a": 0, "b": 0}

    def bump(name):
        counts[name] += 1

    times = time_interleaved({"a": lambda: bump("a"), "b": lambda: bump("b")}, repeats=4, warmup=2, settle=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert counts == {"a": 2 + 4 * 2, "b": 2 + 4 * 2}
    assert all(t >= 0 for v in times.values() for t in v)


def test_paired_ratio_is_the_median_of_per_round_ratios():
    assert paired_ratio([2.0, 3.0, 10.0], [1.0, 1.0, 1.0]) == 3.0
    assert paired_ratio([1.0, 1.0, 1.0], [1.0, 2.0, 4.0]) == 0.5


@pytest.mark.parametrize(
    ("name", "kind"),
    [("yolo11s-ELA-S.yaml", "ELA-S"), ("yolov8n-CoordAtt.yaml", "CoordAtt"), ("yolov8n.yaml", "baseline")],
)
def test_model_kind(name, kind):
    assert model_kind(name) == kind


def test_benchmarks_default_to_the_memory_order_of_ultralytics_predictor():
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.tasks import DetectionModel

    backend = AutoBackend(DetectionModel("yolov8n.yaml", verbose=False), device=torch.device("cpu"), verbose=False)
    weight = backend.model.model[0].conv.weight  # (16, 3, 3, 3): channels-last differs from contiguous
    assert predictor_channels_last("cpu") == (weight.is_contiguous(memory_format=torch.channels_last))
    result = benchmark_layers(kinds=["SE"], shapes=[(16, 6)], repeats=1, warmup=0)
    expected = "channels_last" if predictor_channels_last("cpu") else "contiguous"
    assert result["settings"]["memory_format"] == expected
    forced = benchmark_models(["yolov8n.yaml"], imgsz=32, batch=1, repeats=1, warmup=0, channels_last=False)
    assert forced["settings"]["memory_format"] == "contiguous"


def test_layer_benchmark_result_and_table():
    result = benchmark_layers(kinds=["SE", "ELA-T"], shapes=[(32, 8), (16, 12)], repeats=2, warmup=1)
    assert [(r["kind"], r["channels"], r["size"]) for r in result["rows"]] == [
        ("SE", 32, 8),
        ("SE", 16, 12),
        ("ELA-T", 32, 8),
        ("ELA-T", 16, 12),
    ]
    assert all(
        r["ratio"] > 0 and r["floor_ratio"] > 0 and r["equal"] and r["max_abs_diff"] <= TOL for r in result["rows"]
    )
    for kind in ("SE", "ELA-T"):
        floors = [r["floor_ratio"] for r in result["rows"] if r["kind"] == kind]
        assert result["summary"][kind]["geomean_floor_ratio"] == pytest.approx((floors[0] * floors[1]) ** 0.5)
    table = format_layer_table(result).splitlines()
    rows = [ln for ln in table if ln.startswith("|")]
    assert len(rows) == 2 + 2 and len({ln.count("|") for ln in rows}) == 1  # header, rule, one row per kind
    assert rows[0].split("|")[-3].strip() == "floor"
    assert result["settings"]["memory_format"] in table[0]
    assert "Machine:" in table[-1] and "fused CPU kernels " in table[-1]


# ------------------------------------------------------------------------------------------------------ end to end
def _markdown_rows(text: str) -> list[str]:
    rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert len({ln.count("|") for ln in rows}) == 1, "ragged Markdown table"
    assert set(rows[1].replace("|", "").replace("-", "").replace(":", "").strip()) == set()
    return rows[2:]


@pytest.mark.slow
def test_benchmark_tool_end_to_end(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "benchmark.py"),
            "models=yolov8n.yaml,yolov8n-CoordAtt.yaml",
            "imgsz=64",
            "batch=2",
            "repeats=2",
            "warmup=1",
            "threads=1",
            "layer_repeats=1",
            f"project={tmp_path}",
            "name=bench",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "bench"
    assert "| yolov8n-CoordAtt.yaml |" in r.stdout  # the table is on the console too
    rows = _markdown_rows((out / "models.md").read_text())
    assert len(rows) == 2 and "1.000×" in rows[0] and "CoordAtt @ 5:P3(64) 8:P4(128) 11:P5(256)" in rows[1]
    layer_rows = _markdown_rows((out / "layers.md").read_text())
    assert [ln.split("|")[1].strip() for ln in layer_rows] == kind_names()
    with open(out / "models.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["model"] for t in table] == ["yolov8n.yaml", "yolov8n-CoordAtt.yaml"]
    assert float(table[0]["overhead"]) == 1.0 and float(table[1]["params"]) > float(table[0]["params"])
    assert {"latency_ms", "latency_q1_ms", "latency_q3_ms", "throughput", "gflops"} <= set(table[0])
    data = json.loads((out / "benchmark.json").read_text())
    assert data["models"]["baseline"] == "yolov8n.yaml" and len(data["layers"]["rows"]) == len(KINDS) * 4
    assert all(r["equal"] for r in data["layers"]["rows"])
    for png in ("models.png", "layers.png"):
        image = cv2.imread(str(out / png))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


def test_model_benchmark_baseline_and_ratios(tmp_path):
    result = benchmark_models(["yolov8n-ECA.yaml", "yolov8n.yaml"], imgsz=64, batch=1, repeats=2, warmup=0)
    assert result["baseline"] == "yolov8n.yaml"  # the model without attention, wherever it is in the list
    base, eca = result["rows"][1], result["rows"][0]
    assert base["overhead"] == 1.0 and base["params_ratio"] == 1.0
    assert eca["params"] > base["params"] and eca["attention"].startswith("ECAAttention @")
    assert "batch_latency_ms" not in eca  # batch=1 skips the larger-batch series
    files = write_results(tmp_path, models=result)
    assert set(files) == {"models.md", "models.csv", "models.png", "benchmark.json"}
    assert len(_markdown_rows(format_model_table(result))) == 2


def test_model_benchmark_rejects_unknown_baseline():
    with pytest.raises(ValueError, match="baseline='nope.yaml' is not one of models="):
        benchmark_models(["yolov8n.yaml"], imgsz=64, batch=1, repeats=1, warmup=0, baseline="nope.yaml")


def test_benchmark_tool_models_none_without_layers_has_nothing_to_do(run_command):
    r = run_command("benchmark", "models=none", "layers=False")
    assert r.returncode == 1 and "nothing to do" in r.stderr


def test_benchmark_tool_rejects_unknown_key_and_kind(run_command):
    r = run_command("benchmark", "modles=yolov8n.yaml")
    assert r.returncode == 2 and "Did you mean models?" in r.stderr
    r = run_command("benchmark", "kinds=ELA-Q", "models=none")
    assert r.returncode == 1 and "kinds=ELA-Q: unknown attention kind 'ELA-Q'. Did you mean ELA-T" in r.stderr


def test_checkpoints_are_opened_by_the_safe_reader_with_messages_naming_the_argument(tmp_path):
    from ultralytics import YOLO

    from attnyolo.analysis.summary import model_summary
    from attnyolo.errors import CheckpointError

    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"^model={re.escape(str(damaged))} is not a loadable checkpoint"):
        model_summary(str(damaged), 64)
    with pytest.raises(CheckpointError, match=f"^models={re.escape(str(damaged))} is not a loadable checkpoint"):
        benchmark_models([str(damaged)], imgsz=64, repeats=1)
    classify = tmp_path / "classify.pt"
    YOLO("yolov8n-cls.yaml").save(classify)  # a checkpoint of another task: the tools measure detectors only
    with pytest.raises(CheckpointError, match="is a 'classify' model"):
        model_summary(str(classify), 64)
