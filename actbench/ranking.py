"""Comparing activations across a study's grid of configurations: ranks, per-configuration
differences, and each activation at its own best settings.

Every function takes a study's tidy frame of final results: one row per model, with the columns
`activation`, `config` (a string naming one configuration of settings, e.g. "depth=2
lr=0.001"), `seed`, and metric columns such as `test_accuracy` and `val_accuracy` (fractions:
0.97 is 97%). Configurations and activations keep the order of their first row. A frame with a
hole in it (an activation missing in a configuration, different seeds within a configuration,
a metric with no value, a model twice) is refused with a one-line ValueError that names the
hole: nothing is dropped or filled in silently.

Sources: Demšar (2006), "Statistical comparisons of classifiers over multiple data sets",
Journal of Machine Learning Research 7:1-30 (Friedman test, Nemenyi post-hoc test, critical
difference); scipy.stats (Friedman test, studentized range, paired t test); scikit-posthocs
(Nemenyi p-values); statsmodels (Holm's correction, through `actbench.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scikit_posthocs
from scipy import stats

from actbench.stats import holm, paired_test
from actbench.summary import ALPHA, COMPARE_COLUMNS, p_value

KEYS = ("activation", "config", "seed")
FRIEDMAN = "Friedman test with the Nemenyi post-hoc test"  # as figures and reports name it
DIFFERENCE_COLUMNS = ["config", "activation", *COMPARE_COLUMNS]
TUNED_COLUMNS = ["comparison", "activation", "config", "tied_with", "select_mean",
                 "baseline_config", *COMPARE_COLUMNS]  # fmt: skip
_SHOWN = 4  # how many holes a refusal names before it counts the rest


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def check_grid(frame: pd.DataFrame, metrics: Sequence[str]) -> None:
    """Refuse a study frame that is not a complete grid with a value for every `metrics` column.

    Complete: every activation has rows in every configuration, the activations of one
    configuration share the same seeds, no (activation, config, seed) appears twice, and no
    `metrics` value is missing (NaN). Raises ValueError with one line naming what is missing
    and how to fix it.
    """
    missing = [c for c in [*KEYS, *metrics] if c not in frame.columns]
    if missing:
        raise ValueError(f"the study frame has no {', '.join(missing)} column: pass final results "
                         "with activation, config, seed and metric columns")  # fmt: skip
    if frame.empty:
        raise ValueError("the study frame has no rows: run the study first")
    twice = frame[frame.duplicated(list(KEYS), keep="first")]
    if not twice.empty:
        names = [f"{r.activation} in {r.config!r} seed {r.seed}" for r in twice.itertuples()]
        raise ValueError(f"models appear more than once ({_listed(names)}): pass one row per "
                         "model, its final epoch")  # fmt: skip
    for metric in metrics:
        empty = frame[frame[metric].isna()]
        if not empty.empty:
            names = [f"{r.activation} in {r.config!r} seed {r.seed}" for r in empty.itertuples()]
            raise ValueError(f"{metric} has no value for {_plural(len(names), 'model')} "
                             f"({_listed(names)}): rerun them or leave them out")  # fmt: skip
    activations = list(dict.fromkeys(frame["activation"]))
    cells = frame.groupby(["config", "activation"], sort=False)["seed"].agg(frozenset)
    holes = [
        f"{a} in {c!r}" for c in dict.fromkeys(frame["config"]) for a in activations
        if (c, a) not in cells.index
    ]  # fmt: skip
    if holes:
        raise ValueError(f"activations missing in some configurations ({_listed(holes)}): run "
                         "them, or leave those configurations out")  # fmt: skip
    for config, seeds in cells.groupby(level="config", sort=False):
        if seeds.nunique() > 1:
            shown = "; ".join(
                f"{a}: {', '.join(str(s) for s in sorted(v))}" for (_, a), v in seeds.items()
            )
            raise ValueError(f"activations in {config!r} have different seeds ({shown}): run "
                             "the same seeds for each")  # fmt: skip


def block_means(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The mean of `metric` over seeds for each configuration and activation.

    Returns a frame of shape (configurations, activations): index `config`, columns
    `activation`, both in the order of their first row; units those of `metric`. Raises
    ValueError for an incomplete grid (`check_grid`).
    """
    check_grid(frame, [metric])
    means = frame.groupby(["config", "activation"], sort=False)[metric].mean().unstack()
    configs = list(dict.fromkeys(frame["config"]))
    activations = list(dict.fromkeys(frame["activation"]))
    return means.loc[configs, activations]


@dataclass(frozen=True, eq=False)  # eq=False: its frames have no single truth value
class Ranking:
    """The activations ranked within each configuration, and whether the ranks differ.

    `mean_ranks`: each activation's mean rank over the configurations (1 = best; tied values
    share the mean of their ranks), best first. `statistic`, `p`: the Friedman chi-square
    statistic (k − 1 degrees of freedom, corrected for ties) and its p-value, NaN when every
    configuration ties every activation. `q_alpha`: Demšar's critical value (the studentized
    range at 1 − alpha with k groups and infinite degrees of freedom, over √2); `cd`: the
    critical difference q_alpha · √(k(k+1)/(6N)) in mean-rank units. `pairs`: one row per
    pair of activations (`first`, `second` in rank order, `rank_difference`, Nemenyi
    `p_nemenyi`, and `differs`: the Friedman test rejected and the pair's mean ranks are
    further apart than `cd`). `means`: the block matrix (`block_means`), shape
    (configurations, activations). `seeds`: the number of seeds per configuration, in
    configuration order. `verdict`: one plain sentence; `method`: what was ranked and how.
    """

    metric: str
    higher_is_better: bool
    alpha: float
    mean_ranks: pd.Series
    statistic: float
    p: float
    q_alpha: float
    cd: float
    pairs: pd.DataFrame
    means: pd.DataFrame
    seeds: pd.Series
    verdict: str
    method: str

    @property
    def configs(self) -> int:
        """The number of blocks N: configurations."""
        return len(self.means)

    @property
    def activations(self) -> int:
        """The number of treatments k: activations."""
        return len(self.mean_ranks)

    @property
    def rejected(self) -> bool:
        """The Friedman test rejects equal ranks at `alpha`."""
        return not math.isnan(self.p) and self.p < self.alpha

    def differing(self) -> list[tuple[str, str]]:
        """The pairs (better, worse) that differ by Nemenyi's test after a Friedman rejection."""
        rows = self.pairs[self.pairs["differs"]]
        return list(zip(rows["first"], rows["second"], strict=True))


def nemenyi_q(alpha: float, k: int) -> float:
    """Demšar's q_alpha for the Nemenyi test of k treatments: the (1 − alpha) quantile of the
    studentized range with k groups and infinite degrees of freedom, over √2
    (scipy.stats.studentized_range). 2.569 for k = 4 at alpha 0.05, as in Demšar (2006)'s
    table of critical values for the two-tailed Nemenyi test.

    Raises ValueError unless 0 < alpha < 1 and k >= 2.
    """
    if not 0 < alpha < 1 or k < 2:
        raise ValueError("need 0 < alpha < 1 and at least 2 treatments")
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)


def _verdict(ranks: pd.Series, statistic: float, p: float, cd: float, alpha: float,
             pairs: pd.DataFrame, n: int) -> str:  # fmt: skip
    blocks = _plural(n, "configuration")
    if math.isnan(p):
        return f"Every activation ties in every one of the {blocks}: nothing to rank."
    test = f"Friedman χ² = {statistic:.2f}, p {p_phrase(p)}"
    best = f"{ranks.index[0]}'s mean rank {ranks.iloc[0]:.2f}"
    if p >= alpha:
        return (f"No difference in rank shown across {blocks} ({test}): the best, {best}, "
                "may be chance.")  # fmt: skip
    differ = pairs[pairs["differs"]]
    if differ.empty:
        return (f"The activations' mean ranks over {blocks} differ ({test}), but no "
                f"pair's are "
                f"further apart than the critical difference {cd:.2f} (Nemenyi, α = {alpha}): "
                "no single pair is told apart.")  # fmt: skip
    above: dict[str, list[str]] = {}  # each worse activation: those ranked beyond CD above it
    for row in differ.itertuples():
        above.setdefault(row.second, []).append(row.first)
    below: dict[tuple[str, ...], list[str]] = {}  # the same better ones, said once
    for worse, better in above.items():
        below.setdefault(tuple(better), []).append(worse)
    said = "; ".join(
        f"{_and(b)} rank{'s' if len(b) == 1 else ''} above {_and(w)}" for b, w in below.items()
    )
    rest = "" if len(differ) == len(pairs) else "; other pairs are within it"
    return (f"The activations' mean ranks over {blocks} differ ({test}); beyond the "
            f"critical difference "
            f"{cd:.2f} (Nemenyi, α = {alpha}): {said}{rest}.")  # fmt: skip


def p_phrase(p: float) -> str:
    """'= 0.031' or '< 0.001': a p-value to follow 'p' in a sentence (`summary.p_value`)."""
    shown = p_value(p)
    return shown if shown.startswith("<") else f"= {shown}"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def rank_activations(
    frame: pd.DataFrame,
    metric: str = "test_accuracy",
    higher_is_better: bool = True,
    alpha: float = ALPHA,
) -> Ranking:
    """Rank the activations within each configuration and test whether the ranks differ.

    Each configuration is one block and each activation one treatment: `metric` is first
    averaged over the configuration's seeds (a block is one number per activation, not one per
    seed), then the activations are ranked within each configuration (1 = best; ties share
    their mean rank). The Friedman test (scipy.stats.friedmanchisquare) asks whether the mean
    ranks differ; when it rejects at `alpha`, a pair differs by the Nemenyi post-hoc test when
    its mean ranks are further apart than the critical difference CD = q_alpha √(k(k+1)/(6N))
    (`nemenyi_q`; Demšar 2006; the pairs' p-values are scikit-posthocs'
    posthoc_nemenyi_friedman). Demšar's rule of thumb is N > 10 configurations and k > 5 activations
    for the chi-square p-value to be accurate; with fewer it is approximate.

    `frame`: a study's final results (see the module). Raises ValueError (one line) for fewer
    than 3 activations (scipy's Friedman test needs 3; compare two with
    `per_config_differences`), fewer than 2 configurations, alpha outside (0, 1), or an
    incomplete grid (`check_grid`).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    means = block_means(frame, metric)
    n, k = means.shape
    if k < 3:
        raise ValueError(f"ranking needs at least 3 activations for the Friedman test, the study "
                         f"has {k} ({_and([str(a) for a in means.columns])}): compare them with "
                         "the paired differences per configuration")  # fmt: skip
    if n < 2:
        raise ValueError(f"ranking needs at least 2 configurations as blocks, the study has {n} "
                         f"({_and([repr(c) for c in means.index])}): compare the activations "
                         "with the paired differences instead")  # fmt: skip
    values = means.to_numpy(dtype=float)
    ranks = stats.rankdata(-values if higher_is_better else values, axis=1, method="average")
    mean_ranks = pd.Series(ranks.mean(axis=0), index=means.columns, name="mean_rank")
    mean_ranks = mean_ranks.sort_values(kind="stable")
    if (ranks == ranks[:, :1]).all():  # every block a complete tie: no test is defined
        statistic = p = math.nan
    else:
        result = stats.friedmanchisquare(*values.T)
        statistic, p = float(result.statistic), float(result.pvalue)
    q = nemenyi_q(alpha, k)
    cd = q * math.sqrt(k * (k + 1) / (6 * n))
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(values)
    position = {a: i for i, a in enumerate(means.columns)}
    order = list(mean_ranks.index)
    rows = []
    for i, first in enumerate(order):
        for second in order[i + 1 :]:
            gap = float(mean_ranks[second] - mean_ranks[first])
            rows.append({"first": first, "second": second, "rank_difference": gap,
                         "p_nemenyi": float(nemenyi.iloc[position[first], position[second]]),
                         "differs": bool(not math.isnan(p) and p < alpha and gap > cd)})  # fmt: skip
    pairs = pd.DataFrame(rows, columns=["first", "second", "rank_difference", "p_nemenyi",
                                        "differs"])  # fmt: skip
    seeds = frame.groupby("config", sort=False)["seed"].nunique().loc[means.index]
    low, high = int(seeds.min()), int(seeds.max())
    per = f"{low} each" if low == high else f"{low} to {high}"
    method = (
        f"Each of the {_plural(n, 'configuration')} is one block: {metric} averaged over its "
        f"seeds ({per}), then the {k} activations ranked within it (1 = "
        f"{'highest' if higher_is_better else 'lowest'}); {FRIEDMAN} (Demšar 2006), "
        f"α = {alpha}."
    )
    verdict = _verdict(mean_ranks, statistic, p, cd, alpha, pairs, n)
    return Ranking(metric, higher_is_better, alpha, mean_ranks, statistic, p, q, cd, pairs,
                   means, seeds.rename("seeds"), verdict, method)  # fmt: skip


def _paired_rows(pairs: list[tuple[dict, pd.Series, pd.Series]], alpha: float) -> list[dict]:
    """Paired t tests (`stats.paired_test`) of each (row, values, baseline) by seed, with Holm's
    correction over all of them (`stats.holm`)."""
    rows = []
    for row, values, base in pairs:
        test = paired_test(values.tolist(), base.loc[values.index].tolist())
        rows.append({**row, "seeds": test.n, "difference": test.mean, "low": test.low,
                     "high": test.high, "t": test.t, "p": test.p, "d_z": test.d_z})  # fmt: skip
    adjusted, rejected = holm([row["p"] for row in rows], alpha)
    for row, p_holm, reject in zip(rows, adjusted, rejected, strict=True):
        row.update(p_holm=p_holm, significant=reject)
    return rows


def _by_seed(frame: pd.DataFrame, metric: str, activation: str, config: str) -> pd.Series:
    cell = frame[(frame["activation"] == activation) & (frame["config"] == config)]
    return cell.set_index("seed")[metric].sort_index()


def _check_baseline(frame: pd.DataFrame, baseline: str) -> list[str]:
    activations = [str(a) for a in dict.fromkeys(frame["activation"])]
    if baseline not in activations:
        raise ValueError(f"baseline {baseline!r} is not among the activations "
                         f"({', '.join(activations)}): name one of them")  # fmt: skip
    if len(activations) < 2:
        raise ValueError(f"only one activation ({baseline}): nothing to compare it with")
    return activations


def per_config_differences(
    frame: pd.DataFrame, baseline: str, metric: str = "test_accuracy", alpha: float = ALPHA
) -> pd.DataFrame:
    """In each configuration, each activation's `metric` minus the baseline's, paired by seed.

    One row per (configuration, other activation), configurations in order: the mean paired
    difference (units of `metric`: for accuracies a fraction, 0.01 is one point), its 95%
    paired t interval, t and the two-sided p-value of the paired t test (scipy.stats.ttest_rel,
    through `stats.paired_test`), Cohen's d_z, and `p_holm`: the p-value adjusted by Holm's
    correction over every comparison of the study (all configurations together, statsmodels'
    multipletests). `significant`: p_holm below `alpha`. Columns: `DIFFERENCE_COLUMNS`.

    Raises ValueError (one line) when the baseline is not an activation of the frame, there is
    no other activation, or the grid is incomplete (`check_grid`).
    """
    check_grid(frame, [metric])
    activations = _check_baseline(frame, baseline)
    work = []
    for config in dict.fromkeys(frame["config"]):
        base = _by_seed(frame, metric, baseline, config)
        for activation in activations:
            if activation != baseline:
                values = _by_seed(frame, metric, activation, config)
                row = {"config": config, "activation": activation, "baseline": baseline}
                work.append((row, values, base))
    return pd.DataFrame(_paired_rows(work, alpha), columns=DIFFERENCE_COLUMNS)


def best_configs(
    frame: pd.DataFrame, metric: str = "val_accuracy", higher_is_better: bool = True
) -> pd.DataFrame:
    """Each activation's best configuration by the mean of `metric` over seeds.

    One row per activation, in order: `activation`, `config` (the best), `select_mean` (its
    mean `metric`), `tied_with` (the other configurations whose mean equals it to 1e-12
    relative, comma-separated; empty when none). A tie goes to the configuration that comes
    first in the frame's order. Raises ValueError for an incomplete grid (`check_grid`).
    """
    means = block_means(frame, metric)
    rows = []
    for activation in means.columns:
        column = means[activation]
        best = column.max() if higher_is_better else column.min()
        tied = [c for c in column.index if math.isclose(column[c], best, rel_tol=1e-12)]
        rows.append({"activation": activation, "config": tied[0], "select_mean": column[tied[0]],
                     "tied_with": ", ".join(str(c) for c in tied[1:])})  # fmt: skip
    return pd.DataFrame(rows, columns=["activation", "config", "select_mean", "tied_with"])


def tuned_comparison(
    frame: pd.DataFrame,
    baseline: str,
    select_metric: str = "val_accuracy",
    test_metric: str = "test_accuracy",
    higher_is_better: bool = True,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Each activation at its own best settings against the baseline at its own, beside all
    of them at the baseline's best settings.

    Selection: each activation's configuration with the best mean `select_metric` over seeds
    (`best_configs`; a tie goes to the configuration first in the frame's order, and
    `tied_with` names the others). Rows with `comparison` "tuned": each other activation at its
    own best configuration minus the baseline at the baseline's best, on `test_metric`, paired
    by seed. Rows with `comparison` "shared": each other activation minus the baseline, both at
    the baseline's best configuration (the untuned comparison at shared settings; every
    configuration is in `per_config_differences`). The statistics are those of
    `per_config_differences` (paired t test, 95% interval, d_z); Holm's correction is over
    each family of comparisons on its own ("tuned", "shared"). Columns: `TUNED_COLUMNS`;
    `config` is the configuration the activation was tested in, `select_mean` its mean
    `select_metric` there.

    Raises ValueError (one line) when `select_metric` has no values (runs without a
    validation split), when it is the test metric (choosing on the test set overstates it),
    for an unknown baseline, one activation, or an incomplete grid (`check_grid`).
    """
    if select_metric == test_metric:
        raise ValueError(f"choosing settings on {test_metric}, the metric they are compared on, "
                         "would overstate it: choose them on a validation metric")  # fmt: skip
    if select_metric not in frame.columns or frame[select_metric].isna().all():
        raise ValueError(f"no validation metric ({select_metric} has no values): rerun the "
                         "study with a validation split (--val N) to choose settings on it")  # fmt: skip
    check_grid(frame, [select_metric, test_metric])
    activations = _check_baseline(frame, baseline)
    best = best_configs(frame, select_metric, higher_is_better).set_index("activation")
    base_config = best.loc[baseline, "config"]
    families = []
    for comparison in ("tuned", "shared"):
        base = _by_seed(frame, test_metric, baseline, base_config)
        work = []
        for activation in activations:
            if activation == baseline:
                continue
            config = best.loc[activation, "config"] if comparison == "tuned" else base_config
            values = _by_seed(frame, test_metric, activation, config)
            if list(values.index) != list(base.index):
                raise ValueError(f"{activation} in {config!r} and {baseline} in {base_config!r} "
                                 "have different seeds: run the same seeds in every "
                                 "configuration to pair them")  # fmt: skip
            select = frame[(frame["activation"] == activation) & (frame["config"] == config)]
            row = {"comparison": comparison, "activation": activation, "config": config,
                   "tied_with": best.loc[activation, "tied_with"] if comparison == "tuned" else "",
                   "select_mean": float(select[select_metric].mean()),
                   "baseline_config": base_config, "baseline": baseline}  # fmt: skip
            work.append((row, values, base))
        families += _paired_rows(work, alpha)
    return pd.DataFrame(families, columns=TUNED_COLUMNS)
