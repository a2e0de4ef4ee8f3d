"""Statistics checked against published t tables and values worked out by hand."""

from __future__ import annotations

import math

import pytest

from actbench.stats import cohens_dz, holm, mean_ci, paired_test, t_quantile

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
    with pytest.raises(ValueError):
        t_quantile(0.4, 3)


def test_mean_ci_by_hand():
    # values 1, 2, 3: mean 2, sd 1, half-width 4.303 / sqrt(3) = 2.4843
    estimate = mean_ci([1.0, 2.0, 3.0])
    assert estimate.mean == 2.0 and estimate.n == 3
    assert estimate.low == pytest.approx(2 - 4.303 / math.sqrt(3), abs=1e-3)
    assert estimate.high == pytest.approx(2 + 4.303 / math.sqrt(3), abs=1e-3)
    # a 99% interval from the table's t(2) = 9.925
    wide = mean_ci([1.0, 2.0, 3.0], level=0.99)
    assert wide.half_width == pytest.approx(9.925 / math.sqrt(3), abs=1e-3)


def test_single_seed_has_no_interval():
    estimate = mean_ci([0.97])
    assert estimate.mean == 0.97 and math.isnan(estimate.low) and math.isnan(estimate.high)


def test_equal_values_have_a_zero_width_interval():
    estimate = mean_ci([0.5, 0.5, 0.5])
    assert (estimate.low, estimate.mean, estimate.high) == (0.5, 0.5, 0.5)


def test_paired_test_by_hand():
    # per-seed accuracies that move together: a clear +0.01 difference that unpaired
    # intervals would hide
    baseline = [0.90, 0.95, 0.92, 0.97]
    other = [0.91, 0.961, 0.929, 0.981]
    test = paired_test(other, baseline)
    # differences 0.010, 0.011, 0.009, 0.011: mean 0.01025, sd 0.00095743, n 4
    # t = 0.01025 / (0.00095743 / 2) = 21.4115; half-width t(3) 3.182 * 0.00095743 / 2
    assert test.mean == pytest.approx(0.01025)
    assert test.t == pytest.approx(21.4115, rel=1e-4)
    assert test.high - test.mean == pytest.approx(3.182 * 0.00095743 / 2, rel=1e-3)
    assert test.d_z == pytest.approx(0.01025 / 0.00095743, rel=1e-4)  # 10.706
    # t(3) beyond 12.924 (the table's two-sided 0.001 value) means p < 0.001
    assert test.p < 0.001
    unpaired_a, unpaired_b = mean_ci(other), mean_ci(baseline)
    assert unpaired_a.low < unpaired_b.high  # the unpaired intervals overlap


def test_paired_test_p_value_at_a_table_value():
    # differences 1, 2, 3 + c chosen so that t = 4.303 exactly: p is then 0.05 (df 2)
    # mean 2 + c, sd 1, t = (2 + c) / (1 / sqrt 3) = 4.303 -> c = 4.303 / sqrt 3 - 2
    c = 4.303 / math.sqrt(3) - 2
    test = paired_test([1 + c, 2 + c, 3 + c], [0.0, 0.0, 0.0])
    assert test.t == pytest.approx(4.303)
    assert test.p == pytest.approx(0.05, abs=2e-5)
    assert test.low == pytest.approx(0.0, abs=1e-3)  # the 95% interval just touches zero


def test_cohens_dz_by_hand():
    assert cohens_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # mean 2, sd 1
    assert cohens_dz([-0.020, -0.021, -0.022]) == pytest.approx(-21.0)  # mean -0.021, sd 0.001
    assert math.isnan(cohens_dz([0.5]))
    assert math.isnan(cohens_dz([0.5, 0.5]))


def test_a_difference_within_the_noise():
    test = paired_test([0.91, 0.90, 0.92], [0.90, 0.91, 0.915])
    assert test.low < 0 < test.high and test.p > 0.05


def test_one_pair_and_no_spread_give_no_test():
    one = paired_test([0.91], [0.90])
    assert one.mean == pytest.approx(0.01) and math.isnan(one.p) and math.isnan(one.low)
    same = paired_test([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert same.mean == 0 and math.isnan(same.p) and math.isnan(same.d_z)


def test_paired_needs_the_same_seeds():
    with pytest.raises(ValueError):
        paired_test([1.0, 2.0], [1.0])


def test_holm_by_hand():
    # p-values 0.01, 0.04, 0.03, 0.005 (m = 4), sorted: 0.005, 0.01, 0.03, 0.04.
    # Holm multiplies the i-th smallest by m - i + 1 and keeps the running maximum:
    #   0.005 * 4 = 0.02; 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> max 0.06
    # step-down at 5%: 0.005 <= 0.05/4 yes, 0.01 <= 0.05/3 yes, 0.03 <= 0.05/2 no: stop
    adjusted, rejected = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rejected == [True, False, False, True]


def test_holm_rejects_more_than_bonferroni():
    # 0.012 * 3 = 0.036, 0.02 * 2 = 0.04, 0.04 * 1 = 0.04: all three real at 5%;
    # Bonferroni (each times 3: 0.036, 0.06, 0.12) would keep only the first
    adjusted, rejected = holm([0.04, 0.012, 0.02])
    assert adjusted == pytest.approx([0.04, 0.036, 0.04])
    assert rejected == [True, True, True]


def test_holm_leaves_missing_tests_out_of_the_family():
    # two tests: 0.01 * 2 = 0.02, 0.04 * 1 = 0.04 (the NaN does not make it three)
    adjusted, rejected = holm([math.nan, 0.04, 0.01])
    assert math.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.04, 0.02])
    assert rejected == [False, True, True]
    assert holm([]) == ([], [])
