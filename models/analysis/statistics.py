"""Statistics for ablations: per-model summaries over seeds, paired comparisons with a baseline, verdicts.

Everything distributional comes from scipy: Student t quantiles (``scipy.stats.t``) and the paired t-test
(``scipy.stats.ttest_rel``). This module only arranges the inputs, handles missing values explicitly and words the
result.

Missing values: ``None`` and NaN mean "no value" (a run that has not finished, or a metric its evaluator left
undefined, such as APs on data without small objects). ``describe`` omits them and counts them in ``missing``;
``paired_difference`` drops every pair where either side is missing and counts those in ``dropped``. Infinite values
are refused, because they are never a metric's value.

Examples:
    >>> s = describe([0.30, 0.32, 0.34])
    >>> round(s["mean"], 4), round(s["sd"], 4), s["n"]
    (0.32, 0.02, 3)
    >>> paired_difference([0.35, 0.36, 0.38], [0.30, 0.32, 0.34])["verdict"]
    'better'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no difference detected (CI contains 0)"
NO_INTERVAL = "no interval (too few values)"

# What each kind of interval covers, for the line under a table. The confidence level is filled in by interval_note.
_INTERVAL_TEMPLATES = {
    "seeds": (
        "{level}% CI over training seeds (Student t on the n runs of one model): covers run-to-run training noise "
        "(initialisation, data order, augmentation), not the choice of test images."
    ),
    "paired": (
        "{level}% CI of the per-seed difference from the baseline (same seed, same data order; Student t on the n "
        "paired differences, with a paired t-test): covers training noise, not the choice of test images."
    ),
    "bootstrap": (
        "{level}% CI of the difference from the baseline over test sets resampled with replacement (percentile "
        "bootstrap of the validation images, the same draw for both models): covers the choice of test images for "
        "these trained weights, not training noise."
    ),
}


def _check_confidence(confidence: float) -> None:
    """Raise a ValueError unless ``confidence`` is a number strictly between 0 and 1."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}.")


def interval_note(kind: str, confidence: float = 0.95) -> str:
    """One line saying what an interval of the given kind covers, for the line under a table.

    Args:
        kind (str): ``"seeds"`` (``describe`` over seeds), ``"paired"`` (``paired_difference``) or ``"bootstrap"``
            (the test-set bootstrap of ``attnyolo.analysis.bootstrap``).
        confidence (float): The interval's confidence level in (0, 1).

    Returns:
        (str): The sentence, e.g. "95% CI over training seeds ...".

    Raises:
        ValueError: If ``kind`` is not one of the three.
    """
    if kind not in _INTERVAL_TEMPLATES:
        raise ValueError(f"interval kind {kind!r} is not one of {sorted(_INTERVAL_TEMPLATES)}.")
    _check_confidence(confidence)
    return _INTERVAL_TEMPLATES[kind].format(level=f"{100 * confidence:g}")


INTERVAL_NOTES = {kind: interval_note(kind) for kind in _INTERVAL_TEMPLATES}


def _as_values(values: Sequence[Any], what: str) -> np.ndarray:
    """``values`` as a float array with NaN for missing entries (None or NaN); a ValueError names a bad entry."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"{what} must be a sequence of numbers, got {values!r}.")
    out = np.empty(len(values), dtype=float)
    for i, value in enumerate(values):
        if value is None:
            out[i] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{what}[{i}] is {value!r}; expected a number, or None for a missing value.")
        if math.isinf(value):
            raise ValueError(f"{what}[{i}] is {value!r}; a metric must be finite (use None for a missing value).")
        out[i] = float(value)
    return out


def _t_interval(mean: float, sd: float, n: int, confidence: float) -> tuple[float, float]:
    """Student t interval mean +- t_{(1+c)/2, n-1} * sd / sqrt(n), with scipy's t quantile."""
    if sd == 0:
        # scipy's interval needs scale > 0; with no spread every t interval has width 0.
        return mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return float(low), float(high)


def describe(values: Sequence[Any], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation and Student t confidence interval of one metric over runs (e.g. seeds).

    Args:
        values (Sequence[float | None]): One value per run. ``None`` or NaN marks a missing value, which is omitted
            and counted in ``missing``.
        confidence (float): Confidence level of the interval, in (0, 1).

    Returns:
        (dict): ``n`` (values used), ``missing``, ``mean`` (None if n = 0), ``sd`` (sample standard deviation,
            ddof=1; None if n < 2), ``ci_low``/``ci_high`` (the t interval mean +- t_{(1+c)/2, n-1} sd / sqrt(n);
            None if n < 2), ``confidence``, and ``note`` (why the interval is missing or degenerate; empty otherwise).

    Raises:
        ValueError: If a value is not a number, None or NaN, or is infinite, or ``confidence`` is not in (0, 1).

    Examples:
        >>> d = describe([1.0, 2.0, 3.0])
        >>> d["mean"], d["sd"], round(d["ci_low"], 4), round(d["ci_high"], 4)
        (2.0, 1.0, -0.4841, 4.4841)
    """
    _check_confidence(confidence)
    x = _as_values(values, "values")
    present = x[~np.isnan(x)]
    n = int(present.size)
    result: dict[str, Any] = {
        "n": n,
        "missing": int(x.size - n),
        "mean": float(present.mean()) if n else None,
        "sd": float(present.std(ddof=1)) if n >= 2 else None,
        "ci_low": None,
        "ci_high": None,
        "confidence": confidence,
        "note": "",
    }
    if n < 2:
        result["note"] = f"no interval: {n} value(s); a t interval needs at least 2 (run more seeds)."
        return result
    result["ci_low"], result["ci_high"] = _t_interval(result["mean"], result["sd"], n, confidence)
    if result["sd"] == 0:
        result["note"] = f"all {n} values are equal; the interval has width 0."
    return result


def verdict(ci_low: float | None, ci_high: float | None, higher_is_better: bool = True) -> str:
    """Word a confidence interval of a difference (model minus baseline).

    Args:
        ci_low (float | None): Lower end of the interval of the difference.
        ci_high (float | None): Upper end.
        higher_is_better (bool): True for metrics such as AP; False for costs such as latency, where a difference
            below 0 is the better one.

    Returns:
        (str): ``"better"`` if the whole interval lies on the good side of 0, ``"worse"`` if it lies on the other
            side, ``"no difference detected (CI contains 0)"`` if it contains 0, and ``"no interval (too few values)"``
            if either end is None or NaN (fewer than 2 seeds, or a metric undefined in every resample).

    Examples:
        >>> verdict(0.1, 0.5), verdict(-0.5, -0.1), verdict(-0.1, 0.5), verdict(None, None)
        ('better', 'worse', 'no difference detected (CI contains 0)', 'no interval (too few values)')
    """
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return NO_INTERVAL
    if ci_low > 0:
        return BETTER if higher_is_better else WORSE
    if ci_high < 0:
        return WORSE if higher_is_better else BETTER
    return NO_DIFFERENCE


def paired_difference(
    a: Sequence[Any], b: Sequence[Any], confidence: float = 0.95, higher_is_better: bool = True
) -> dict[str, Any]:
    """Compare a model with a baseline run for run: differences a - b of the same seed, their t interval and t-test.

    Args:
        a (Sequence[float | None]): The model's metric, one value per seed.
        b (Sequence[float | None]): The baseline's metric for the same seeds, in the same order.
        confidence (float): Confidence level of the interval, in (0, 1).
        higher_is_better (bool): Passed to ``verdict``.

    Returns:
        (dict): ``n`` (complete pairs used), ``dropped`` (pairs with a missing side, omitted), ``diffs`` (a - b per
            complete pair, in order), ``mean``, ``sd`` (ddof=1), ``ci_low``/``ci_high`` (Student t interval of the
            mean difference; None if n < 2), ``t`` and ``p`` (``scipy.stats.ttest_rel``, two-sided; None if n < 2
            or every difference is the same, where the statistic is undefined), ``confidence``, ``verdict`` and
            ``note``.

    Raises:
        ValueError: If ``a`` and ``b`` differ in length, a value is not a number, None or NaN, or is infinite.

    Examples:
        >>> r = paired_difference([0.35, 0.36, 0.38], [0.30, 0.32, 0.34])
        >>> [round(d, 2) for d in r["diffs"]], r["verdict"]
        ([0.05, 0.04, 0.04], 'better')
    """
    _check_confidence(confidence)
    x, y = _as_values(a, "a"), _as_values(b, "b")
    if x.size != y.size:
        raise ValueError(
            f"a has {x.size} values and b has {y.size}; a paired comparison needs one value per seed on each side, "
            "in the same seed order."
        )
    complete = ~(np.isnan(x) | np.isnan(y))
    x, y = x[complete], y[complete]
    diffs = x - y
    summary = describe(diffs, confidence)
    result: dict[str, Any] = {
        "n": summary["n"],
        "dropped": int(complete.size - summary["n"]),
        "diffs": [float(d) for d in diffs],
        "mean": summary["mean"],
        "sd": summary["sd"],
        "ci_low": summary["ci_low"],
        "ci_high": summary["ci_high"],
        "t": None,
        "p": None,
        "confidence": confidence,
        "verdict": verdict(summary["ci_low"], summary["ci_high"], higher_is_better),
        "note": summary["note"],
    }
    if summary["n"] >= 2 and summary["sd"] > 0:
        test = stats.ttest_rel(x, y)
        result["t"], result["p"] = float(test.statistic), float(test.pvalue)
    elif summary["n"] >= 2:
        result["note"] = f"all {summary['n']} differences are equal; the t statistic is undefined."
    if result["dropped"]:
        result["note"] = (result["note"] + " " if result["note"] else "") + (
            f"{result['dropped']} pair(s) with a missing value omitted."
        )
    return result
