"""One model's pycocotools matches, re-accumulated into COCO AP for any weighting of the images.

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

from collections.abc import Sequence

import numpy as np
from pycocotools.cocoeval import COCOeval
from scipy import sparse

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
        self.metrics = check_metrics(metrics)
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


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """``metrics`` as a tuple, or a ValueError naming an unknown metric and the known ones."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in COCO_BOOTSTRAP_METRICS]
    if unknown or not metrics:
        raise ValueError(f"bootstrap metrics {list(metrics)}: use names from {list(COCO_BOOTSTRAP_METRICS)}.")
    return tuple(dict.fromkeys(metrics))
