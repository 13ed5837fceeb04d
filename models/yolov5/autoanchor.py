"""AutoAnchor: check that a classic model's anchors fit the training labels, and fit new ones if they do not.

Facts restated from github.com/ultralytics/yolov5 at tag v7.0 (commit 915bbf294bb74c859f0b41f1c23bc395014ea679),
``utils/autoanchor.py``:

* label sizes in pixels: each image's labels ``w, h`` times the image shape rescaled so its long side is ``imgsz``,
  times a random factor in [0.9, 1.1) per image (the check only; the k-means fit uses no factor);
* for anchors ``k``: ``r = wh / k``, ``x = min(r, 1/r)`` taken over width and height; a label is *recallable* by an
  anchor when ``x > 1 / anchor_t``. BPR (best possible recall) is the fraction of labels recallable by their best
  anchor; ``anchors/target`` is the mean number of anchors that recall a label;
* ``BPR > 0.98``: the anchors stay. Otherwise k-means (scipy ``kmeans`` on whitened sizes of labels with a side of at
  least 2 px, 30 random restarts, the lowest distortion kept; centroids without members dropped) gives ``nl * na``
  anchors, refined by a genetic search (1000 generations, mutation probability 0.9, sigma 0.1, factors clipped to
  [0.3, 3.0], anchors to at least 2 px; a mutation is kept only if it raises the fitness
  ``mean(best * (best > 1/anchor_t))``); the anchors are sorted by area and replace the old ones only if their BPR is
  higher; then the levels are ordered by stride and the anchors stored in grid units.

Departures (# NOTE: not in the official code): the random streams are one seeded ``numpy.random.Generator``, not the
global numpy and ``random`` streams, so a run is repeatable from its seed; k-means is :func:`kmeans` below, the same
algorithm as scipy's ``kmeans`` written with numpy (scipy is not a dependency of Ultralytics or of this package).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .head import check_anchor_order

LOGGER = logging.getLogger("attnyolo")

BPR_KEEP = 0.98  # anchors are kept when their best possible recall exceeds this
KMEANS_RESTARTS = 30
KMEANS_THRESH = 1e-5  # scipy's default: stop when the mean distortion improves by no more than this
EVOLVE_GENERATIONS = 1000
MUTATION_PROB, MUTATION_SIGMA = 0.9, 0.1
MUTATION_CLIP = (0.3, 3.0)
MIN_ANCHOR_PX = 2.0  # k-means fits labels with a side of at least this many pixels; anchors are clipped to it
SMALL_LABEL_PX = 3.0  # labels smaller than this are reported
SCALE_JITTER = (0.9, 1.1)  # per-image random scale of the check


def anchor_metrics(anchors: np.ndarray | torch.Tensor, wh: np.ndarray, anchor_t: float) -> tuple[float, float]:
    """Best possible recall and anchors per target of ``anchors`` (k, 2) for label sizes ``wh`` (n, 2), in pixels.

    Examples:
        >>> anchor_metrics(np.array([[10.0, 10.0]]), np.array([[10.0, 20.0], [100.0, 100.0]]), 4.0)
        (0.5, 0.5)
    """
    k = torch.as_tensor(np.asarray(anchors, dtype=np.float32)).view(-1, 2)
    r = torch.as_tensor(np.asarray(wh, dtype=np.float32))[:, None] / k[None]
    x = torch.min(r, 1 / r).min(2).values  # (n, k): the worse of the width and height ratios
    recallable = (x > 1 / anchor_t).float()
    bpr = (x.max(1).values > 1 / anchor_t).float().mean()
    return float(bpr), float(recallable.sum(1).mean())


def _fitness(k: np.ndarray, wh: torch.Tensor, anchor_t: float) -> float:
    """K-means/evolution fitness: mean over labels of the best ratio, counted only where it passes the threshold."""
    r = wh[:, None] / torch.as_tensor(k, dtype=torch.float32)[None]
    best = torch.min(r, 1 / r).min(2).values.max(1).values
    return float((best * (best > 1 / anchor_t).float()).mean())


def label_sizes(labels: Sequence[dict], imgsz: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Label widths and heights (n, 2) in pixels at training size, from Ultralytics dataset labels.

    Args:
        labels: Dicts with ``shape`` (h, w) of the image and ``bboxes`` (m, 4) normalised xywh, one per image
            (:func:`attnyolo.integration.datasets.training_labels`).
        imgsz: Training image size (long side).
        rng: With a generator, each image's sizes get YOLOv5's random factor in [0.9, 1.1).

    Returns:
        Float32 array (n, 2).
    """
    out = []
    for label in labels:
        h, w = (float(v) for v in label["shape"][:2])
        scale = imgsz / max(h, w)
        if rng is not None:
            scale *= rng.uniform(*SCALE_JITTER)
        boxes = np.asarray(label["bboxes"], dtype=np.float64).reshape(-1, 4)
        out.append(boxes[:, 2:4] * np.array([w * scale, h * scale]))
    return np.concatenate(out, 0).astype(np.float32) if out else np.zeros((0, 2), np.float32)


def kmeans(obs: np.ndarray, k: int, rng: np.random.Generator, restarts: int = KMEANS_RESTARTS) -> np.ndarray:
    """Lloyd's k-means with random restarts, as scipy's ``kmeans``: the codebook of lowest mean distortion.

    Each restart starts from ``k`` distinct observations drawn at random and alternates assignment and centroid
    update until the mean distance to the nearest centroid improves by at most :data:`KMEANS_THRESH`; centroids that
    lose all their observations are dropped, so fewer than ``k`` may come back.

    Args:
        obs: (m, d) observations.
        k: Number of centroids.
        rng: Random generator.
        restarts: Number of restarts.

    Returns:
        (k', d) centroids, k' <= k.
    """
    obs = np.asarray(obs, dtype=np.float64)
    best, best_distortion = None, np.inf
    for _ in range(restarts):
        book = obs[rng.choice(len(obs), size=k, replace=False)]
        previous = np.inf
        while True:
            dist = np.linalg.norm(obs[:, None] - book[None], axis=2)
            code = dist.argmin(1)
            distortion = dist[np.arange(len(obs)), code].mean()
            members = [code == j for j in range(len(book))]
            book = np.array([obs[m].mean(0) for m in members if m.any()])
            if previous - distortion <= KMEANS_THRESH:
                break
            previous = distortion
        if distortion < best_distortion:
            best, best_distortion = book, distortion
    return best


def kmean_anchors(
    wh0: np.ndarray, n: int, imgsz: int, anchor_t: float, gen: int = EVOLVE_GENERATIONS, seed: int = 0
) -> np.ndarray:
    """Fit ``n`` anchors (pixels, sorted by area) to label sizes ``wh0`` with k-means and a genetic refinement.

    Args:
        wh0: (m, 2) label sizes in pixels (without the check's random factor).
        n: Number of anchors (levels x anchors per level).
        imgsz: Training image size, for the fallback when k-means finds fewer than ``n`` clusters.
        anchor_t: Anchor ratio threshold.
        gen: Generations of the genetic refinement.
        seed: Seed of the random streams (k-means initialisation and mutations).

    Returns:
        Float32 array (n, 2).
    """
    rng = np.random.default_rng(seed)
    small = int((wh0 < SMALL_LABEL_PX).any(1).sum())
    if small:
        LOGGER.warning(f"AutoAnchor: {small} of {len(wh0)} labels are smaller than {SMALL_LABEL_PX:g} pixels")
    wh = wh0[(wh0 >= MIN_ANCHOR_PX).any(1)].astype(np.float32)
    k = None
    if len(wh) >= n:
        std = wh.std(0)
        std[std == 0] = 1.0  # NOTE: not in the official code: identical sizes would divide by zero
        centroids = kmeans(wh / std, n, rng)
        if len(centroids) == n:
            k = centroids * std
    if k is None:  # as YOLOv5: random sorted anchors when k-means cannot give n clusters
        LOGGER.warning("AutoAnchor: k-means found too few clusters; starting from random anchors")
        k = np.sort(rng.random(n * 2)).reshape(n, 2) * imgsz
    k = k[np.argsort(k.prod(1))]
    wh_t = torch.as_tensor(wh)
    best = _fitness(k, wh_t, anchor_t)
    for _ in range(gen):
        v = np.ones(k.shape)
        while (v == 1).all():  # mutate until something changes
            v = (
                (rng.random(k.shape) < MUTATION_PROB) * rng.random() * rng.standard_normal(k.shape) * MUTATION_SIGMA + 1
            ).clip(*MUTATION_CLIP)
        candidate = (k * v).clip(min=MIN_ANCHOR_PX)
        f = _fitness(candidate, wh_t, anchor_t)
        if f > best:
            best, k = f, candidate
    return k[np.argsort(k.prod(1))].astype(np.float32)


@dataclass
class AutoAnchorReport:
    """What :func:`check_anchors` found and did.

    Attributes:
        bpr: Best possible recall of the anchors the model had.
        anchors_per_target: Their mean number of anchors per label.
        replaced: Whether new anchors were fitted and kept.
        new_bpr: BPR of the fitted anchors (None when none were fitted).
        anchors: The anchors in pixels afterwards, (nl * na, 2).
    """

    bpr: float
    anchors_per_target: float
    replaced: bool
    new_bpr: float | None
    anchors: list[list[float]]

    def summary(self) -> str:
        """One line for the training log."""
        text = f"AutoAnchor: {self.anchors_per_target:.2f} anchors/target, {self.bpr:.3f} best possible recall (BPR)"
        if self.new_bpr is None:
            return f"{text}; the anchors fit the labels, kept."
        if self.replaced:
            return f"{text}; k-means + evolution anchors have BPR {self.new_bpr:.3f} and replace them."
        return f"{text}; the fitted anchors (BPR {self.new_bpr:.3f}) are no better, the original anchors are kept."


def check_anchors(
    head, labels: Sequence[dict], imgsz: int, anchor_t: float, seed: int = 0, gen: int = EVOLVE_GENERATIONS
) -> AutoAnchorReport:
    """YOLOv5's AutoAnchor on a built :class:`~attnyolo.yolov5.head.YOLOv5Detect`; anchors are replaced in place.

    Args:
        head: The model's classic head (anchors in grid units, strides set).
        labels: The training set's labels (:func:`attnyolo.integration.datasets.training_labels`).
        imgsz: Training image size.
        anchor_t: Anchor ratio threshold (hyp ``anchor_t``).
        seed: Seed of the random scale factors, k-means and evolution.
        gen: Generations of the genetic refinement.

    Returns:
        An :class:`AutoAnchorReport`.
    """
    rng = np.random.default_rng(seed)
    stride = head.stride.to(head.anchors).view(-1, 1, 1)
    current = (head.anchors * stride).detach().cpu().float()
    wh = label_sizes(labels, imgsz, rng)
    if not len(wh):
        return AutoAnchorReport(0.0, 0.0, False, None, current.view(-1, 2).tolist())
    bpr, aat = anchor_metrics(current.view(-1, 2), wh, anchor_t)
    if bpr > BPR_KEEP:
        return AutoAnchorReport(bpr, aat, False, None, current.view(-1, 2).tolist())
    fitted = kmean_anchors(label_sizes(labels, imgsz), head.na * head.nl, imgsz, anchor_t, gen=gen, seed=seed)
    new_bpr, _ = anchor_metrics(fitted, wh, anchor_t)
    if new_bpr <= bpr:
        return AutoAnchorReport(bpr, aat, False, new_bpr, current.view(-1, 2).tolist())
    pixels = torch.as_tensor(fitted).view_as(head.anchors).to(head.anchors)
    pixels = check_anchor_order(pixels, head.stride.to(pixels))
    with torch.no_grad():
        head.anchors.copy_(pixels / stride)
    return AutoAnchorReport(bpr, aat, True, new_bpr, pixels.view(-1, 2).tolist())
