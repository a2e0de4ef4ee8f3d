"""The end of a study in the terminal: one line per configuration (the report has the rest)."""

from __future__ import annotations

import pandas as pd
from rich import box
from rich.table import Table

from actbench.names import config_name
from actbench.summary import summarize


def by_configuration(frame: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """Each configuration's rows, named 'depth=8 lr=0.01', in the order of the CSV.

    `keys` are the settings the study varies (columns of `frame`); a name gives momentum only
    where it applies (SGD's configurations, not Adam's).
    """
    groups = []
    for values, rows in frame.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        groups.append((config_name(dict(zip(keys, values, strict=True))), rows))
    return groups


def study_table(frame: pd.DataFrame, keys: list[str]) -> Table:
    """Per configuration: the best and the worst activation by mean test accuracy over seeds.

    Each configuration is read at the last epoch all its models reached (`summarize`);
    diverged models count as they ended. Raises ValueError on an empty frame.
    """
    if frame.empty:
        raise ValueError("no finished epochs to summarise")
    seeds = int(frame.groupby([*keys, "activation"])["seed"].nunique().max())
    table = Table(
        title=f"Test accuracy per configuration, mean over {seeds} seed{'s' * (seeds > 1)}",
        caption="at each configuration's last common epoch; the report has every activation "
        "with its interval",
        box=box.SIMPLE_HEAVY,
    )
    for heading in ("configuration", "epoch", "best", "", "worst", ""):
        table.add_column(heading, justify="right" if heading in ("epoch", "") else "left")
    for name, rows in by_configuration(frame, keys):
        summary = summarize(rows.drop(columns=keys)).sort_values(
            "test_accuracy", ascending=False, kind="stable"
        )
        best, worst = summary.iloc[0], summary.iloc[-1]
        table.add_row(
            name,
            str(int(summary["epoch"].iloc[0])),
            str(best["activation"]),
            f"{100 * best['test_accuracy']:.2f}%",
            str(worst["activation"]),
            f"{100 * worst['test_accuracy']:.2f}%",
        )
    return table
