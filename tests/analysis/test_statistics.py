"""Ablation statistics: summaries over seeds, paired differences and verdicts, against hand arithmetic and scipy.

The hand derivations use the Student t distribution with 2 degrees of freedom, whose CDF has a closed form
(F(t) = 1/2 + t / (2 sqrt(2 + t^2)); its quantile is t_p = (2p - 1) / sqrt(2p(1 - p))), so three values per model give
an interval and a p-value that can be checked without scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from attnyolo.analysis.statistics import (
    BETTER,
    INTERVAL_NOTES,
    NO_DIFFERENCE,
    NO_INTERVAL,
    WORSE,
    describe,
    interval_note,
    paired_difference,
    verdict,
)


def _t2_quantile(p):
    """Quantile of Student t with 2 degrees of freedom, from its closed-form CDF."""
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


# ------------------------------------------------------------------------------------------------------- describe
def test_describe_matches_hand_arithmetic_on_three_values():
    # 0.30, 0.32, 0.37: mean 0.99 / 3 = 0.33; deviations -0.03, -0.01, 0.04; squares sum 0.0009 + 0.0001 + 0.0016
    # = 0.0026; sample variance 0.0026 / 2 = 0.0013; sd = sqrt(0.0013). t_{0.975, 2} = 0.95 / sqrt(0.04875).
    d = describe([0.30, 0.32, 0.37])
    assert d["n"] == 3 and d["missing"] == 0 and d["confidence"] == 0.95 and d["note"] == ""
    assert d["mean"] == pytest.approx(0.33, abs=1e-12)
    assert d["sd"] == pytest.approx(math.sqrt(0.0013), abs=1e-12)
    half = 0.95 / math.sqrt(0.04875) * math.sqrt(0.0013) / math.sqrt(3)
    assert half == pytest.approx(_t2_quantile(0.975) * math.sqrt(0.0013 / 3), abs=1e-15)
    assert d["ci_low"] == pytest.approx(0.33 - half, abs=1e-9)
    assert d["ci_high"] == pytest.approx(0.33 + half, abs=1e-9)


def test_describe_eight_values_hand_sd_and_scipy_interval_and_table_quantile():
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 40 / 8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32; sd = sqrt(32 / 7).
    values = [2, 4, 4, 4, 5, 5, 7, 9]
    d = describe(values, confidence=0.90)
    assert d["mean"] == 5.0
    assert d["sd"] == pytest.approx(math.sqrt(32 / 7), abs=1e-12)
    # A printed t table gives t_{0.95, 7} = 1.895 (three decimals).
    assert (d["ci_high"] - d["mean"]) / (d["sd"] / math.sqrt(8)) == pytest.approx(1.895, abs=5e-4)
    low, high = stats.t.interval(0.90, 7, loc=np.mean(values), scale=stats.sem(values))
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize("values", [[0.41], []])
def test_describe_fewer_than_two_values_gives_no_interval_and_says_why(values):
    d = describe(values)
    assert d["n"] == len(values) and d["sd"] is None and d["ci_low"] is None and d["ci_high"] is None
    assert d["mean"] == (values[0] if values else None)
    assert "at least 2" in d["note"]


def test_describe_omits_missing_values_and_counts_them():
    d = describe([0.30, None, 0.32, float("nan"), 0.37])
    assert d["n"] == 3 and d["missing"] == 2
    assert d["mean"] == pytest.approx(describe([0.30, 0.32, 0.37])["mean"], abs=1e-15)


def test_describe_equal_values_give_a_zero_width_interval_with_a_note():
    d = describe([0.5, 0.5, 0.5])
    assert d["sd"] == 0 and d["ci_low"] == d["ci_high"] == 0.5 and "equal" in d["note"]


@pytest.mark.parametrize(
    ("values", "confidence", "match"),
    [
        ([0.1, float("inf")], 0.95, r"values\[1\].*finite"),
        ([0.1, "0.2"], 0.95, r"values\[1\].*number"),
        ([0.1, True], 0.95, r"values\[1\]"),
        ("0.1,0.2", 0.95, "sequence"),
        ([0.1, 0.2], 95, "strictly between 0 and 1"),
    ],
)
def test_describe_refuses_bad_input_with_one_line(values, confidence, match):
    with pytest.raises(ValueError, match=match):
        describe(values, confidence)


# ---------------------------------------------------------------------------------------------- paired difference
def test_paired_difference_matches_hand_arithmetic():
    # Differences in hundredths: 2, 4, 1. Mean 7/3; deviations -1/3, 5/3, -4/3; squares 1/9 + 25/9 + 16/9 = 14/3;
    # variance 7/3; t = (7/3) / sqrt((7/3) / 3) = sqrt(7). With 2 degrees of freedom the two-sided p-value is
    # 2 (1 - F(sqrt 7)) = 1 - sqrt(7) / sqrt(2 + 7) = 1 - sqrt(7) / 3.
    r = paired_difference([0.42, 0.45, 0.40], [0.40, 0.41, 0.39])
    assert r["n"] == 3 and r["dropped"] == 0
    assert r["diffs"] == pytest.approx([0.02, 0.04, 0.01], abs=1e-12)
    assert r["mean"] == pytest.approx(0.07 / 3, abs=1e-12)
    assert r["sd"] == pytest.approx(0.01 * math.sqrt(7 / 3), abs=1e-12)
    assert r["t"] == pytest.approx(math.sqrt(7), rel=1e-9)
    assert r["p"] == pytest.approx(1 - math.sqrt(7) / 3, rel=1e-9)
    half = _t2_quantile(0.975) * 0.01 * math.sqrt(7 / 3) / math.sqrt(3)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.07 / 3 - half, 0.07 / 3 + half), abs=1e-9)
    # The interval (-0.0146, 0.0613) contains 0.
    assert r["verdict"] == NO_DIFFERENCE


def test_paired_difference_agrees_with_scipy_ttest_rel_and_t_interval():
    rng = np.random.default_rng(3)
    b = rng.uniform(0.3, 0.4, size=6)
    a = b + rng.normal(0.01, 0.005, size=6)
    r = paired_difference(a, b, confidence=0.99)
    test = stats.ttest_rel(a, b)
    assert (r["t"], r["p"]) == pytest.approx((test.statistic, test.pvalue), rel=1e-12)
    d = a - b
    low, high = stats.t.interval(0.99, 5, loc=d.mean(), scale=stats.sem(d))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high), abs=1e-12)
    assert r["verdict"] == verdict(low, high)


def test_paired_difference_drops_pairs_with_a_missing_side_like_scipy_omit():
    a = [0.42, None, 0.45, 0.40, float("nan")]
    b = [0.40, 0.50, 0.41, 0.39, 0.30]
    r = paired_difference(a, b)
    assert r["n"] == 3 and r["dropped"] == 2 and "2 pair(s)" in r["note"]
    assert r["t"] == pytest.approx(math.sqrt(7), rel=1e-9)
    omit = stats.ttest_rel(np.array(a, dtype=float), np.array(b, dtype=float), nan_policy="omit")
    assert (r["t"], r["p"]) == pytest.approx((omit.statistic, omit.pvalue), rel=1e-12)


def test_paired_difference_with_one_seed_or_constant_differences_has_no_t():
    one = paired_difference([0.5], [0.4])
    assert one["n"] == 1 and one["t"] is None and one["p"] is None and one["verdict"] == NO_INTERVAL
    assert one["diffs"] == pytest.approx([0.1])
    same = paired_difference([0.5, 0.6], [0.4, 0.5])
    assert same["t"] is None and same["p"] is None and "undefined" in same["note"]


def test_paired_difference_needs_equal_lengths():
    with pytest.raises(ValueError, match="a has 2 values and b has 3"):
        paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])


def test_paired_difference_of_a_cost_reads_the_sign_the_other_way():
    r = paired_difference([10.0, 11.0, 10.5], [12.0, 12.5, 12.2], higher_is_better=False)
    assert r["ci_high"] < 0 and r["verdict"] == BETTER


# -------------------------------------------------------------------------------------------------------- verdict
@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.001, 0.02, BETTER),
        (-0.02, -0.001, WORSE),
        (-0.01, 0.01, NO_DIFFERENCE),
        (0.0, 0.01, NO_DIFFERENCE),
        (-0.01, 0.0, NO_DIFFERENCE),
        (None, 0.1, NO_INTERVAL),
        (float("nan"), float("nan"), NO_INTERVAL),
    ],
)
def test_verdict(low, high, expected):
    assert verdict(low, high) == expected


def test_interval_notes_say_what_each_interval_covers():
    assert set(INTERVAL_NOTES) == {"seeds", "paired", "bootstrap"}
    assert "training seeds" in INTERVAL_NOTES["seeds"] and "not the choice of test images" in INTERVAL_NOTES["seeds"]
    assert "not training noise" in INTERVAL_NOTES["bootstrap"]
    assert interval_note("paired", 0.9).startswith("90% CI")
    with pytest.raises(ValueError, match="'seed'"):
        interval_note("seed")
