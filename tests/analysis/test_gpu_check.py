"""The GPU check: its comparisons, its one-line refusals, and (slow tier) the whole check as a CPU dry run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from attnyolo.analysis import gpu_check, gpu_precision
from attnyolo.commands import run
from attnyolo.layers.registry import kind_names


def test_relative_error_and_cosine_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 40)), rng.normal(size=(3, 40))
    expected = np.linalg.norm(a - b) / np.linalg.norm(b)
    assert gpu_precision.relative_error(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        expected, rel=1e-6
    )
    expected_cos = (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))
    assert gpu_precision.cosine(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected_cos, rel=1e-12)
    assert gpu_precision.relative_error(torch.zeros(3), torch.zeros(3)) == 0.0


def test_tolerances_keep_bfloat16_looser_than_float16():
    # bfloat16 keeps 8 significand bits, float16 11: every bound of bfloat16 must be at least float16's.
    f16, bf16 = gpu_precision.TOLERANCES["float16"], gpu_precision.TOLERANCES["bfloat16"]
    assert bf16.output >= f16.output and bf16.loss >= f16.loss and bf16.grad >= f16.grad and bf16.cosine <= f16.cosine


def test_precision_models_are_every_family_and_kind_at_n_and_yolov8_at_s():
    names = gpu_precision.precision_models()
    kinds = ("", *kind_names())
    expected = {
        f"{stem}{'-' + k if k else ''}.yaml"
        for stem in ("yolov5n", "yolov5n-classic", "yolov8n", "yolo11n")
        for k in kinds
    }
    expected |= {f"yolov8s{'-' + k if k else ''}.yaml" for k in kinds}
    expected |= {f"yolox-nano{'-' + k if k else ''}.yaml" for k in kinds}
    assert sorted(names) == sorted(expected) and len(names) == len(expected)
    stems = {n.removesuffix(".yaml") for n in expected if gpu_precision.kind_of(n) == ""}
    with_ela = sorted(f"{stem}{suffix}.yaml" for stem in stems for suffix in ("", "-ELA-S"))
    assert sorted(gpu_precision.precision_models(kinds=["ELA-S"])) == with_ela


def test_train_losses_sum_the_train_columns_per_epoch(tmp_path):
    # Ultralytics' results.csv header (8.4.190 writes it unpadded; older releases padded the names with spaces).
    (tmp_path / "results.csv").write_text(
        "epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/mAP50(B),lr/pg0\n"
        "1,3.1,1.5,2.5,1.25,0.01,0.001\n"
        "2,6.0, 1.0,2.0,1.0,0.02,0.002\n"
    )
    assert gpu_check.train_losses(tmp_path) == [5.25, 4.0]


@pytest.fixture
def tiny_attention_yaml(tmp_path):
    cfg = {
        "nc": 3,
        "backbone": [
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "CoordAtt", []],
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "ELA", [32, "S"]],
        ],
        "head": [[[2, 4], 1, "Detect", ["nc"]]],
    }
    path = tmp_path / "tiny-attention.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_check_precision_passes_within_its_tolerances_and_names_each_bound_crossed(tiny_attention_yaml, monkeypatch):
    row = gpu_precision.check_precision(str(tiny_attention_yaml), torch.device("cpu"), 64, 2, ["bfloat16", "half"])
    assert row["ok"], row["failures"]
    entry = row["bfloat16"]
    # bfloat16 rounding really happened (not a float32 rerun), and stayed within the bounds
    assert 0 < entry["box_error"] <= gpu_precision.TOLERANCES["bfloat16"].output and entry["finite"]
    assert 0 < entry["grad_error"] and entry["grad_cosine"] > gpu_precision.TOLERANCES["bfloat16"].cosine
    assert entry["grad_finite"]
    assert row["fast_path_error"] <= gpu_precision.FAST_PATH_TOLERANCE

    strict = gpu_precision.Tolerance(output=0.0, loss=0.0, grad=0.0, cosine=1.0 + 1e-9)
    monkeypatch.setitem(gpu_precision.TOLERANCES, "bfloat16", strict)
    row = gpu_precision.check_precision(str(tiny_attention_yaml), torch.device("cpu"), 64, 2, ["bfloat16"])
    assert not row["ok"] and not row["bfloat16"]["ok"]
    named = " ".join(row["failures"])
    for key in ("box_error", "score_error", "loss_error", "grad_error", "grad_cosine"):
        assert f"bfloat16: {key}" in named


def _one_line_exit_1(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        run("gpu_check", argv)
    err = capsys.readouterr().err.strip()
    assert caught.value.code == 1 and len(err.splitlines()) == 1 and err.startswith("error: ")
    return err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_no_cuda_device_is_one_line_and_exit_1(capsys, tmp_path):
    err = _one_line_exit_1(capsys, ["device=0", f"out={tmp_path}"])
    assert "no CUDA device" in err and "device=cpu for the dry run" in err
    assert not list(tmp_path.iterdir())  # nothing started


def test_a_missing_module_is_named_in_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(gpu_check.REQUIRED_MODULES, "no_such_module_xyz", "no-such-dist")
    err = _one_line_exit_1(capsys, ["device=cpu", f"out={tmp_path}"])
    assert "needs no-such-dist" in err and "docs/gpu.md" in err


@pytest.mark.slow
def test_dry_run_on_the_cpu_runs_every_step_and_writes_json_and_summary(tool, tmp_path):
    out = tmp_path / "check"
    r = tool("gpu_check", "device=cpu", f"out={out}", "kinds=CoordAtt", timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "every check passed" in r.stdout
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["ok"] and report["failures"] == [] and report["kind"].startswith("CPU dry run")
    assert len(report["precision"]) == len(gpu_precision.precision_models(kinds=["CoordAtt"]))
    for row in report["precision"]:
        assert row["ok"] and {"float16", "bfloat16", "half"} <= set(row)
    assert [t["model"] for t in report["training"]] == list(gpu_check.TRAINED_MODELS)
    for t in report["training"]:
        # finite losses for both epochs; whether they fell is recorded, a failure only on a GPU (check_training)
        assert len(t["train_loss"]) == 2 and all(v == v and abs(v) < float("inf") for v in t["train_loss"])
        assert t["loss_fell"] == (t["train_loss"][1] < t["train_loss"][0])
        assert 0.0 <= t["coco_AP"] <= 1.0 and 0.0 <= t["voc_mAP50"] <= 1.0
    d = report["deployment"]
    assert d["predicted_frames"] == d["video_frames"] > 0 and d["onnx_check"]["ok"]
    rows = report["timing"]["rows"]
    assert len(rows) == 9 and all(r["latency_b1_ratio"] > 0 and r["train_step_ratio"] > 0 for r in rows)
    assert all(r["latency_b1_ratio"] == 1.0 for r in rows if r["kind"] == "stock")
    assert "fused CPU kernels" not in report["skipped"]  # skipped on CUDA only
    summary = (out / "gpu_check.md").read_text()
    assert "every check passed" in summary and "| yolov8s-CoordAtt.yaml |" in summary
