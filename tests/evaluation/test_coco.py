"""COCO protocol: our wrapper against pycocotools run directly, plus input checks."""

import json
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from attnyolo.evaluation.coco import (
    COCO_METRIC_NAMES,
    build_coco_ground_truth,
    coco80_to_91,
    evaluate_coco,
    load_results,
    yolo_image_id,
)

# Positions of these metrics in COCOeval.stats, in the order COCOeval.summarize() prints its 12 lines.
STATS_INDEX = {"AP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5, "AR100": 8}
CLASSES = ["cat", "dog", "bird"]


def image(image_id, boxes, classes, difficult=None, size=(640, 480)):
    entry = {"id": image_id, "file_name": f"{image_id}.jpg", "width": size[0], "height": size[1]}
    entry.update(boxes=boxes, classes=classes)
    if difficult is not None:
        entry["difficult"] = difficult
    return entry


def result(image_id, category_id, xyxy, score):
    x1, y1, x2, y2 = xyxy
    return {"image_id": image_id, "category_id": category_id, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}


def run_pycocotools(gt_path, results_path, cat_ids=None):
    """The reference: pycocotools used as its README shows, on the same files."""
    coco_gt = COCO(str(gt_path))
    coco_dt = coco_gt.loadRes(str(results_path))
    evaluator = COCOeval(coco_gt, coco_dt, "bbox")
    if cat_ids is not None:
        evaluator.params.catIds = cat_ids
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


def test_metric_names():
    assert tuple(STATS_INDEX) == COCO_METRIC_NAMES


def test_perfect_predictions_score_one(capsys):
    # Box areas 20*20 = 400 (small, < 32^2), 50*60 = 3000 (medium), 120*100 = 12000 (large, > 96^2).
    # String ids, as yolo_image_id gives for VOC file names.
    images = [
        image("2008_000002", [[10, 10, 30, 30], [100, 100, 150, 160]], [0, 1]),
        image("2008_000003", [[200, 50, 320, 150]], [2]),
        image("2008_000004", [], []),
    ]
    gt = build_coco_ground_truth(images, CLASSES)
    results = [result(im["id"], cls + 1, box, 0.9) for im in images for box, cls in zip(im["boxes"], im["classes"])]
    metrics = evaluate_coco(gt, results)
    for name in COCO_METRIC_NAMES:
        assert metrics[name] == pytest.approx(1.0, abs=1e-12), name
    assert metrics["per_class"] == pytest.approx({"cat": 1.0, "dog": 1.0, "bird": 1.0}, abs=1e-12)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in metrics["summary"]
    assert capsys.readouterr().out == ""  # pycocotools' progress prints are swallowed


def random_case(seed=0, num_images=12):
    """Ground truth with difficult objects, and jittered, mislabelled and spurious detections."""
    rng = np.random.default_rng(seed)
    images, results = [], []
    for image_id in range(1, num_images + 1):
        boxes, classes, difficult = [], [], []
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 400, 2)
            w, h = rng.uniform(6, 200, 2)
            boxes.append([float(x), float(y), float(x + w), float(y + h)])
            classes.append(int(rng.integers(len(CLASSES))))
            difficult.append(bool(rng.random() < 0.15))
        images.append(image(image_id, boxes, classes, difficult))
        for box, cls in zip(boxes, classes):
            if rng.random() < 0.8:
                x1, y1, x2, y2 = np.asarray(box) + rng.normal(0, 0.08 * (box[2] - box[0]), 4)
                label = cls if rng.random() < 0.85 else int(rng.integers(len(CLASSES)))
                results.append(result(image_id, label + 1, [x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)], rng.random()))
        # COCOeval caps detections per image and category, so some images get 12 spurious "cat" detections: then
        # AR@10 differs from AR@100.
        crowded = image_id % 3 == 0
        for _ in range(12 if crowded else 2):
            x, y = rng.uniform(0, 400, 2)
            label = 0 if crowded else int(rng.integers(len(CLASSES)))
            results.append(result(image_id, label + 1, [x, y, x + 40, y + 30], rng.random()))
    return images, [{**r, "bbox": [float(v) for v in r["bbox"]], "score": float(r["score"])} for r in results]


def test_matches_pycocotools_on_the_same_files(tmp_path):
    images, results = random_case()
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "predictions.json"
    gt_path.write_text(json.dumps(build_coco_ground_truth(images, CLASSES)))
    results_path.write_text(json.dumps(results))

    metrics = evaluate_coco(gt_path, results_path)
    stats = run_pycocotools(gt_path, results_path)
    # A non-trivial case, so agreement means something; AR@10 (index 7) differs from the AR@100 we report.
    assert 0.05 < stats[0] < 0.95
    assert stats[7] < stats[8]
    for name, index in STATS_INDEX.items():
        expected = None if stats[index] == -1 else stats[index]
        assert metrics[name] == pytest.approx(expected, abs=1e-12), name

    # Per class: pycocotools restricted to that one category.
    for k, name in enumerate(CLASSES):
        expected = run_pycocotools(gt_path, results_path, cat_ids=[k + 1])[0]
        assert metrics["per_class"][name] == pytest.approx(expected, abs=1e-12), name


def test_summary_is_what_pycocotools_prints(tmp_path, capsys):
    images, results = random_case(seed=1, num_images=4)
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "predictions.json"
    gt_path.write_text(json.dumps(build_coco_ground_truth(images, CLASSES)))
    results_path.write_text(json.dumps(results))
    metrics = evaluate_coco(gt_path, results_path, per_class=False)
    capsys.readouterr()
    coco_gt = COCO(str(gt_path))
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(results_path)), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    capsys.readouterr()
    evaluator.summarize()
    assert metrics["summary"] == capsys.readouterr().out
    assert metrics["per_class"] == {}


def test_difficult_object_is_crowd_so_its_detection_is_not_a_false_positive():
    # The detection on the difficult box scores highest. Ignored (crowd): only the TP remains, AP = 1.
    # Control, with the difficult object dropped from the labels (what Ultralytics' VOC.yaml does): it becomes an
    # FP ranked above the TP, so precision is 1/2 at every recall level and AP = 0.5.
    boxes, classes = [[10, 10, 60, 60], [100, 100, 180, 180]], [0, 0]
    detections = [result(1, 1, boxes[1], 0.95), result(1, 1, boxes[0], 0.9)]

    with_difficult = build_coco_ground_truth([image(1, boxes, classes, [False, True])], CLASSES)
    assert [a["iscrowd"] for a in with_difficult["annotations"]] == [0, 1]
    metrics = evaluate_coco(with_difficult, detections)
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["AR100"] == pytest.approx(1.0, abs=1e-12)

    dropped = build_coco_ground_truth([image(1, boxes[:1], classes[:1])], CLASSES)
    assert evaluate_coco(dropped, detections)["AP"] == pytest.approx(0.5, abs=1e-12)


def test_build_coco_ground_truth_fields():
    gt = build_coco_ground_truth(
        [image(7, [[4, 8, 20, 40], [0, 0, 10, 5]], [2, 0], [False, True], size=(64, 48)), image(9, [], [])],
        CLASSES,
    )
    assert gt["images"] == [
        {"id": 7, "file_name": "7.jpg", "width": 64, "height": 48},
        {"id": 9, "file_name": "9.jpg", "width": 640, "height": 480},
    ]
    # [x1, y1, x2, y2] = [4, 8, 20, 40] -> [x, y, w, h] = [4, 8, 16, 32], area 16 * 32 = 512; class 2 -> id 3.
    first, second = gt["annotations"]
    assert first == {"id": 1, "image_id": 7, "category_id": 3, "bbox": [4, 8, 16, 32], "area": 512, "iscrowd": 0}
    assert second == {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 5], "area": 50, "iscrowd": 1}
    assert [(c["id"], c["name"]) for c in gt["categories"]] == [(1, "cat"), (2, "dog"), (3, "bird")]


def test_build_coco_ground_truth_rejects_bad_input():
    with pytest.raises(ValueError, match="image 1, box 0: class must be an int in \\[0, 3\\), got 3"):
        build_coco_ground_truth([image(1, [[0, 0, 5, 5]], [3])], CLASSES)
    with pytest.raises(ValueError, match="image 1, box 0: box .* x2 < x1"):
        build_coco_ground_truth([image(1, [[10, 0, 5, 5]], [0])], CLASSES)
    with pytest.raises(ValueError, match="mix ints and strings"):
        build_coco_ground_truth([image(1, [], []), image("a", [], [])], CLASSES)
    with pytest.raises(ValueError, match="appears twice"):
        build_coco_ground_truth([image(1, [], []), image(1, [], [])], CLASSES)


@pytest.fixture
def small_gt():
    return build_coco_ground_truth([image(1, [[10, 10, 60, 60]], [0]), image(2, [], [])], CLASSES)


def write_results(tmp_path, entries):
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(entries))
    return path


def test_unknown_image_id(tmp_path, small_gt):
    path = write_results(tmp_path, [result(1, 1, [10, 10, 60, 60], 0.9), result(999, 1, [0, 0, 5, 5], 0.5)])
    expected = r"predictions\.json: 1 result\(s\) have a 'image_id' .* e\.g\. \[999\]"
    with pytest.raises(ValueError, match=expected) as error:
        load_results(path, small_gt)
    assert "yolo_image_id" in str(error.value)  # the fix


def test_unknown_category_id(tmp_path, small_gt):
    path = write_results(tmp_path, [result(1, 7, [10, 10, 60, 60], 0.9)])
    with pytest.raises(ValueError, match=r"predictions\.json: .*'category_id' .* e\.g\. \[7\]") as error:
        evaluate_coco(small_gt, path)
    assert "coco80_to_91" in str(error.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}, r"entry 1 lacks key\(s\) \['score'\]"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5}, r"entry 1: 'bbox' .* 4 finite numbers"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -5, 5], "score": 0.5}, r"entry 1: 'bbox' .* negative"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": math.nan}, r"entry 1: 'score'"),
        ({"image_id": [1], "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}, r"entry 1: 'image_id'"),
    ],
)
def test_malformed_entry(tmp_path, small_gt, entry, message):
    path = write_results(tmp_path, [result(1, 1, [10, 10, 60, 60], 0.9), entry])
    with pytest.raises(ValueError, match=r"predictions\.json: " + message):
        load_results(path, small_gt)


def test_empty_results_warn_and_score_zero(small_gt):
    # Only one box, 50 * 50 = 2500 px: medium. No small or large objects -> those entries are None, not 0.
    with pytest.warns(UserWarning, match="no detections"):
        metrics = evaluate_coco(small_gt, [])
    assert metrics["AP"] == 0.0
    assert metrics["APm"] == 0.0
    assert metrics["AR100"] == 0.0
    assert metrics["APs"] is None
    assert metrics["APl"] is None
    assert metrics["per_class"] == {"cat": 0.0, "dog": None, "bird": None}


def test_coco80_to_91_known_ids():
    # person = 1; fire hydrant (index 10) = 11 and stop sign (index 11) = 13, as 12 ("street sign") is unused;
    # toothbrush (index 79) = 90.
    assert [coco80_to_91(i) for i in (0, 10, 11, 79)] == [1, 11, 13, 90]
    with pytest.raises(ValueError, match="80"):
        coco80_to_91(80)


def test_yolo_image_id():
    assert yolo_image_id("datasets/coco/images/val2017/000000000139.jpg") == 139
    assert yolo_image_id("VOC/images/test2007/2008_000002.jpg") == "2008_000002"
    assert yolo_image_id("img.png") == "img"


def test_unreadable_json_files_fail_in_one_line_naming_the_file(tmp_path):
    from attnyolo.evaluation.coco import read_coco_json

    binary, broken = tmp_path / "predictions.json", tmp_path / "instances_val.json"
    binary.write_bytes(b"\xff\xfe\x00binary")  # e.g. a checkpoint passed as predictions=
    broken.write_text('{"images": [}')
    with pytest.raises(ValueError, match=rf"^{binary}: not valid JSON \('utf-8' codec can't decode byte 0xff"):
        load_results(binary, {"images": [], "annotations": [], "categories": []})
    with pytest.raises(ValueError, match=rf"^{broken}: not valid JSON \(Expecting value: line 1 column 13"):
        read_coco_json(broken)
