"""Small-sample statistics for comparing activations across seeds: means, paired t tests, Holm.

The distributions and tests are scipy.stats's; the multiplicity correction is statsmodels's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

HOLM = "Holm"  # the correction's name, as the reports print it


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (scipy.stats.t.ppf).

    Raises ValueError unless 0.5 < p < 1 and df >= 1.
    """
    if not 0.5 < p < 1 or df < 1:
        raise ValueError("need 0.5 < p < 1 and df >= 1")
    return float(stats.t.ppf(p, df))


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its confidence interval (NaN bounds for a single seed)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean of independent values (one per seed) and its Student's t confidence interval.

    `level` is the interval's coverage (0.95: 95%); the interval is mean ± t(n-1) · sd / √n
    (scipy.stats.t.interval). One value gives NaN bounds; no value raises ValueError.
    """
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(data) / n
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    sem = float(stats.sem(data))
    if sem == 0:  # every value the same: a zero-width interval (scipy would give NaN)
        return Estimate(mean, mean, mean, n)
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=sem)
    return Estimate(mean, float(low), float(high), n)


@dataclass(frozen=True)
class PairedTest:
    """values − baseline paired by seed: the mean difference, its interval, test and effect size.

    `p` is the two-sided p-value of the paired t test before any multiplicity correction, and
    `d_z` the paired Cohen's d (the mean difference over the differences' standard deviation).
    With one pair, or differences that do not vary, the interval bounds, `t`, `p` and `d_z`
    are NaN where they are undefined.
    """

    mean: float
    low: float
    high: float
    n: int
    t: float
    p: float
    d_z: float


def cohens_dz(differences: Sequence[float]) -> float:
    """Paired Cohen's d_z: the mean of the per-seed differences over their standard deviation.

    The standard deviation is the sample one (n − 1 in the denominator). The effect size for
    paired designs of Cohen (1988), *Statistical Power Analysis for the Behavioral Sciences*,
    2nd ed., section 2.3.5, as recommended by Lakens (2013), "Calculating and reporting effect
    sizes to facilitate cumulative science", Frontiers in Psychology 4:863, eq. 6.
    NaN for fewer than two differences or differences that do not vary.
    """
    data = np.asarray(differences, dtype=float)
    if len(data) < 2:
        return math.nan
    sd = float(np.std(data, ddof=1))
    return math.nan if sd == 0 else float(np.mean(data)) / sd


def paired_test(
    values: Sequence[float], baseline: Sequence[float], level: float = 0.95
) -> PairedTest:
    """Paired t test of `values` against `baseline` (scipy.stats.ttest_rel), two-sided.

    Both sequences hold one number per seed, in the same seed order; pairing by seed removes
    what the two models of a seed share, so the interval (at `level`) is the one of the
    per-seed differences. Raises ValueError when the lengths differ or are zero.
    """
    if len(values) != len(baseline):
        raise ValueError("paired values need the same seeds")
    if len(values) == 0:
        raise ValueError("no values")
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    differences = a - b
    n = len(differences)
    mean = math.fsum(differences) / n
    if n == 1:
        return PairedTest(mean, math.nan, math.nan, 1, math.nan, math.nan, math.nan)
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-300)
    if float(np.std(differences, ddof=1)) <= 1e-12 * scale:
        # every seed gives the same difference (to rounding): no spread, so no t test
        return PairedTest(mean, mean, mean, n, math.nan, math.nan, math.nan)
    result = stats.ttest_rel(a, b)
    interval = result.confidence_interval(level)
    return PairedTest(
        mean,
        float(interval.low),
        float(interval.high),
        n,
        float(result.statistic),
        float(result.pvalue),
        cohens_dz(differences),
    )


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """Holm's step-down correction of a family of p-values (statsmodels' multipletests).

    Holm (1979), "A simple sequentially rejective multiple test procedure", Scandinavian
    Journal of Statistics 6(2):65-70: it keeps the chance of any false "real difference" in
    the family at most `alpha`. Returns the adjusted p-values and whether each is rejected at
    `alpha`, in the given order. NaN p-values (no test) stay NaN, are never rejected, and do
    not count in the family.
    """
    adjusted = [math.nan] * len(p_values)
    rejected = [False] * len(p_values)
    tested = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    if tested:
        reject, corrected, _, _ = multipletests(
            [p_values[i] for i in tested], alpha=alpha, method="holm"
        )
        for i, r, c in zip(tested, reject, corrected, strict=True):
            adjusted[i], rejected[i] = float(c), bool(r)
    return adjusted, rejected
