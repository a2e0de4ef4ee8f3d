"""The terminal's tables and lines: what a run and `actbench activations` print."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from actbench.cost import kibibytes, microseconds, read_cost, summarize_cost, where
from actbench.stats import HOLM
from actbench.summary import ALPHA, compare, comparison_epoch, p_value, percent_interval, summarize
from actbench.train import EpochResult

EPOCH_HEADING = "Test accuracy after each epoch, with the epoch's time in brackets:"


def epoch_line(rows: list[EpochResult], epochs: int, seeded: bool, width: int = 80) -> str:
    """One finished epoch: its number, its time and every model's test accuracy.

    `epoch 3/10 (5.1 s)  relu 97.27%  sigmoid 96.85%` (`seed 0 epoch 3/10 ...` with several
    seeds), under `EPOCH_HEADING`. Where that is wider than `width` columns, the models go on
    over further lines, each indented to the first model, so that no line is wider; a model is
    never split from its number, and only a label too long for a line of its own is broken
    (after its punctuation, as in the tables).
    """
    seconds = max(r.epoch_seconds for r in rows)
    where = f"seed {rows[0].seed} " if seeded else ""
    prefix = f"{where}epoch {rows[0].epoch}/{epochs} ({seconds:.1f} s)  "
    entries = [
        f"{r.activation} {100 * r.test_accuracy:.2f}%"
        + (" (diverged)" if r.status == "diverged" else "")
        for r in rows
    ]
    indent = cell_len(prefix) if cell_len(prefix) <= width // 2 else 4
    room = width - indent
    lines, line = [], prefix
    for entry, row in zip(entries, rows, strict=True):
        if cell_len(entry) > room:  # a label too long for any line: its own lines
            number = entry[len(row.activation) :]
            parts = Label(row.activation).lines(max(1, room - cell_len(number)))
            parts[-1] += number
            lines.append(line.rstrip())
            lines += [" " * indent + part for part in parts[:-1]]
            line = " " * indent + parts[-1]
            continue
        gap = "" if line == prefix else "  "
        if cell_len(line + gap + entry) <= width:
            line += gap + entry
        else:
            lines.append(line.rstrip())
            line = " " * indent + entry
    lines.append(line.rstrip())
    return "\n".join(lines)


def _loss(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.3g}"


def summary_table(run_dir: Path, frame: pd.DataFrame) -> Table:
    """The end-of-run table at the last epoch every model reached: accuracy (with its interval
    over seeds), the best epoch chosen on the validation split (if the run has one), losses,
    time."""
    summary = summarize(frame)
    seeds = int(summary["seeds"].max())
    epoch = int(summary["epoch"].iloc[0])
    with_val = summary["best_epoch"].notna().any()
    over = f", mean ± 95% interval over {_count(seeds, 'seed')}" if seeds > 1 else ""
    wall = frame["epoch_seconds"].mean()
    chosen = (
        "best (ep): the epoch of the highest mean validation accuracy, with its test accuracy"
        if with_val
        else "no validation split (--val 0): no best epoch is chosen (not on the test set)"
    )
    table = Table(
        title=f"Results in {run_dir}\nat epoch {epoch}{over}",
        caption=f"{chosen}; an epoch took {wall:.2f} s (shared by the models trained together)",
        box=box.SIMPLE_HEAVY,
    )
    rows = []
    for row in summary.itertuples(index=False):
        accuracy = percent_interval(
            row.test_accuracy, row.test_accuracy_low, row.test_accuracy_high
        )
        if row.diverged_seeds:
            where = f"ep {int(row.diverged_epoch)}"
            accuracy = (
                f"diverged {where}"
                if row.diverged_seeds == row.seeds
                else f"{accuracy} ({row.diverged_seeds} diverged)"
            )
        best = []
        if with_val:
            best = [
                "n/a"
                if pd.isna(row.best_epoch)
                else f"{100 * row.best_test_accuracy:.2f}% ({int(row.best_epoch)})"
            ]
        rows.append([row.activation, accuracy, *best, _loss(row.train_loss),
                     _loss(row.test_loss)])  # fmt: skip
    headings = ["test acc", *(["best (ep)"] if with_val else []), "train loss", "test loss"]
    return _fill(table, headings, rows)


def cost_table(run_dir: Path, frame: pd.DataFrame) -> Table | None:
    """Each activation's measured cost from the run's `cost.csv` (None where it has none).

    The time of one training step's activation work with its 95% interval, and the memory
    its backward pass keeps; rows in the order of `frame`'s activations.
    """
    cost = summarize_cost(read_cost(run_dir))
    if cost.empty:
        return None
    order = {label: i for i, label in enumerate(dict.fromkeys(frame["activation"]))}
    cost = cost.sort_values("activation", key=lambda s: s.map(order).fillna(len(order)))
    table = Table(
        title="What each activation costs per training step, measured after training",
        caption=f"f(x) µs: forward + backward through both hidden layers ({where(cost)}), "
        "median of interleaved rounds; extra KiB: kept beyond the output. How: the report of actbench plot",
        box=box.SIMPLE_HEAVY,
    )
    rows = []
    for row in cost.itertuples(index=False):
        interval = microseconds(row.low) + "–" + microseconds(row.high)
        rows.append([row.activation, microseconds(row.seconds),
                     "n/a" if pd.isna(row.low) else interval, kibibytes(row.saved_bytes),
                     kibibytes(row.extra_saved_bytes)])  # fmt: skip
    return _fill(table, ["f(x) µs", "95% interval", "saved KiB", "extra KiB"], rows)


FIT_COLUMNS = 80  # the terminal width every table must fit


def _fill(table: Table, headings: list[str], rows: list[list[str]]) -> Table:
    """Add the activation column, one column per heading, and `rows` (label first); return it.

    A number is never cut or wrapped: where the terminal is narrow, the activation's label
    wraps instead (a label without spaces, such as `package.module:Class`, folds onto further
    lines). Where the table with one-line headings would not fit 80 columns, a heading wider
    than every value under it takes two lines, so that its column is as narrow as its numbers.
    """
    table.add_column("activation")
    values = [max((cell_len(row[i]) for row in rows), default=0) for i in range(len(headings) + 1)]
    label = max(values[0], len("activation"))
    one_line = label + sum(max(cell_len(h), w) for h, w in zip(headings, values[1:], strict=True))
    squeeze = one_line + 3 * (len(headings) + 1) > FIT_COLUMNS
    for i, heading in enumerate(headings, start=1):
        if squeeze and cell_len(heading) > values[i] and " " in heading:
            heading = _two_lines(heading)
        table.add_column(heading, justify="right", no_wrap=True)
    for label, *numbers in rows:
        table.add_row(Label(label), *numbers)
    return table


class Label:
    """An activation's label in a table cell: whole where it fits, else broken after a '.',
    ':', '=', '_', ',' or space (`torch.nn.functional:` over `hardswish`), and only where a
    part is still too long, anywhere."""

    def __init__(self, text: str) -> None:
        self.text = text

    def parts(self) -> list[str]:
        return [p for p in re.split(r"(?<=[.:=_, ])", self.text) if p]

    def lines(self, width: int) -> list[str]:
        """The label as lines of at most `width` cells (width >= 1)."""
        lines, line = [], ""
        for part in self.parts():
            if line and cell_len(line + part) > width:
                lines.append(line)
                line = ""
            line += part
            while cell_len(line) > width:
                cut = set_cell_size(line, width)
                lines.append(cut)
                line = line[len(cut) :]
        return [*lines, line] if line or not lines else lines

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((cell_len(p) for p in self.parts()), default=1)
        return Measurement(widest, cell_len(self.text)).with_maximum(options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n".join(self.lines(max(1, options.max_width))), no_wrap=True)


def _two_lines(heading: str) -> str:
    """'train loss' -> 'train' over 'loss': the heading broken at the space nearest its middle."""
    spaces = [i for i, c in enumerate(heading) if c == " "]
    middle = min(spaces, key=lambda i: abs(2 * i - len(heading)))
    return heading[:middle] + "\n" + heading[middle + 1 :]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def comparison_table(frame: pd.DataFrame, baseline: str) -> Table | None:
    """Each activation's paired difference from the baseline, its effect size, Holm-adjusted
    p-value and whether it is real."""
    pairs = compare(frame, baseline)
    if pairs.empty:
        return None
    seeds = int(pairs["seeds"].max())
    epoch = comparison_epoch(frame)
    k = len(pairs)
    table = Table(
        title=f"Test accuracy at epoch {epoch} minus {baseline}'s in points, paired by seed "
        f"({_count(seeds, 'seed')})",
        caption=f"real?: {HOLM}-adjusted p < {ALPHA} over {_count(k, 'comparison')}; "
        "intervals are 95% each; d_z: paired effect size"
        if seeds > 1
        else "one seed gives no interval: use --seeds 5",
        box=box.SIMPLE_HEAVY,
    )
    rows = []
    for row in pairs.itertuples(index=False):
        interval = "n/a" if seeds < 2 else f"{100 * row.low:+.2f} to {100 * row.high:+.2f}"
        verdict = "n/a" if pd.isna(row.p_holm) else "yes" if row.significant else "no (noise)"
        d_z = "n/a" if pd.isna(row.d_z) else f"{row.d_z:+.2f}"
        rows.append([row.activation, f"{100 * row.difference:+.2f}", interval, d_z,
                     p_value(row.p_holm), verdict])  # fmt: skip
    return _fill(table, ["difference", "95% interval", "d_z", "Holm p", "real?"], rows)
