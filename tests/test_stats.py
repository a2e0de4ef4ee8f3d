"""Statistics checked against published t tables and intervals worked out by hand."""

from __future__ import annotations

import math

import pytest

from actbench.stats import mean_ci, paired_difference, t_quantile

# Two-sided 95% critical values of Student's t, from any statistics table.
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 19: 2.093, 29: 2.045,
           120: 1.980}  # fmt: skip


@pytest.mark.parametrize(("df", "value"), T_TABLE.items())
def test_t_quantile_matches_the_table(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=6e-4)


def test_t_quantile_other_levels():
    assert t_quantile(0.95, 10) == pytest.approx(1.812, abs=6e-4)  # one-sided 95%, df 10
    assert t_quantile(0.995, 3) == pytest.approx(5.841, abs=6e-4)
    assert t_quantile(0.975, 10_000) == pytest.approx(1.960, abs=1e-3)  # approaches normal


def test_mean_ci_by_hand():
    # values 1, 2, 3: mean 2, sd 1, half-width 4.303 / sqrt(3) = 2.4843
    estimate = mean_ci([1.0, 2.0, 3.0])
    assert estimate.mean == 2.0 and estimate.n == 3
    assert estimate.low == pytest.approx(2 - 4.303 / math.sqrt(3), abs=1e-3)
    assert estimate.high == pytest.approx(2 + 4.303 / math.sqrt(3), abs=1e-3)
    assert not estimate.significant  # the interval (-0.48, 4.48) holds zero


def test_single_seed_has_no_interval():
    estimate = mean_ci([0.97])
    assert estimate.mean == 0.97 and math.isnan(estimate.low) and not estimate.significant


def test_paired_difference_removes_what_pairs_share():
    # per-seed accuracies that move together: a clear +0.01 difference that unpaired
    # intervals would hide
    baseline = [0.90, 0.95, 0.92, 0.97]
    other = [0.91, 0.961, 0.929, 0.981]
    diff = paired_difference(other, baseline)
    # differences 0.010, 0.011, 0.009, 0.011: mean 0.01025, sd 0.000957, t(3) = 3.182
    assert diff.mean == pytest.approx(0.01025)
    assert diff.half_width == pytest.approx(3.182 * 0.0009574 / 2, rel=1e-3)
    assert diff.significant
    unpaired_a, unpaired_b = mean_ci(other), mean_ci(baseline)
    assert unpaired_a.low < unpaired_b.high  # the unpaired intervals overlap


def test_a_difference_within_the_noise_is_not_significant():
    diff = paired_difference([0.91, 0.90, 0.92], [0.90, 0.91, 0.915])
    assert diff.low < 0 < diff.high and not diff.significant


def test_paired_needs_the_same_seeds():
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])
