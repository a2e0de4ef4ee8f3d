"""The numbers a comparison is judged by: per-activation summaries over seeds, paired differences."""

from __future__ import annotations

import math

import pandas as pd

from actbench.stats import mean_ci, paired_difference


def final_rows(frame: pd.DataFrame, key: str = "activation") -> pd.DataFrame:
    """Each (key, seed)'s last row: its final epoch, or the epoch where it diverged.

    Runs repeated with the same seed and settings count once (their numbers are averaged):
    a seed is one independent sample however often it was run.
    """
    last = frame.groupby([key, "seed"], sort=False)["epoch"].transform("max")
    finals = frame[frame["epoch"] == last]
    return finals.groupby([key, "seed"], sort=False, as_index=False).mean(numeric_only=True)


def summarize(frame: pd.DataFrame, key: str = "activation") -> pd.DataFrame:
    """One row per activation (or per `key`): final test accuracy over seeds with its 95%
    interval, the best epoch of the mean curve, final losses, seconds per epoch (of the whole
    epoch, shared with the models trained together), divergence.

    With one seed the interval bounds are NaN.
    """
    rows = []
    finals = final_rows(frame, key)
    for name, group in frame.groupby(key, sort=False):
        by_epoch = group.groupby("epoch").mean(numeric_only=True)
        final = finals[finals[key] == name]
        accuracy = mean_ci(final["test_accuracy"].tolist())
        diverged = group[group["status"] == "diverged"]
        rows.append(
            {
                key: name,
                "seeds": final["seed"].nunique(),
                "final_test_accuracy": accuracy.mean,
                "final_test_accuracy_low": accuracy.low,
                "final_test_accuracy_high": accuracy.high,
                "best_test_accuracy": by_epoch["test_accuracy"].max(),
                "best_epoch": int(by_epoch["test_accuracy"].idxmax()),
                "final_train_loss": final["train_loss"].mean(),
                "final_test_loss": final["test_loss"].mean(),
                "seconds_per_epoch": group["epoch_seconds"].mean(),
                "diverged_seeds": diverged["seed"].nunique(),
                "diverged_epoch": int(diverged["epoch"].min()) if len(diverged) else None,
            }
        )
    return pd.DataFrame(rows)


def compare(frame: pd.DataFrame, baseline: str, key: str = "activation") -> pd.DataFrame:
    """Each other activation's final test accuracy minus the baseline's, paired by seed.

    Pairs share their initial weights and batch order, so the per-seed differences measure the
    activation alone; the 95% interval is a paired t interval over the seeds both have.
    `significant` says whether it excludes zero (never, with one seed).
    """
    finals = final_rows(frame, key).set_index([key, "seed"])["test_accuracy"]
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
        diff = paired_difference(mine.loc[seeds].tolist(), base.loc[seeds].tolist())
        rows.append(
            {
                key: name,
                "baseline": baseline,
                "seeds": len(seeds),
                "difference": diff.mean,
                "low": diff.low,
                "high": diff.high,
                "significant": diff.significant,
            }
        )
    return pd.DataFrame(
        rows, columns=[key, "baseline", "seeds", "difference", "low", "high", "significant"]
    )


def percent_interval(mean: float, low: float, high: float, signed: bool = False) -> str:
    """'97.88% ± 0.12' (or '+0.31 ± 0.20' points), or the mean alone when there is no interval."""
    value = f"{100 * mean:+.2f}" if signed else f"{100 * mean:.2f}%"
    if math.isnan(low):
        return value
    return f"{value} ± {100 * (high - low) / 2:.2f}"
