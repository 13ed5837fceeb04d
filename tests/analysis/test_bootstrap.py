"""Test-set bootstrap of COCO AP differences: exact against pycocotools, and constructed cases with known answers."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from attnyolo.analysis.bootstrap import bootstrap_difference, resample_weights, synthetic_detection_set
from attnyolo.analysis.bootstrap import main as bootstrap_main
from attnyolo.analysis.coco_matches import COCO_BOOTSTRAP_METRICS, CocoMatches, _recall_level
from attnyolo.analysis.statistics import BETTER, NO_DIFFERENCE
from attnyolo.evaluation.coco import evaluate_images

ALL_METRICS = tuple(COCO_BOOTSTRAP_METRICS)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # pycocotools' recThrs


def _pycocotools_stats(ground_truth, results):
    """COCOeval.summarize()'s AP, AP50, AP75, APs, APm, APl (NaN for its -1), from a fresh evaluation."""
    evaluator = evaluate_images(ground_truth, results)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.accumulate()
        evaluator.summarize()
    return {name: (np.nan if evaluator.stats[i] < 0 else evaluator.stats[i]) for i, name in enumerate(ALL_METRICS)}


def _awkward_set(seed):
    """A small synthetic set with crowd objects, images without objects, a category with detections but no objects
    and a category with objects but no detections."""
    gt, results_a, _ = synthetic_detection_set(
        images=40, classes=6, detections=12, seed=seed, crowd=0.1, empty_images=0.1
    )
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] != 2]  # detections only
    results_a = [r for r in results_a if r["category_id"] != 3]  # objects only
    return gt, results_a


def _copied(gt, results, weights):
    """The data set where image i (in id order) appears weights[i] times, each copy under a new id."""
    by_image = {}
    for key, items in (("annotations", gt["annotations"]), ("results", results)):
        for item in items:
            by_image.setdefault((key, item["image_id"]), []).append(item)
    images, annotations, copied_results = [], [], []
    for image, count in zip(sorted(gt["images"], key=lambda im: im["id"]), weights):
        for _ in range(int(count)):
            new_id = len(images) + 1
            images.append({**image, "id": new_id})
            for a in by_image.get(("annotations", image["id"]), []):
                annotations.append({**a, "image_id": new_id, "id": len(annotations) + 1})
            copied_results += [{**r, "image_id": new_id} for r in by_image.get(("results", image["id"]), [])]
    return {"images": images, "annotations": annotations, "categories": gt["categories"]}, copied_results


# ---------------------------------------------------------------------------------------------- exact vs pycocotools
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_weights_one_equals_pycocotools(seed):
    gt, results = _awkward_set(seed)
    matches = CocoMatches(evaluate_images(gt, results), ALL_METRICS)
    got = matches.scores(np.ones((1, len(matches.image_ids))))
    expected = _pycocotools_stats(gt, results)
    for name in ALL_METRICS:
        assert got[name][0] == pytest.approx(expected[name], abs=1e-9, nan_ok=True), name


def test_all_weights_one_equals_pycocotools_on_a_larger_set_with_many_ranks():
    gt, results_a, results_b = synthetic_detection_set(images=80, classes=8, detections=30, seed=7)
    for results in (results_a, results_b):
        matches = CocoMatches(evaluate_images(gt, results), ALL_METRICS)
        got = matches.scores(np.ones((1, len(matches.image_ids))))
        expected = _pycocotools_stats(gt, results)
        assert {n: got[n][0] for n in ALL_METRICS} == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 3])
def test_integer_weights_equal_pycocotools_on_copied_images(seed):
    # The synthetic scores are continuous, so no two detections tie: the weighted accumulation must then equal
    # pycocotools on the data set with each image copied as many times as it was drawn.
    gt, results = _awkward_set(seed)
    matches = CocoMatches(evaluate_images(gt, results), ALL_METRICS)
    weights = resample_weights(len(matches.image_ids), 3, seed)
    got = matches.scores(weights)
    for row in range(3):
        expected = _pycocotools_stats(*_copied(gt, results, weights[row]))
        for name in ALL_METRICS:
            assert got[name][row] == pytest.approx(expected[name], abs=1e-9, nan_ok=True), (row, name)


def test_recall_level_is_pycocotools_recall_test():
    # pycocotools reaches threshold r at the first rank with tp / npig >= recThrs[r]; the level of a recall is the
    # number of thresholds it reaches, for every recall tp / npig that can occur.
    for npig in [1, 2, 3, 7, 10, 33, 100, 101, 997, 5000, 36781]:
        recall = np.arange(npig + 1) / np.float64(npig)
        assert np.array_equal(
            _recall_level(recall, RECALL_THRESHOLDS), np.searchsorted(RECALL_THRESHOLDS, recall, "right")
        )
    assert _recall_level(np.array([0.0, 1.0]), RECALL_THRESHOLDS).tolist() == [1, 101]


# ------------------------------------------------------------------------------------------- a case worked by hand
def _hand_case():
    """Two images with one 10 x 10 object each. Model a: image 1 finds it (0.9) and adds a false box (0.8); image 2
    puts a false box first (0.85), then finds it (0.7). Model b is model a without the find in image 2."""
    gt = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}
            for i in (1, 2)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }

    def det(image, box, score):
        return {"image_id": image, "category_id": 1, "bbox": box, "score": score}

    hit, miss = [0, 0, 10, 10], [50, 50, 10, 10]
    a = [det(1, hit, 0.9), det(1, miss, 0.8), det(2, miss, 0.85), det(2, hit, 0.7)]
    return gt, a, a[:3]


def test_hand_case_per_resample_values():
    # Weights (1, 1): ranks 0.9 TP, 0.85 FP, 0.8 FP, 0.7 TP over 2 objects: recall .5 .5 .5 1, precision 1 .5 1/3 .5;
    # the envelope is 1 for the 51 thresholds 0.00..0.50 and .5 for the other 50: AP = (51 + 25) / 101.
    # (2, 0): image 1 twice: 2 TPs first, recall 1 at precision 1: AP = 1.
    # (0, 2): image 2 twice: 2 FPs then 2 TPs, recall 1 at precision 2/4: AP = .5.
    # (3, 1): TP x3 (recall .75, precision 1), FP, FP x3, TP (recall 1, precision 4/8): 76 thresholds at 1, 25 at .5.
    # Every box is exact (IoU 1), so AP50 and AP75 equal AP.
    gt, a, b = _hand_case()
    weights = np.array([[1, 1], [2, 0], [0, 2], [3, 1]])
    expected_a = [76 / 101, 1.0, 0.5, 88.5 / 101]
    expected_b = [51 / 101, 1.0, 0.0, 76 / 101]  # b never finds the object of image 2
    for results, expected in ((a, expected_a), (b, expected_b)):
        got = CocoMatches(evaluate_images(gt, results)).scores(weights)
        for name in ("AP", "AP50", "AP75"):
            assert got[name] == pytest.approx(expected, abs=1e-12), name


def test_hand_case_bootstrap_interval():
    # A resample of 2 images is (2, 0), (1, 1) or (0, 2) with probabilities 1/4, 1/2, 1/4, and a - b is then 0,
    # 25/101 and 1/2: the 2.5% and 97.5% percentiles of 1000 resamples are 0 and 1/2, so the interval touches 0.
    gt, a, b = _hand_case()
    result = bootstrap_difference(gt, a, b, resamples=1000, seed=5, keep_replicates=True)
    ap = result["metrics"]["AP"]
    assert ap["a"] == pytest.approx(76 / 101, abs=1e-12) and ap["b"] == pytest.approx(51 / 101, abs=1e-12)
    assert ap["diff"] == pytest.approx(25 / 101, abs=1e-12)
    draws = resample_weights(2, 1000, 5)
    by_draw = {(2, 0): 0.0, (1, 1): 25 / 101, (0, 2): 0.5}
    expected = [by_draw[tuple(row)] for row in draws]
    assert np.subtract(ap["a_replicates"], ap["b_replicates"]) == pytest.approx(expected, abs=1e-12)
    assert 0.2 < np.mean(draws[:, 0] == 2) < 0.3
    assert ap["ci_low"] == 0.0 and ap["ci_high"] == pytest.approx(0.5, abs=1e-12)
    assert ap["verdict"] == NO_DIFFERENCE
    assert (result["resamples"], result["seed"], result["images"]) == (1000, 5, 2)


# ----------------------------------------------------------------------------------------------- constructed cases
def test_identical_predictions_differ_by_exactly_zero_in_every_resample():
    gt, results = _awkward_set(4)
    result = bootstrap_difference(
        gt, results, json.loads(json.dumps(results)), resamples=50, keep_replicates=True, metrics=ALL_METRICS
    )
    for name, m in result["metrics"].items():
        assert m["diff"] == 0.0 and m["ci_low"] == 0.0 and m["ci_high"] == 0.0, name
        assert np.array_equal(np.asarray(m["a_replicates"]), np.asarray(m["b_replicates"]), equal_nan=True)
        assert m["verdict"] == NO_DIFFERENCE


def test_a_model_better_on_every_image_has_an_interval_above_zero():
    # Every image holds two objects; a finds both exactly, b finds one and puts its other box beside the second.
    rng = np.random.default_rng(0)
    images = 30
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}, {"id": 2, "name": "other"}]}
    a, b = [], []
    for i in range(1, images + 1):
        gt["images"].append({"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480})
        for j, box in enumerate(([10.0, 10.0, 50.0, 40.0], [300.0, 200.0, 120.0, 90.0])):
            cat = 1 + (i + j) % 2
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i,
                    "category_id": cat,
                    "bbox": box,
                    "area": 1.0,
                    "iscrowd": 0,
                }
            )
            score = float(rng.uniform(0.2, 1.0))
            a.append({"image_id": i, "category_id": cat, "bbox": box, "score": score})
            b.append(
                {
                    "image_id": i,
                    "category_id": cat,
                    "bbox": box if j == 0 else [500.0, 10.0, 60.0, 60.0],
                    "score": score,
                }
            )
    result = bootstrap_difference(gt, a, b, resamples=200, seed=1, keep_replicates=True)
    for name, m in result["metrics"].items():
        assert m["a"] == 1.0 and m["b"] < 1.0
        assert min(m["a_replicates"]) == 1.0 and max(m["b_replicates"]) < 1.0
        assert m["ci_low"] > 0 and m["verdict"] == BETTER, name


def test_one_image_gives_the_same_value_in_every_resample():
    gt, a, b = synthetic_detection_set(images=1, classes=3, detections=20, seed=2, empty_images=0.0)
    result = bootstrap_difference(gt, a, b, resamples=20, keep_replicates=True)
    assert result["images"] == 1
    for m in result["metrics"].values():
        assert set(m["a_replicates"]) == {m["a"]} and set(m["b_replicates"]) == {m["b"]}
        assert m["ci_low"] == m["ci_high"] == pytest.approx(m["diff"], abs=1e-15)


def test_bootstrap_reports_full_set_values_equal_to_pycocotools_and_is_reproducible():
    gt, a, b = synthetic_detection_set(images=30, classes=4, detections=15, seed=9)
    first = bootstrap_difference(gt, a, b, resamples=30, seed=3, metrics=ALL_METRICS)
    again = bootstrap_difference(gt, a, b, resamples=30, seed=3, metrics=ALL_METRICS)
    expected_a, expected_b = _pycocotools_stats(gt, a), _pycocotools_stats(gt, b)
    for name, m in first["metrics"].items():
        assert m["a"] == pytest.approx(expected_a[name], abs=1e-9)
        assert m["b"] == pytest.approx(expected_b[name], abs=1e-9)
        assert m["ci_low"] <= m["ci_high"] and m == again["metrics"][name]
    assert "test images" in first["note"]


def test_resample_weights_are_seeded_draws_with_replacement():
    w = resample_weights(7, 500, 11)
    assert w.shape == (500, 7) and (w.sum(axis=1) == 7).all() and (w >= 0).all()
    assert np.array_equal(w, resample_weights(7, 500, 11)) and not np.array_equal(w, resample_weights(7, 500, 12))
    assert w.mean() == pytest.approx(1.0) and 0.1 < (w == 0).mean() < 0.6  # (6/7)^7 = 0.34 of the cells are 0


# ---------------------------------------------------------------------------------------------------- bad input
def test_bad_results_file_fails_with_the_projects_message(tmp_path):
    gt, a, _ = _hand_case()
    broken = tmp_path / "predictions.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match=r"predictions.json: not valid JSON"):
        bootstrap_difference(gt, a, broken, resamples=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("AP", "mAP")}, r"use names from \['AP', 'AP50'"),
        ({"resamples": 0}, "resamples must be a positive integer"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"confidence": 1.0}, "strictly between 0 and 1"),
    ],
)
def test_bad_arguments_fail_with_one_line(kwargs, match):
    gt, a, b = _hand_case()
    with pytest.raises(ValueError, match=match):
        bootstrap_difference(gt, a, b, **kwargs)


def test_metrics_without_objects_are_none_and_a_model_without_detections_scores_zero():
    # The hand case's objects are 10 x 10 (COCO "small"): APm and APl have no object in any resample, as
    # pycocotools' -1; a model with no detections has AP 0 where there are objects.
    gt, a, _ = _hand_case()
    with pytest.warns(UserWarning, match="holds no detections"):
        result = bootstrap_difference(gt, a, [], resamples=20, metrics=("AP", "APs", "APm", "APl"))
    assert result["metrics"]["APs"]["b"] == 0.0 and result["metrics"]["APs"]["a"] == pytest.approx(76 / 101)
    for name in ("APm", "APl"):
        m = result["metrics"][name]
        assert m["a"] is None and m["b"] is None and m["diff"] is None and m["undefined"] == 20
        assert m["ci_low"] is None and m["verdict"].startswith("no interval")


@pytest.mark.parametrize(
    ("arg", "named"),
    [("resamples=abc", "resamples='abc'"), ("images=0", "images=0"), ("seed=-1", "seed=-1"), ("metrics=APx", "APx")],
)
def test_benchmark_entry_refuses_a_bad_value_in_one_line(arg, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bootstrap_main([arg])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0], err
    assert "Fix: " in err[0] or "use names from" in err[0]  # what to write instead
