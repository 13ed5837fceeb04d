"""tools/val.py end to end, in a subprocess as a user runs it: exit status, printed output, files written."""

import json
import shutil

import pytest
import yaml

COCO_KEYS = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "per_class"}
VOC_KEYS = {"mAP50_11point", "mAP50_area", "per_class"}


def fractions(tree):
    """Every number in a metrics block that is an AP/AR value (counts excluded)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key not in {"num_gt", "num_det"}:
                yield from fractions(value)
    elif tree is not None and not isinstance(tree, str):
        yield tree


def copy_dataset(data_yaml, dst, **changes):
    """A copy of the dataset with data.yaml keys changed (None removes a key)."""
    shutil.copytree(data_yaml.parent, dst)
    data = {**yaml.safe_load(data_yaml.read_text()), "path": str(dst), **changes}
    (dst / "data.yaml").write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    return dst / "data.yaml"


def test_scores_a_predictions_file(sample_data, perfect_predictions, tmp_path, tool):
    proc = tool(
        "val", f"data={sample_data}", f"predictions={perfect_predictions}", f"project={tmp_path / 'runs'}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "runs" / "exp"
    assert f"run directory: {run_dir}" in proc.stdout
    assert f"metrics: {run_dir / 'metrics.json'}" in proc.stdout
    assert "mAP50 11-point (VOC2007)" in proc.stdout

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert COCO_KEYS <= set(metrics["coco"]) and VOC_KEYS <= set(metrics["voc"])
    assert {"protocol", "data", "images"} <= set(metrics)
    assert metrics["images"] == 12 and metrics["data"] == str(sample_data)
    values = list(fractions(metrics["coco"])) + list(fractions(metrics["voc"]))
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert metrics["coco"]["AP"] == metrics["voc"]["mAP50_area"] == 1.0
    assert json.loads((run_dir / "predictions.json").read_text()) == json.loads(perfect_predictions.read_text())


def test_bad_label_line_drops_the_image_warns_and_continues(sample_data, perfect_predictions, tmp_path, tool):
    data_yaml = copy_dataset(sample_data, tmp_path / "data", coco_annotations=None)
    label = data_yaml.parent / "labels" / "val" / "000003.txt"
    label.write_text(label.read_text() + "9 0.5 0.5 0.1 0.1\n")
    proc = tool("val", f"data={data_yaml}", f"predictions={perfect_predictions}", f"project={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    image = data_yaml.parent / "images" / "val" / "000003.jpg"
    assert f"warning: {image}: dropped from the evaluation, as Ultralytics' validator drops it" in proc.stderr
    assert "Label class 9 exceeds dataset class count 3" in proc.stderr
    assert "dropped: 1 image(s) Ultralytics' validator does not evaluate" in proc.stdout
    metrics = json.loads((tmp_path / "exp" / "metrics.json").read_text())
    assert metrics["images"] == 11 and metrics["dropped_images"][0]["image"] == str(image)


def _unknown_image_id(tmp_path, data, predictions):
    bad = json.loads(predictions.read_text()) + [
        {"image_id": 424242, "category_id": 1, "bbox": [0, 0, 9, 9], "score": 1}
    ]
    (tmp_path / "p.json").write_text(json.dumps(bad))
    return [f"data={data}", f"predictions={tmp_path / 'p.json'}"], "424242"


def _malformed_entry(tmp_path, data, predictions):
    bad = [{"image_id": 2, "category_id": 1, "bbox": [0, 0, "wide", 5], "score": 0.5}]
    (tmp_path / "p.json").write_text(json.dumps(bad))
    return [f"data={data}", f"predictions={tmp_path / 'p.json'}"], "entry 0: 'bbox'"


def _missing_data_path(tmp_path, data, predictions):
    return [f"data={tmp_path / 'nowhere' / 'data.yaml'}", f"predictions={predictions}"], "nowhere/data.yaml"


def _data_yaml_without_names(tmp_path, data, predictions):
    raw = yaml.safe_load(data.read_text())
    del raw["names"]
    (tmp_path / "nameless.yaml").write_text(yaml.safe_dump(raw))
    return [f"data={tmp_path / 'nameless.yaml'}", f"predictions={predictions}"], "nameless.yaml: no 'names' key"


def _empty_val_set(tmp_path, data, predictions):
    (tmp_path / "no_images").mkdir()
    raw = {**yaml.safe_load(data.read_text()), "val": str(tmp_path / "no_images")}
    (tmp_path / "empty.yaml").write_text(yaml.safe_dump(raw))
    return [f"data={tmp_path / 'empty.yaml'}", f"predictions={predictions}"], "no_images holds no images"


def _nonexistent_weights(tmp_path, data, predictions):
    return [f"model={tmp_path / 'missing.pt'}", f"data={data}"], "missing.pt does not exist"


def _text_file_renamed_pt(tmp_path, data, predictions):
    (tmp_path / "notes.pt").write_text("these are notes, not weights\n")
    return [
        f"model={tmp_path / 'notes.pt'}",
        f"data={data}",
    ], "notes.pt is not a loadable checkpoint: the file is empty, truncated or corrupted"


@pytest.mark.parametrize(
    "case",
    [
        _unknown_image_id,
        _malformed_entry,
        _missing_data_path,
        _data_yaml_without_names,
        _empty_val_set,
        _nonexistent_weights,
        _text_file_renamed_pt,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_input_gives_one_line_error(case, sample_data, perfect_predictions, tmp_path, run_command):
    args, expected = case(tmp_path, sample_data, perfect_predictions)
    proc = run_command("val", *args, f"project={tmp_path / 'runs'}", cwd=tmp_path)
    assert proc.returncode == 1
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: ") and expected in message, message
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_bad_input_in_a_fresh_process_is_one_line_on_stderr(sample_data, perfect_predictions, tmp_path, tool):
    # The same as above through the script, where any warning or log line would also land on stderr.
    args, expected = _malformed_entry(tmp_path, sample_data, perfect_predictions)
    proc = tool("val", *args, f"project={tmp_path / 'runs'}", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("error: ") and expected in proc.stderr


def test_unknown_key_is_rejected_with_a_suggestion(sample_data, tmp_path, run_command):
    proc = run_command("val", f"data={sample_data}", "model=x.pt", "imgsx=64", cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown argument 'imgsx'" in proc.stderr and "imgsz" in proc.stderr


@pytest.mark.slow
def test_validates_a_checkpoint(sample_data, tmp_path, tool):
    import torch
    from ultralytics import YOLO

    import attnyolo  # noqa: F401  (registers the layers the model YAML names)

    weights = tmp_path / "tiny.pt"
    model = YOLO("yolov8n-CoordAtt.yaml")  # untrained, 80 classes: this checks the plumbing, not the accuracy
    for branch in model.model.model[-1].cv3:
        # Class logits 0 -> scores 0.5: without this an untrained head scores every box below conf=0.001, writes no
        # predictions.json and the JSON path (Ultralytics' eval_json, our category alignment) would go untested.
        torch.nn.init.zeros_(branch[-1].bias)
    model.save(weights)
    args = ("imgsz=64", "batch=4", "workers=0", "device=cpu", f"project={tmp_path / 'runs'}", "name=tiny")
    # Verbose, so that Ultralytics' own log would show a faster-coco-eval step if one ran.
    proc = tool("val", f"model={weights}", f"data={sample_data}", *args, cwd=tmp_path, env={"YOLO_VERBOSE": "true"})
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "runs" / "tiny"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert COCO_KEYS <= set(metrics["coco"]) and VOC_KEYS <= set(metrics["voc"])
    assert set(metrics["ultralytics"]) == {"mAP50-95", "mAP50"}
    assert all(0.0 <= v <= 1.0 for v in [*fractions(metrics["coco"]), *fractions(metrics["voc"])])
    assert all(0.0 <= v <= 1.0 for v in metrics["ultralytics"].values())
    assert metrics["model"] == str(weights)
    # The model has 80 classes, the data 3: detections of the other 77 are dropped, and the saved predictions are
    # the ones scored.
    assert "detections of classes the data does not have were dropped" in proc.stderr
    predictions = json.loads((run_dir / "predictions.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= {1, 2, 3}
    # Ultralytics' faster-coco-eval step is bypassed: no attempt to install or run it.
    assert "faster-coco-eval" not in proc.stdout + proc.stderr
