"""Test-set bootstrap of the COCO AP difference between two detectors scored on the same images.

The question it answers: how much would the AP difference between two trained models move if the validation images
had been a different draw from the same population? Each resample draws the images with replacement (the same
draw for both models), re-scores both models on it, and the percentile interval of the B differences is reported
(Efron and Tibshirani, An Introduction to the Bootstrap, 1993, ch. 13). It says nothing about training noise; the
seeds do that (``attnyolo.analysis.statistics``).

The resamples are scored by ``attnyolo.analysis.coco_matches.CocoMatches``, which re-accumulates each model's
pycocotools matches with the image multiplicities as weights instead of re-running pycocotools (its docstring says
how, and where the result equals pycocotools on literally copied images).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.coco import CocoSource, evaluate_images
from ..utils.cli import fail, parse_kv_args, run_tool
from .coco_matches import DEFAULT_METRICS, CocoMatches, check_metrics
from .statistics import interval_note, verdict


def resample_weights(num_images: int, resamples: int, seed: int) -> np.ndarray:
    """Image multiplicities of ``resamples`` draws of ``num_images`` images with replacement.

    Draw b is ``numpy.random.default_rng(seed).integers(0, num_images, size=(resamples, num_images))[b]``, counted
    per image, so the same (seed, image count, resamples) always gives the same draws.

    Args:
        num_images (int): Images in the test set.
        resamples (int): Number of resamples B.
        seed (int): Seed of numpy's default Generator (PCG64).

    Returns:
        (np.ndarray): Shape (resamples, num_images), int64; each row sums to ``num_images``.
    """
    draws = np.random.default_rng(seed).integers(0, num_images, size=(resamples, num_images))
    flat = draws + (np.arange(resamples) * num_images)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * num_images).reshape(resamples, num_images)


def bootstrap_difference(
    coco_gt: CocoSource,
    results_a: str | Path | Sequence[Mapping[str, Any]],
    results_b: str | Path | Sequence[Mapping[str, Any]],
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    metrics: Sequence[str] = DEFAULT_METRICS,
    keep_replicates: bool = False,
) -> dict[str, Any]:
    """Percentile bootstrap interval of the COCO AP difference a - b over resampled test images.

    Each model is matched once by pycocotools (``COCOeval.evaluate()``); each resample re-accumulates the matches
    with image multiplicities as weights (see the module docstring for how, and where that can differ from copying
    images). Resample b uses the same image draw for both models.

    Args:
        coco_gt (COCO | Mapping | str | Path): Ground truth (a pycocotools COCO object, a COCO dict or a JSON path).
        results_a (str | Path | Sequence[Mapping]): Detections of model a in the COCO results format (a
            ``predictions.json`` or its list), checked by ``attnyolo.evaluation.coco.load_results``.
        results_b (str | Path | Sequence[Mapping]): Detections of model b (typically the baseline), the same way.
        resamples (int): Number of bootstrap resamples B (>= 1).
        seed (int): Seed of the resampling (``resample_weights``).
        confidence (float): Level of the percentile interval, in (0, 1).
        metrics (Sequence[str] | str): Names from ``COCO_BOOTSTRAP_METRICS`` (AP, AP50, AP75, APs, APm, APl);
            APs/m/l each add one more accumulation per resample.
        keep_replicates (bool): Also return each resample's values (``a_replicates``, ``b_replicates``).

    Returns:
        (dict): ``resamples``, ``seed``, ``images``, ``confidence``, ``note`` (what the interval covers),
            ``seconds`` and ``cpu_seconds`` (wall and process CPU time of pycocotools' matching of both models,
            of arranging the matches, and of scoring the full set and the resamples), and ``metrics``: name ->
            ``{"a", "b", "diff"`` (on the full test set; None where undefined), ``"ci_low", "ci_high"``
            (percentiles (1 -+ confidence) / 2 of the resampled differences), ``"sd"`` (their standard deviation,
            the bootstrap standard error), ``"undefined"`` (resamples without any object of that size, left out),
            ``"verdict"``}.

    Raises:
        ValueError: Malformed ground truth or results (the message names the file and entry), or bad arguments.

    Examples:
        >>> r = bootstrap_difference("gt.json", "ca/predictions.json", "base/predictions.json")  # doctest: +SKIP
        >>> r["metrics"]["AP"]["diff"], r["metrics"]["AP"]["ci_low"], r["metrics"]["AP"]["verdict"]  # doctest: +SKIP
        (0.0123, -0.0041, 'no difference detected (CI contains 0)')
    """
    metrics = check_metrics(metrics)
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer (e.g. 1000), got {resamples!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}.")
    phases = ("matching", "arranging", "resampling")
    wall, cpu = dict.fromkeys(phases, 0.0), dict.fromkeys(phases, 0.0)

    def timed(phase, function, *args):
        start = (time.perf_counter(), time.process_time())
        value = function(*args)
        wall[phase] += time.perf_counter() - start[0]
        cpu[phase] += time.process_time() - start[1]
        return value

    # One model at a time: a COCOeval's evalImgs on a COCO-sized set take gigabytes, the arranged matches far less.
    # The ground truth is parsed once; COCOeval resets the flags it writes into it on each evaluation.
    evaluator = timed("matching", evaluate_images, coco_gt, results_a)
    ground_truth = evaluator.cocoGt
    matches_a = timed("arranging", CocoMatches, evaluator, metrics)
    del evaluator  # before matching b, so only one set of evalImgs is alive at a time
    evaluator = timed("matching", evaluate_images, ground_truth, results_b)
    matches_b = timed("arranging", CocoMatches, evaluator, metrics)
    del evaluator
    num_images = len(matches_a.image_ids)
    full = np.ones((1, num_images))
    full_a, full_b = timed("resampling", matches_a.scores, full), timed("resampling", matches_b.scores, full)
    weights = timed("resampling", resample_weights, num_images, int(resamples), int(seed))
    reps_a, reps_b = timed("resampling", matches_a.scores, weights), timed("resampling", matches_b.scores, weights)

    tail = 100 * (1 - confidence) / 2
    result: dict[str, Any] = {
        "resamples": int(resamples),
        "seed": int(seed),
        "images": num_images,
        "confidence": confidence,
        "note": interval_note("bootstrap", confidence),
        "seconds": wall,
        "cpu_seconds": cpu,
        "metrics": {},
    }
    for name in metrics:
        a, b = _number(full_a[name][0]), _number(full_b[name][0])
        diffs = reps_a[name] - reps_b[name]
        defined = diffs[~np.isnan(diffs)]
        low = high = sd = None
        if defined.size:
            low, high = (float(v) for v in np.percentile(defined, [tail, 100 - tail]))
            sd = float(defined.std(ddof=1)) if defined.size > 1 else None
        entry = {
            "a": a,
            "b": b,
            "diff": None if a is None or b is None else a - b,
            "ci_low": low,
            "ci_high": high,
            "sd": sd,
            "undefined": int(diffs.size - defined.size),
            "verdict": verdict(low, high),
        }
        if keep_replicates:
            entry["a_replicates"], entry["b_replicates"] = reps_a[name].tolist(), reps_b[name].tolist()
        result["metrics"][name] = entry
    return result


def _number(value: float) -> float | None:
    """A float, or None for NaN (a metric pycocotools leaves undefined, its -1)."""
    return None if math.isnan(value) else float(value)


def synthetic_detection_set(
    images: int = 5000,
    classes: int = 80,
    detections: int = 100,
    seed: int = 0,
    crowd: float = 0.01,
    empty_images: float = 0.05,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A synthetic COCO-like ground truth and two detectors' results on it, for tests and the bootstrap benchmark.

    Objects per image follow a Poisson law with COCO val2017's mean (36,781 objects on 5,000 images, about 7.4),
    with square-root sizes log-uniform in [6, 300] px on 640 x 480 images, so all three COCO size ranges occur. Each
    detector finds a share of the objects with jittered boxes and scores, adds a lower-scored duplicate for some,
    and fills every image up to ``detections`` boxes with random false positives. Detector a finds more objects
    with tighter boxes than detector b. Scores are continuous, so no two detections tie.

    Args:
        images (int): Number of images (ids 1..images).
        classes (int): Number of categories (ids 1..classes).
        detections (int): Detections per image, per detector.
        seed (int): Seed of numpy's default Generator.
        crowd (float): Share of objects marked ``iscrowd`` (ignored by COCOeval).
        empty_images (float): Share of images without any object.

    Returns:
        (tuple): ``(ground_truth, results_a, results_b)``: a COCO ground-truth dict and two lists in the COCO
            results format.
    """
    rng = np.random.default_rng(seed)
    width, height = 640.0, 480.0
    counts = rng.poisson(36781 / 5000, images) * (rng.random(images) >= empty_images)
    image_of = np.repeat(np.arange(images), counts)
    n = image_of.size
    side = np.exp(rng.uniform(np.log(6), np.log(300), n))
    aspect = np.exp(rng.uniform(-0.5, 0.5, n))
    w, h = np.minimum(side * np.sqrt(aspect), width), np.minimum(side / np.sqrt(aspect), height)
    boxes = np.stack([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h], axis=1)
    category = rng.integers(0, classes, n)
    is_crowd = rng.random(n) < crowd
    ground_truth = {
        "images": [{"id": i + 1, "file_name": f"{i + 1}.jpg", "width": 640, "height": 480} for i in range(images)],
        "annotations": [
            {
                "id": j + 1,
                "image_id": int(image_of[j]) + 1,
                "category_id": int(category[j]) + 1,
                "bbox": boxes[j].tolist(),
                "area": float(boxes[j, 2] * boxes[j, 3]),
                "iscrowd": int(is_crowd[j]),
            }
            for j in range(n)
        ],
        "categories": [{"id": c + 1, "name": f"class{c}", "supercategory": ""} for c in range(classes)],
    }

    def detector(found: float, jitter: float) -> list[dict[str, Any]]:
        hit = rng.random(n) < found
        twice = hit & (rng.random(n) < 0.2)
        source = np.concatenate([np.flatnonzero(hit), np.flatnonzero(twice)])
        noise = rng.normal(0, jitter, (source.size, 4)) * boxes[source][:, [2, 3, 2, 3]]
        found_boxes = boxes[source] + noise
        found_boxes[:, 2:] = np.abs(found_boxes[:, 2:])
        found_scores = rng.uniform(0.3, 1.0, source.size)
        found_scores[np.flatnonzero(hit).size :] *= 0.5  # duplicates score lower than the first find
        # Random false positives fill each image up to `detections` (the lowest-scored finds are cut if needed).
        fill_image = np.repeat(np.arange(images), detections)
        fw = np.exp(rng.uniform(np.log(6), np.log(300), fill_image.size))
        fh = fw * np.exp(rng.uniform(-0.5, 0.5, fill_image.size))
        fill_boxes = np.stack([rng.uniform(0, width - 6, fw.size), rng.uniform(0, height - 6, fw.size), fw, fh], 1)
        image = np.concatenate([image_of[source], fill_image])
        cls = np.concatenate([category[source], rng.integers(0, classes, fill_image.size)])
        box = np.concatenate([found_boxes, fill_boxes])
        score = np.concatenate([found_scores, rng.uniform(0.0, 0.6, fill_image.size)])
        order = np.lexsort((-score, image))
        rank = np.arange(order.size) - np.searchsorted(image[order], image[order])
        keep = order[rank < detections]
        return [
            {
                "image_id": int(image[d]) + 1,
                "category_id": int(cls[d]) + 1,
                "bbox": box[d].tolist(),
                "score": float(score[d]),
            }
            for d in keep
        ]

    return ground_truth, detector(0.8, 0.08), detector(0.7, 0.12)


def benchmark_bootstrap(
    images: int = 5000,
    classes: int = 80,
    detections: int = 100,
    resamples: int = 1000,
    seed: int = 0,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, Any]:
    """Time ``bootstrap_difference`` on a ``synthetic_detection_set`` (by default COCO-sized) and report its memory.

    Args:
        images (int): Images in the synthetic set.
        classes (int): Categories.
        detections (int): Detections per image and model.
        resamples (int): Bootstrap resamples B.
        seed (int): Seed of the data and of the resampling.
        metrics (Sequence[str] | str): As for ``bootstrap_difference``.

    Returns:
        (dict): ``sizes`` (images, classes, objects, detections per model), ``seconds`` (wall clock of generating
            the data and of the bootstrap's phases, see ``bootstrap_difference``), ``cpu_seconds`` (this process's
            CPU time of the same phases, which a machine shared with other work inflates less than wall time),
            ``peak_rss_mib`` (peak resident memory, from ``resource.getrusage``; ``peak_rss_mib_before``: the same
            before the benchmark started, i.e. the interpreter with the package imported) and ``result`` (the
            bootstrap's output).
    """
    import resource  # POSIX only, and only the benchmark needs it

    imported_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    ground_truth, results_a, results_b = synthetic_detection_set(images, classes, detections, seed)
    generated, generated_cpu = time.perf_counter() - start, time.process_time() - cpu
    result = bootstrap_difference(ground_truth, results_a, results_b, resamples=resamples, seed=seed, metrics=metrics)
    return {
        "sizes": {
            "images": images,
            "classes": classes,
            "objects": len(ground_truth["annotations"]),
            "detections_per_model": len(results_a),
        },
        "seconds": {"generating": generated, **result["seconds"]},
        "cpu_seconds": {"generating": generated_cpu, **result["cpu_seconds"]},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_mib_before": imported_rss,
        "result": result,
    }


_USAGE = """Benchmark the test-set bootstrap on a synthetic COCO-sized set (docs/results.md, "Test-set bootstrap").

Usage:
    python -m attnyolo.analysis.bootstrap                      # 5,000 images, 80 classes, 100 detections, B = 1000
    python -m attnyolo.analysis.bootstrap images=500 resamples=200 metrics=AP,AP50,AP75,APs,APm,APl
Keys: images, classes, detections (per image and model), resamples, seed, metrics (comma list of AP, AP50, AP75,
APs, APm, APl). Prints the timings, peak memory and the intervals as JSON."""


def main(argv: Sequence[str]) -> int:
    """Run ``benchmark_bootstrap`` with ``key=value`` arguments and print its result as JSON.

    Args:
        argv (Sequence[str]): Arguments without the program name.

    Returns:
        (int): 0.

    Raises:
        SystemExit: 2 after one line naming a key whose value is not a whole number (or a metric not known).
    """
    defaults = {
        "images": 5000,
        "classes": 80,
        "detections": 100,
        "resamples": 1000,
        "seed": 0,
        "metrics": "AP,AP50,AP75",
    }
    args = parse_kv_args(argv, defaults, _USAGE)
    metrics = args.pop("metrics")
    metrics = ",".join(map(str, metrics)) if isinstance(metrics, (list, tuple)) else str(metrics)
    for key, value in args.items():
        least = 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            fail(f"{key}={value!r} is not a whole number >= {least}. Fix: e.g. {key}={defaults[key]}.")
    try:
        check_metrics(metrics)
    except ValueError as error:
        fail(f"metrics={metrics!r}: {error}")
    report = benchmark_bootstrap(**args, metrics=metrics)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
