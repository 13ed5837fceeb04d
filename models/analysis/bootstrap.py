"""Test-set bootstrap of the COCO AP difference between two detectors scored on the same images.

The question it answers: how much would the AP difference between two trained models move if the validation images
had been a different draw from the same population? Each resample draws the images with replacement (the same
draw for both models), re-scores both models on it, and the percentile interval of the B differences is reported
(Efron and Tibshirani, An Introduction to the Bootstrap, 1993, ch. 13). It says nothing about training noise; the
seeds do that (``attnyolo.analysis.statistics``).

How it stays fast: pycocotools' per-image matching (``COCOeval.evaluate()``: which detection matches which object
at each IoU threshold, and which are ignored) does not depend on the other images, so it runs once per model. A
resample only changes how many times each image counts, so it is scored by re-accumulating those matches with the
image multiplicities as weights, exactly as ``COCOeval.accumulate()`` does with every weight 1: detections of one
category sorted by score once (``np.argsort(-scores, kind="mergesort")`` over the per-image lists in image order, as
pycocotools does), weighted cumulative true and false positives, the weighted count of objects that are not
ignored, precision ``tp / (tp + fp + np.spacing(1))`` and recall ``tp / npig``, pycocotools' 101 recall thresholds
and its right-to-left precision envelope. Two facts make it vectorise:

- The envelope's value at a recall threshold is the largest precision at or after the first detection reaching that
  recall, and that largest precision is always reached at a true positive (a false or ignored detection only lowers
  or repeats the precision before it). So only true positives are kept as events, and the detections between two of
  them enter as one block count per image (a sparse matrix times the weights).
- Recall only rises along a category's sorted list, so the events that reach exactly the same number of recall
  thresholds form runs; the envelope at threshold r is the largest precision over the runs that reach more than r
  thresholds. With all categories (and all replicates of a batch) laid end to end, that is one
  ``np.maximum.reduceat`` over the runs and a running maximum over the 101 levels.

Exactness: with every weight 1 the order of the detections is pycocotools' own, ties included, and the result
equals ``COCOeval.accumulate()``/``summarize()`` (tested to 1e-9; the remaining difference is the order of the final
mean). With integer weights it equals pycocotools run on the data set where each image is copied as many times as
it was drawn (copies under consecutive new ids), except where detections of one category in one image have exactly
equal scores. A weighted image enters the sorted list detection by detection, each with its multiplicity (all
copies of the first tied detection, then all copies of the second), whereas literal copies are sorted copy by copy
(the first copy's tied detections, then the second copy's). The two orders differ only inside that run of equal
scores, so only recall thresholds first reached inside the run can get a different precision; and the order inside
a run of equal scores is arbitrary in pycocotools as well (it breaks ties by image id and detection order, so
renumbering the images moves its AP in the same way). Untied detections give identical results, and so do copies of
one untied detection, which tie only with each other: within a run of true positives precision only rises and the
envelope keeps the run's last value (the tests check both against literal copies). Ultralytics' ``save_json``
rounds scores to 5 decimals, so ties within an image and class do occur in real results files, rarely.
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
from pycocotools.cocoeval import COCOeval
from scipy import sparse

from ..evaluation.coco import CocoSource, evaluate_images
from ..utils.cli import parse_kv_args
from .statistics import interval_note, verdict

# Metric -> (index into COCOeval's default areaRng: all, small, medium, large; IoU threshold or None for the mean
# over all ten). COCOeval.summarize() reads the same cells, with maxDets 100.
COCO_BOOTSTRAP_METRICS = {
    "AP": (0, None),
    "AP50": (0, 0.5),
    "AP75": (0, 0.75),
    "APs": (1, None),
    "APm": (2, None),
    "APl": (3, None),
}
DEFAULT_METRICS = ("AP", "AP50", "AP75")
_CELLS_PER_BATCH = 1 << 20  # work-array cells per batch of replicates: 8 MB per float64 array


class CocoMatches:
    """One model's pycocotools matches, arranged to re-accumulate COCO AP for any weighting of the images.

    Build it from a ``COCOeval`` after ``evaluate()`` (``attnyolo.evaluation.coco.evaluate_images``), then call
    ``scores(weights)`` with one row of image multiplicities per replicate.

    Args:
        evaluator (COCOeval): Evaluated with iouType ``bbox`` and pycocotools' default area ranges and maxDets.
        metrics (Sequence[str]): Names from ``COCO_BOOTSTRAP_METRICS``; only the area ranges they need are kept.

    Attributes:
        image_ids (list): The evaluator's image ids, in the order of the weight columns.
        metrics (tuple[str, ...]): The metrics ``scores`` returns.

    Examples:
        >>> matches = CocoMatches(evaluate_images("instances_val.json", "predictions.json"))  # doctest: +SKIP
        >>> matches.scores(np.ones((1, len(matches.image_ids))))["AP"]  # doctest: +SKIP
        array([0.3731...])
    """

    def __init__(self, evaluator: COCOeval, metrics: Sequence[str] = DEFAULT_METRICS):
        """Arrange the evaluator's ``evalImgs`` into sorted events, block counts and per-image object counts."""
        self.metrics = _check_metrics(metrics)
        params = evaluator.params
        if not evaluator.evalImgs or params.iouType != "bbox" or not params.useCats:
            raise ValueError("CocoMatches needs a COCOeval with iouType 'bbox' and useCats on, after evaluate().")
        if len(params.areaRng) != 4 or len(params.recThrs) != 101:
            raise ValueError("CocoMatches needs pycocotools' default area ranges and 101 recall thresholds.")
        self.image_ids = list(params.imgIds)
        self.rec_thresholds = np.asarray(params.recThrs, dtype=float)
        iou_thresholds = np.asarray(params.iouThrs, dtype=float)
        self._metric_cells = {}
        for name in self.metrics:
            area, iou = COCO_BOOTSTRAP_METRICS[name]
            hits = None if iou is None else np.flatnonzero(np.isclose(iou_thresholds, iou))
            if hits is not None and hits.size != 1:
                raise ValueError(
                    f"{name} needs the IoU threshold {iou} among COCOeval's iouThrs {list(iou_thresholds)}."
                )
            self._metric_cells[name] = (area, None if hits is None else int(hits[0]))
        self._areas = sorted({area for area, _ in self._metric_cells.values()})
        self._prepare(evaluator)

    def _prepare(self, evaluator: COCOeval) -> None:
        """Build the sparse block matrices and event arrays from ``evalImgs`` (see the module docstring)."""
        params = evaluator.params
        num_cats, num_areas, num_images = len(params.catIds), len(params.areaRng), len(params.imgIds)
        num_t = len(params.iouThrs)
        max_det = params.maxDets[-1]
        self._num_t, self._num_cats = num_t, num_cats
        gt_rows, gt_cols, gt_vals = [], [], []
        fix_rows, fix_cols, var_rows, var_cols = [], [], [], []
        event_img, event_u, event_ak, seg_start, ak_u_start = [], [], [], [], []
        n_u = n_e = 0
        for slot, area in enumerate(self._areas):
            for k in range(num_cats):
                ak = slot * num_cats + k
                base = k * num_areas * num_images + area * num_images
                found = [(i, e) for i, e in enumerate(evaluator.evalImgs[base : base + num_images]) if e is not None]
                ak_u_start.append(n_u)
                for i, e in found:
                    npig = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
                    if npig:
                        gt_rows.append(ak)
                        gt_cols.append(i)
                        gt_vals.append(npig)
                scores = np.concatenate([np.asarray(e["dtScores"][0:max_det], dtype=float) for _, e in found] or [[]])
                if not scores.size:
                    seg_start.extend([n_e] * num_t)
                    continue
                # The order COCOeval.accumulate() uses: per-image lists in image order, then a stable sort by score.
                order = np.argsort(-scores, kind="mergesort")
                image = np.concatenate([np.full(len(e["dtScores"][0:max_det]), i) for i, e in found])[order]
                matched = np.concatenate([e["dtMatches"][:, 0:max_det] for _, e in found], axis=1)[:, order] != 0
                ignored = np.concatenate([e["dtIgnore"][:, 0:max_det] for _, e in found], axis=1)[:, order] != 0
                counted = ~ignored
                true_pos = matched & counted
                fixed = counted.all(axis=0)  # counted at every IoU threshold: one cumulative count serves them all
                variable = counted.any(axis=0) & ~fixed
                union = np.flatnonzero(true_pos.any(axis=0))
                if union.size:
                    pos = np.flatnonzero(fixed[: union[-1] + 1])
                    fix_rows.append(n_u + np.searchsorted(union, pos))
                    fix_cols.append(image[pos])
                for t in range(num_t):
                    seg_start.append(n_e)
                    events = np.flatnonzero(true_pos[t])
                    if not events.size:
                        continue
                    event_img.append(image[events])
                    event_u.append(n_u + np.searchsorted(union, events))
                    event_ak.append(np.full(events.size, ak))
                    pos = np.flatnonzero(variable[: events[-1] + 1] & counted[t, : events[-1] + 1])
                    if pos.size:
                        var_rows.append(n_e + np.searchsorted(events, pos))
                        var_cols.append(image[pos])
                    n_e += events.size
                n_u += union.size

        def matrix(rows, cols, vals, shape):
            rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
            cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
            vals = np.ones(rows.size) if vals is None else np.asarray(vals, dtype=float)
            return sparse.csr_matrix((vals, (rows, cols)), shape=shape)  # duplicates are summed

        num_ak = len(self._areas) * num_cats
        self._gt = matrix(
            [np.asarray(gt_rows, dtype=np.int64)], [np.asarray(gt_cols, dtype=np.int64)], gt_vals, (num_ak, num_images)
        )
        self._fixed = matrix(fix_rows, fix_cols, None, (n_u, num_images))
        self._variable = matrix(var_rows, var_cols, None, (n_e, num_images))
        self._num_events, self._num_union = n_e, n_u
        self._event_img = np.concatenate(event_img) if event_img else np.zeros(0, dtype=np.int64)
        self._event_u = np.concatenate(event_u) if event_u else np.zeros(0, dtype=np.int64)
        self._event_ak = np.concatenate(event_ak) if event_ak else np.zeros(0, dtype=np.int64)
        self._seg_start = np.asarray(seg_start, dtype=np.int64)
        self._seg_end = np.append(self._seg_start[1:], n_e)
        self._event_seg = np.repeat(np.arange(self._seg_start.size), self._seg_end - self._seg_start)
        self._ak_u_start = np.asarray(ak_u_start, dtype=np.int64)

    def scores(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """COCO metrics of this model for each row of image weights.

        Args:
            weights (np.ndarray): Shape (replicates, images), non-negative integers: how many times each image (in
                the order of ``image_ids``) counts. A row of ones is the plain evaluation.

        Returns:
            (dict[str, np.ndarray]): Metric name -> float array of shape (replicates,); NaN where no category has
                an object that is not ignored in that replicate (pycocotools' -1).
        """
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 2 or weights.shape[1] != len(self.image_ids):
            raise ValueError(f"weights must have shape (replicates, {len(self.image_ids)}), got {weights.shape}.")
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights must be finite and non-negative (how many times each image counts).")
        # Per replicate the work arrays hold one value per event and one per (segment, recall level).
        cells = max(self._num_events, self._seg_start.size * (self.rec_thresholds.size + 1), 1)
        batch = max(1, _CELLS_PER_BATCH // cells)
        parts = [self._score_batch(weights[i : i + batch]) for i in range(0, weights.shape[0], batch)]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.metrics}

    def _score_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``scores`` for one batch of weight rows (all arrays are replicates x events, row-major)."""
        nb, num_r = weights.shape[0], self.rec_thresholds.size
        num_seg = self._seg_start.size
        columns = np.ascontiguousarray(weights.T)
        npig = np.asarray(self._gt @ columns).T  # (nb, areas x categories)

        # Cumulative weighted true positives within each segment (one category, area range and IoU threshold).
        tp = _segment_cumsum(np.take(weights, self._event_img, axis=1), self._seg_start)

        # Counted detections (true and false positives) up to each event: the fixed ones through the union rows of
        # their category, the ones counted at some IoU thresholds only through their own segment's rows.
        fixed = _segment_cumsum(np.asarray(self._fixed @ columns).T, self._ak_u_start)
        counted = np.take(fixed, self._event_u, axis=1)
        if self._variable.nnz:
            counted += _segment_cumsum(np.asarray(self._variable @ columns).T, self._seg_start)

        # Precision and recall at each event, as pycocotools computes them (tp + fp is the counted total, exact in
        # float64), and how many recall thresholds each event's recall reaches.
        counted += np.spacing(1)
        precision = np.divide(tp, counted, out=counted)
        with np.errstate(invalid="ignore", divide="ignore"):  # segments without objects: excluded below
            recall = np.divide(tp, np.take(npig, self._event_ak, axis=1), out=tp)
        level = _recall_level(recall, self.rec_thresholds)

        # The envelope at threshold r is the largest precision of the events reaching it, i.e. with level > r. The
        # levels rise along each segment, so events of equal (replicate, segment, level) are runs: one reduceat gives
        # each run's largest precision, and a right-to-left running maximum over the levels gives the envelope.
        table = np.zeros((nb, num_seg, num_r + 1))
        if self._num_events:
            cell = level + (self._event_seg * (num_r + 1))[None, :]
            cell += (np.arange(nb) * (num_seg * (num_r + 1)))[:, None]
            cell = cell.ravel()
            starts = np.flatnonzero(np.concatenate(([True], cell[1:] != cell[:-1])))
            table.ravel()[cell[starts]] = np.maximum.reduceat(precision.ravel(), starts)
        envelope = np.maximum.accumulate(table[:, :, :0:-1], axis=2)  # levels R..1; the mean over r needs no order
        per_t = envelope.mean(axis=2).reshape(nb, len(self._areas), self._num_cats, self._num_t)

        valid = (npig > 0).reshape(nb, len(self._areas), self._num_cats)
        out = {}
        for name, (area, t_index) in self._metric_cells.items():
            slot = self._areas.index(area)
            cells = per_t[:, slot].mean(axis=2) if t_index is None else per_t[:, slot, :, t_index]
            count = valid[:, slot].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(count > 0, (cells * valid[:, slot]).sum(axis=1) / count, np.nan)
        return out


def _segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sums along each row that restart at every column in ``starts`` (sorted; segments may be empty).

    Each segment's first column gets the previous segments' total subtracted before one plain cumulative sum, which
    is exact here because every value is an integer count (float64 holds integers exactly up to 2**53).

    Args:
        values (np.ndarray): Shape (rows, columns), float64; overwritten.
        starts (np.ndarray): First column of each segment, nondecreasing, the first one 0.

    Returns:
        (np.ndarray): ``values``, now holding the segment-wise cumulative sums.
    """
    starts = np.unique(starts[starts < values.shape[1]])
    if starts.size > 1:
        totals = np.add.reduceat(values, starts, axis=1)
        values[:, starts[1:]] -= totals[:, :-1]
    np.cumsum(values, axis=1, out=values)
    return values


def _recall_level(recall: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many recall thresholds each recall reaches (``thresholds <= recall``, pycocotools' test), exactly.

    Equals ``np.searchsorted(thresholds, recall, side="right")`` for evenly spaced thresholds from 0 to 1 (as
    pycocotools' ``recThrs``), computed from an estimate and one exact comparison each way instead of a search.

    Args:
        recall (np.ndarray): Recall values, any shape; NaN (no objects) gives an arbitrary level in [0, R].
        thresholds (np.ndarray): The R thresholds, ``np.linspace(0, 1, R)``.

    Returns:
        (np.ndarray): int64 levels in [0, R], the shape of ``recall``.
    """
    num_r = thresholds.size
    with np.errstate(invalid="ignore"):
        # The estimate is within one of the answer: thresholds and product are each off by an ulp at most.
        level = (recall * (num_r - 1)).astype(np.int64) + 1
    np.clip(level, 0, num_r, out=level)
    level += (level < num_r) & (thresholds[np.minimum(level, num_r - 1)] <= recall)
    level -= (level > 0) & (thresholds[np.maximum(level - 1, 0)] > recall)
    return level


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """``metrics`` as a tuple, or a ValueError naming an unknown metric and the known ones."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in COCO_BOOTSTRAP_METRICS]
    if unknown or not metrics:
        raise ValueError(f"bootstrap metrics {list(metrics)}: use names from {list(COCO_BOOTSTRAP_METRICS)}.")
    return tuple(dict.fromkeys(metrics))


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
    metrics = _check_metrics(metrics)
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
    report = benchmark_bootstrap(**{k: int(v) for k, v in args.items()}, metrics=metrics)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
