"""A self-contained Markdown report of the runs under a folder: settings, tables, figures."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from actbench.cost import METHOD, describe, kibibytes, microseconds
from actbench.errors import UsageError
from actbench.plots import cost_summary, label_series
from actbench.results import write_or_explain
from actbench.summary import compare, percent_interval, summarize

REPORT = "report.md"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _settings(frame: pd.DataFrame) -> str:
    settings = {c[4:]: frame[c].unique().tolist() for c in frame.columns if c.startswith("cfg_")}
    hidden = {"data_dir", "results_dir", "download", "workers", "threads", "baseline"}
    rows = [
        [key, ", ".join(map(str, values))] for key, values in settings.items() if key not in hidden
    ]
    return _table(["setting", "value"], rows) if rows else "(no manifest found)"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}%"


def _cost(frame: pd.DataFrame, cost: pd.DataFrame | None) -> list[str]:
    """The cost section: each activation's measured time per step and saved memory."""
    parts = ["## Cost", ""]
    table = cost_summary(frame, cost) if cost is not None and not cost.empty else None
    measured = set() if table is None else set(table["run"].astype(str))
    missing = [str(r) for r in frame["run"].unique() if str(r) not in measured]
    if table is not None:
        rows = [
            [r.label, f"{r.device}, {r.threads} thread{'' if r.threads == 1 else 's'}",
             f"{r.batch_size} × {r.hidden}", microseconds(r.seconds, r.low, r.high),
             str(r.rounds), kibibytes(r.saved_bytes), kibibytes(r.extra_saved_bytes)]
            for r in table.itertuples(index=False)
        ]  # fmt: skip
        parts += [
            _table(
                [
                    "activation",
                    "device",
                    "batch × hidden",
                    "µs per step (95% interval)",
                    "rounds",
                    "saved KiB",
                    "extra KiB",
                ],
                rows,
            ),
            "",
            f"Measured after training, in each run's own folder (`cost.csv`): {describe(table)}. "
            "Each activation ran its warm-up steps (discarded), then a calibration chose how many "
            "steps each measurement times (enough for a few milliseconds); in every round each "
            "activation was measured once, the order changing from round to round (a Williams "
            "design over the labels sorted by name, so no activation is always first and the "
            f"order they were listed in plays no part). Values: {METHOD}. The time includes "
            "PyTorch's per-call overhead, much the same for every activation (an `identity` "
            "activation shows it alone). Saved KiB: the tensors autograd keeps for the backward pass of both "
            "layers, each storage counted once, the input included when kept, the activation's "
            "own parameters not; extra KiB: the part that is not the activation's output, which "
            "the next layer keeps anyway.",
            "",
        ]
    for run in missing:
        parts += [
            f"No cost measurement for run `{run}` (no `cost.csv`): the run did not complete, "
            "or was made before actbench measured cost.",
            "",
        ]
    return parts


def write_report(
    frame: pd.DataFrame,
    figures: list[Path],
    out_dir: Path,
    baseline: str | None = None,
    cost: pd.DataFrame | None = None,
) -> Path:
    """Write `report.md` into `out_dir` (where the figures are) and return its path.

    The report stands alone: its settings, summary and pairwise tables, the activations' cost
    (`cost`: `actbench.cost.read_costs` of the same folder; None reports none measured), and
    figures linked by relative paths, so the folder can be copied anywhere.
    """
    frame = frame.assign(label=label_series(frame))
    summary = summarize(frame, key="label")
    seeds = int(summary["seeds"].max())
    labels = summary["label"].tolist()
    chosen = frame["cfg_baseline"].unique().tolist() if "cfg_baseline" in frame else []
    if baseline is None and len(chosen) == 1 and chosen[0] != "None":
        baseline = chosen[0]  # the run's own --baseline
    if baseline is not None and baseline not in labels:
        raise UsageError(f"baseline {baseline!r} is not among the lines ({', '.join(labels)})")
    base = baseline or labels[0]
    runs = ", ".join(f"`{r}`" for r in frame["run"].unique())
    parts = [
        "# Activation comparison",
        "",
        f"Runs: {runs}. Each model is the 784-H-H-10 network trained on MNIST; "
        + (
            f"every activation was trained with {seeds} seeds (one model per seed), and values "
            "are means with their 95% confidence interval over the seeds (Student's t)."
            if seeds > 1
            else "every activation was trained once (one seed), so no interval can be given: "
            "rerun with `--seeds 5` to tell real differences from noise."
        ),
        "",
        "## Settings",
        "",
        _settings(frame),
        "",
        "## Summary",
        "",
    ]
    rows = []
    for row in summary.itertuples(index=False):
        accuracy = percent_interval(
            row.final_test_accuracy, row.final_test_accuracy_low, row.final_test_accuracy_high
        )
        if row.diverged_seeds:
            accuracy += f" ({row.diverged_seeds} of {row.seeds} seeds diverged, first at epoch {row.diverged_epoch})"
        rows.append([row.label, accuracy, f"{_percent(row.best_test_accuracy)} (epoch {row.best_epoch})",
                     f"{row.final_train_loss:.4f}", f"{row.final_test_loss:.4f}"])  # fmt: skip
    parts += [
        _table(
            [
                "activation",
                "final test accuracy",
                "best (epoch)",
                "train loss",
                "test loss",
            ],
            rows,
        ),
        "",
        f"A whole epoch took {frame['epoch_seconds'].mean():.2f} s on average (shared by the "
        "models trained together); what each activation costs on its own is measured below.",
        "",
    ]
    pairs = compare(frame, base, key="label")
    if not pairs.empty:
        parts += [f"## Differences from {base}", ""]
        pair_rows = []
        for row in pairs.itertuples(index=False):
            if seeds > 1:
                interval = f"{100 * row.low:+.2f} to {100 * row.high:+.2f}"
                verdict = "**yes**" if row.significant else "no: within the noise"
            else:
                interval, verdict = "n/a", "n/a (one seed)"
            pair_rows.append([row.label, f"{100 * row.difference:+.2f}", interval, verdict])
        parts += [
            _table(
                [
                    "activation",
                    f"final test accuracy minus {base} (points)",
                    "95% interval",
                    "real difference?",
                ],
                pair_rows,
            ),
            "",
            "Differences are paired by seed: for a given seed both networks start from the same "
            "weights and see the same batches, so the interval is the one of the per-seed "
            "differences. A difference is real (at the 95% level) when its interval excludes zero.",
            "",
        ]
    parts += _cost(frame, cost)
    parts += ["## Figures", ""]
    for path in figures:
        name = path.stem.replace("_", " ")
        parts += [f"![{name}]({os.path.relpath(path, out_dir)})", ""]
    path = out_dir / REPORT
    write_or_explain(path, "\n".join(parts), "choose another folder with --out")
    return path
