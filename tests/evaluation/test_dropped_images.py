"""The evaluator scores exactly the images Ultralytics' validator evaluates, with the same per-image verdicts.

Ultralytics drops an image whose label file has one invalid line, or which cannot be read, so the model never sees
it. Its ground truth must then be dropped too: the AP must equal the AP of the same dataset without that image.
"""

import json
import shutil
import warnings

import numpy as np
import pytest
import yaml

from attnyolo.data.sample import make_sample_dataset
from attnyolo.evaluation.report import format_metrics_table
from attnyolo.evaluation.validator import evaluate_predictions, score_predictions_file


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    data_yaml = make_sample_dataset(tmp_path_factory.mktemp("sample"), n_train=1, n_val=12, imgsz=160, video=False)
    gt = json.loads((data_yaml.parent / "annotations" / "instances_val.json").read_text())
    per_image = {}
    for a in gt["annotations"]:
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    victim = next(i for i, n in sorted(per_image.items()) if n >= 2)  # an image with several objects
    return data_yaml, gt, f"{victim:06d}"


def noisy(gt, seed=0):
    """Imperfect detections (jittered boxes, random scores, misses, false positives), so AP is not trivially 1."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.random() < 0.2:
            continue
        x, y, w, h = a["bbox"]
        j = rng.normal(0, 0.12, 4) * [w, h, w, h]
        box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": box, "score": rng.random()})
    for im in gt["images"]:
        box = [5, 5, 30, 20]
        out.append({"image_id": im["id"], "category_id": 1 + int(rng.integers(3)), "bbox": box, "score": rng.random()})
    return out


def copy_dataset(data_yaml, dst, labels_only):
    shutil.copytree(data_yaml.parent, dst)
    for cache in dst.glob("labels/*.cache"):
        cache.unlink()
    data = {**yaml.safe_load(data_yaml.read_text()), "path": str(dst)}
    if labels_only:
        del data["coco_annotations"]  # ground truth built from the YOLO label files
    (dst / "data.yaml").write_text(yaml.safe_dump(data))
    return dst / "data.yaml"


def _class_out_of_range(root, stem):
    label = root / "labels" / "val" / f"{stem}.txt"
    label.write_text(label.read_text() + "7 0.5 0.5 0.2 0.2\n")


def _three_numbers(root, stem):
    label = root / "labels" / "val" / f"{stem}.txt"
    label.write_text(label.read_text() + "0 0.5 0.5\n")


def _outside_the_image(root, stem):
    label = root / "labels" / "val" / f"{stem}.txt"
    label.write_text(label.read_text() + "1 0.5 0.5 1.5 0.2\n")


def _corrupt_image(root, stem):
    (root / "images" / "val" / f"{stem}.jpg").write_bytes(b"\xff\xd8 half a jpeg")


FAULTS = [_class_out_of_range, _three_numbers, _outside_the_image, _corrupt_image]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("labels_only", [False, True], ids=["coco-json", "yolo-labels"])
def test_ap_equals_the_ap_with_the_dropped_image_removed(sample, tmp_path, fault, labels_only):
    data_yaml, gt, victim = sample
    faulty = copy_dataset(data_yaml, tmp_path / "faulty", labels_only)
    fault(faulty.parent, victim)
    removed = copy_dataset(data_yaml, tmp_path / "removed", labels_only)
    for path in [*removed.parent.glob(f"*/val/{victim}.*"), *removed.parent.glob(f"Annotations/{victim}.xml")]:
        path.unlink()
    # What Ultralytics' validator writes: no detection on the image it never evaluated.
    predictions = [p for p in noisy(gt) if p["image_id"] != int(victim)]

    with pytest.warns(UserWarning, match=f"{victim}.jpg: dropped from the evaluation"):
        got = evaluate_predictions(faulty, predictions)
    expected = evaluate_predictions(removed, predictions)
    assert got["coco"] == expected["coco"] and got["voc"] == expected["voc"]
    assert got["images"] == expected["images"] == 11
    assert expected["dropped_images"] == []
    [entry] = got["dropped_images"]
    assert entry["image"] == str(faulty.parent / "images" / "val" / f"{victim}.jpg")
    assert entry["reason"].startswith("ignoring corrupt image/label:")
    # Keeping the image's valid objects (the old behaviour) would count them as misses: a different, lower AP.
    kept = evaluate_predictions(copy_dataset(data_yaml, tmp_path / "intact", labels_only), predictions)
    assert kept["coco"]["AR100"] < got["coco"]["AR100"]


def test_detections_on_a_dropped_image_are_not_scored(sample, tmp_path):
    data_yaml, gt, victim = sample
    faulty = copy_dataset(data_yaml, tmp_path / "faulty", labels_only=False)
    _class_out_of_range(faulty.parent, victim)
    predictions = noisy(gt)  # from another tool that did run on the image
    (tmp_path / "p.json").write_text(json.dumps(predictions))
    with pytest.warns(UserWarning) as caught:
        metrics, run_dir = score_predictions_file(faulty, tmp_path / "p.json", tmp_path / "run")
    n = sum(p["image_id"] == int(victim) for p in predictions)
    assert any(f"{n} detections on the 1 dropped image(s) are not scored" in str(w.message) for w in caught)
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["dropped_images"] == metrics["dropped_images"] and len(metrics["dropped_images"]) == 1
    with pytest.warns(UserWarning, match="dropped from the evaluation"):
        without = evaluate_predictions(faulty, [p for p in predictions if p["image_id"] != int(victim)])
    assert metrics["coco"] == without["coco"]
    table = format_metrics_table(metrics)
    assert f"dropped: 1 image(s) Ultralytics' validator does not evaluate, not scored: {victim}.jpg: ignoring" in table


def test_duplicate_label_rows_count_once_as_in_ultralytics(sample, tmp_path):
    data_yaml, gt, victim = sample
    data = copy_dataset(data_yaml, tmp_path / "dup", labels_only=True)
    label = data.parent / "labels" / "val" / f"{victim}.txt"
    rows = label.read_text().splitlines()
    label.write_text("\n".join([*rows, rows[0]]) + "\n")  # one object listed twice
    perfect = [{**{k: a[k] for k in ("image_id", "category_id", "bbox")}, "score": 0.9} for a in gt["annotations"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # removing duplicates is not a dropped image: no warning
        metrics = evaluate_predictions(data, perfect)
    assert metrics["dropped_images"] == [] and metrics["coco"]["AR100"] == pytest.approx(1.0, abs=1e-9)


def test_a_split_without_one_usable_image_is_a_one_line_error(tmp_path, sample):
    data_yaml, _, _ = sample
    data = copy_dataset(data_yaml, tmp_path / "broken", labels_only=True)
    for image in (data.parent / "images" / "val").glob("*.jpg"):
        image.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"none of the 12 'val' images can be evaluated, e.g. .*\.jpg: ignoring"):
        evaluate_predictions(data, [])
