"""Small-sample statistics for comparing activations across seeds: means, t intervals, pairs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def _t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom, by Simpson's rule on its density."""
    if t < 0:
        return 1 - _t_cdf(-t, df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    steps = 2000  # even; the density is smooth, so this is exact to ~1e-12 for |t| < 100
    h = t / steps
    total = density(0) + density(t)
    total += sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 + total * h / 3


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (0.5 < p < 1)."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError("need 0.5 < p < 1 and df >= 1")
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(60):  # bisection to double precision
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its 95% confidence interval (NaN bounds for a single seed)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (for differences)."""
        return self.n > 1 and (self.low > 0 or self.high < 0)


def mean_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean and t-based confidence interval of independent values (one per seed)."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def paired_difference(
    values: Sequence[float], baseline: Sequence[float], level: float = 0.95
) -> Estimate:
    """Mean of per-seed differences values - baseline, with its interval (a paired t interval).

    Pairing by seed removes what the two share (initial weights, batch order), so the interval
    is the one for the difference itself, often far narrower than the two intervals suggest.
    """
    if len(values) != len(baseline):
        raise ValueError("paired values need the same seeds")
    return mean_ci([a - b for a, b in zip(values, baseline, strict=True)], level)
