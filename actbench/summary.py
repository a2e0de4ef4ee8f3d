"""The numbers a comparison is judged by: per-activation summaries over seeds, paired differences.

Every function here takes a frame with one model per (key, seed): a run's metrics, or the
`frame` of `actbench.selection.select_models` with key "label". They compare the models at one
epoch that every model reached (by default the last such epoch), never at each model's own
last epoch, so a model that stopped early is not set against others' later epochs.
"""

from __future__ import annotations

import math

import pandas as pd

from actbench.stats import holm, mean_ci, paired_test

ALPHA = 0.05  # the family-wise error rate of the verdicts (Holm)


def check_one_model_each(frame: pd.DataFrame, key: str = "activation") -> None:
    """Raise ValueError if `frame` has more than one row for a (key, seed, epoch)."""
    repeats = frame.duplicated([key, "seed", "epoch"])
    if repeats.any():
        first = frame[repeats].iloc[0]
        raise ValueError(
            f"{first[key]} seed {first['seed']} has several rows for epoch {first['epoch']}: the "
            "same model from several runs; choose one with actbench.selection.select_models"
        )


def _diverged_epochs(frame: pd.DataFrame, key: str) -> pd.Series:
    """The epoch each (key, seed) diverged in; models that did not diverge are absent."""
    diverged = frame[frame["status"] == "diverged"]
    return diverged.groupby([key, "seed"], sort=False)["epoch"].min()


def comparison_epoch(frame: pd.DataFrame, key: str = "activation") -> int:
    """The last epoch every model in `frame` reached.

    A model that diverged stopped on purpose: it counts as having reached every epoch (with
    the numbers of the epoch it diverged in). When every model diverged, the latest epoch
    any of them diverged in.
    """
    check_one_model_each(frame, key)
    last = frame.groupby([key, "seed"], sort=False)["epoch"].max()
    diverged = _diverged_epochs(frame, key)
    running = last.drop(diverged.index)
    return int(running.min()) if len(running) else int(diverged.max())


def rows_upto(frame: pd.DataFrame, epoch: int, key: str = "activation") -> pd.DataFrame:
    """Each (key, seed)'s rows for epochs 1 to `epoch`, one per epoch.

    A model that diverged before `epoch` has its diverged row repeated for every later epoch
    (with `epoch` set to each of them). Raises ValueError if a model stopped before `epoch`
    without diverging.
    """
    check_one_model_each(frame, key)
    diverged = _diverged_epochs(frame, key)
    parts = []
    for (name, seed), rows in frame.groupby([key, "seed"], sort=False):
        rows = rows[rows["epoch"] <= epoch].sort_values("epoch")
        last = int(rows["epoch"].max())
        if last < epoch:
            if (name, seed) not in diverged.index:
                raise ValueError(f"{name} seed {seed} stopped at epoch {last}, before {epoch}")
            repeated = pd.concat([rows.iloc[[-1]]] * (epoch - last), ignore_index=True)
            rows = pd.concat([rows, repeated.assign(epoch=range(last + 1, epoch + 1))])
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def rows_at(frame: pd.DataFrame, epoch: int, key: str = "activation") -> pd.DataFrame:
    """Each (key, seed)'s row at `epoch`, or its diverged row if it diverged before."""
    upto = rows_upto(frame, epoch, key)
    return upto[upto["epoch"] == epoch].reset_index(drop=True)


def best_epoch(rows: pd.DataFrame) -> int | None:
    """The epoch of the highest mean validation accuracy over seeds, or None without one.

    `rows`: one label's rows from `rows_upto` (each seed at every epoch). An epoch where any
    seed lacks a validation accuracy is not a candidate; ties go to the earliest epoch. The
    test set never takes part in the choice.
    """
    if "val_accuracy" not in rows:
        return None
    curve = rows.groupby("epoch")["val_accuracy"].mean(skipna=False).dropna()
    return int(curve.idxmax()) if len(curve) else None


def summarize(
    frame: pd.DataFrame, key: str = "activation", epoch: int | None = None
) -> pd.DataFrame:
    """One row per activation (or per `key`) at `epoch` (default: `comparison_epoch`).

    Columns: the number of seeds; `epoch`; mean test accuracy over seeds with its 95% interval
    (Student's t; NaN bounds for one seed); the epoch chosen on the mean validation accuracy
    curve up to `epoch` (`best_epoch`, None without a validation split) with its mean
    validation accuracy and its test accuracy and interval; mean training and test loss; the
    mean seconds per epoch (of the whole epoch, shared with the models trained together); how
    many seeds diverged by `epoch`, and the first such epoch.
    """
    epoch = comparison_epoch(frame, key) if epoch is None else epoch
    upto = rows_upto(frame, epoch, key)
    rows = []
    for name, group in frame.groupby(key, sort=False):
        mine = upto[upto[key] == name]
        final = mine[mine["epoch"] == epoch]
        accuracy = mean_ci(final["test_accuracy"].tolist())
        best = best_epoch(mine)
        at_best = mine[mine["epoch"] == best] if best is not None else None
        best_test = mean_ci(at_best["test_accuracy"].tolist()) if at_best is not None else None
        diverged = mine[mine["status"] == "diverged"].drop_duplicates(["seed"])
        rows.append(
            {
                key: name,
                "seeds": final["seed"].nunique(),
                "epoch": epoch,
                "test_accuracy": accuracy.mean,
                "test_accuracy_low": accuracy.low,
                "test_accuracy_high": accuracy.high,
                "best_epoch": best,
                "best_val_accuracy": at_best["val_accuracy"].mean()
                if at_best is not None
                else math.nan,
                "best_test_accuracy": best_test.mean if best_test is not None else math.nan,
                "best_test_accuracy_low": best_test.low if best_test is not None else math.nan,
                "best_test_accuracy_high": best_test.high if best_test is not None else math.nan,
                "train_loss": final["train_loss"].mean(),
                "test_loss": final["test_loss"].mean(),
                "seconds_per_epoch": group["epoch_seconds"].mean(),
                "diverged_seeds": diverged["seed"].nunique(),
                "diverged_epoch": int(diverged["epoch"].min()) if len(diverged) else None,
            }
        )
    return pd.DataFrame(rows)


COMPARE_COLUMNS = ["baseline", "seeds", "difference", "low", "high", "t", "p", "p_holm", "d_z",
                   "significant"]  # fmt: skip


def compare(
    frame: pd.DataFrame,
    baseline: str,
    key: str = "activation",
    epoch: int | None = None,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Each other activation's test accuracy at `epoch` minus the baseline's, paired by seed.

    `epoch` defaults to `comparison_epoch`. For each activation, over the seeds both have:
    the mean difference (a fraction: 0.01 is one point) with its 95% paired t interval, the
    paired t statistic and two-sided p-value (scipy.stats.ttest_rel), the paired effect size
    Cohen's d_z, and the p-value adjusted by Holm's correction over all the comparisons with
    the baseline (`stats.holm`). `significant`: the adjusted p-value is below `alpha` (never
    with one seed). The intervals are each at 95%, not adjusted for the number of comparisons.
    Raises ValueError if `baseline` is not in the frame.
    """
    epoch = comparison_epoch(frame, key) if epoch is None else epoch
    finals = rows_at(frame, epoch, key).set_index([key, "seed"])["test_accuracy"]
    if baseline not in finals.index.get_level_values(0):
        raise ValueError(f"baseline {baseline!r} is not in the results")
    base = finals.loc[baseline]
    rows = []
    for name in dict.fromkeys(finals.index.get_level_values(0)):
        if name == baseline:
            continue
        mine = finals.loc[name]
        seeds = [s for s in mine.index if s in base.index]
        if not seeds:
            continue
        test = paired_test(mine.loc[seeds].tolist(), base.loc[seeds].tolist())
        rows.append({key: name, "baseline": baseline, "seeds": len(seeds),
                     "difference": test.mean, "low": test.low, "high": test.high, "t": test.t,
                     "p": test.p, "d_z": test.d_z})  # fmt: skip
    adjusted, rejected = holm([row["p"] for row in rows], alpha)
    for row, p_holm, reject in zip(rows, adjusted, rejected, strict=True):
        row.update(p_holm=p_holm, significant=reject)
    return pd.DataFrame(rows, columns=[key, *COMPARE_COLUMNS])


def percent_interval(mean: float, low: float, high: float, signed: bool = False) -> str:
    """'97.88% ± 0.12' (or '+0.31 ± 0.20' points), or the mean alone when there is no interval."""
    value = f"{100 * mean:+.2f}" if signed else f"{100 * mean:.2f}%"
    if math.isnan(low):
        return value
    return f"{value} ± {100 * (high - low) / 2:.2f}"


def p_value(p: float) -> str:
    """A p-value as reports print it: 'p = 0.031', 'p < 0.001', or 'n/a' when there is none."""
    if math.isnan(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
