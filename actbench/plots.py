"""Comparison figures: learning curves with seed bands, unit health, time, and the functions."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure  # no pyplot: works headless, with no display or backend
from matplotlib.ticker import MaxNLocator

from actbench.activations import Activation, resolve
from actbench.config import RunConfig
from actbench.cost import describe, kibibytes, summarize_cost
from actbench.errors import ActbenchError, UsageError
from actbench.results import write_or_explain
from actbench.selection import IDENTITY
from actbench.stats import mean_ci
from actbench.summary import ALPHA, check_one_model_each, p_value

CURVES = {
    "train_loss": ("Training loss", "cross-entropy"),
    "test_loss": ("Test loss", "cross-entropy"),
    "test_accuracy": ("Test accuracy", "accuracy (%)"),
    "val_loss": ("Validation loss", "cross-entropy"),  # only runs with a validation split
    "val_accuracy": ("Validation accuracy", "accuracy (%)"),
}
STYLES = ("-", "--", ":", "-.")  # cycled with the colours so overlapping lines stay visible
FOREST = "differences.png"  # the figure a report opens with


def label_series(frame: pd.DataFrame) -> pd.Series:
    """Each row's line label: the frame's `label` column where it has one (see
    `selection.select_models`), else its activation plus the settings in which its runs
    differ, among those that change what a model learns (`selection.IDENTITY`).
    """
    if "label" in frame:
        return frame["label"].astype(str)
    varying = [
        c
        for c in frame.columns
        if c.startswith("cfg_") and c[4:] in IDENTITY and frame[c].nunique(dropna=False) > 1
    ]
    if not varying:
        return frame["activation"].astype(str)
    extra = (
        frame[varying]
        .astype(str)
        .apply(lambda row: ", ".join(f"{c[4:]}={v}" for c, v in row.items()), axis=1)
    )
    return frame["activation"].astype(str) + " (" + extra + ")"


def _save(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    write_or_explain(path, buffer.getvalue(), "choose another folder with --out")
    return path


@dataclass(frozen=True)
class Line:
    """One line of a figure: the mean over seeds by epoch, and its 95% band (NaN for one seed).

    Up to `full_to` the mean is over all the line's seeds; after it (when some seeds stopped
    early) over fewer, and it is drawn faint.
    """

    label: str
    key: str  # the label without notes: the same key has the same colour in every figure
    mean: pd.Series
    low: pd.Series
    high: pd.Series
    full_to: int | None = None  # None: every epoch drawn has all the line's seeds


def _planned(group: pd.DataFrame) -> int | None:
    """The epochs a line's runs planned (the largest, if they differ), or None if unknown."""
    if "cfg_epochs" not in group:
        return None
    values = pd.to_numeric(group["cfg_epochs"], errors="coerce").dropna()
    return int(values.max()) if len(values) else None


def _full_to(group: pd.DataFrame) -> tuple[int | None, str]:
    """The last epoch all of a label's seeds reached if some went further (else None), and a
    note for its legend when the line ends or thins out before its planned last epoch.

    A seed that diverged counts as present up to the epoch it diverged in.
    """
    last = group.groupby("seed")["epoch"].max()
    diverged = group.loc[group["status"] == "diverged"].groupby("seed")["epoch"].min()
    running = last.drop(diverged.index)
    if not len(running):
        return None, ""
    end, furthest = int(running.min()), int(last.max())
    planned = _planned(group)
    stopped = [str(seed) for seed, epoch in running.items() if epoch == end]
    seeds = f"seed{'s' if len(stopped) > 1 else ''} {', '.join(stopped)}"
    if end < furthest:
        return end, f"{seeds} stopped at epoch {end}: fewer seeds after it, faint"
    if planned is not None and end < planned:
        return None, f"stopped at epoch {end} of {planned}"
    return None, ""


def curves(frame: pd.DataFrame, column: str, scale: float = 1.0) -> list[Line]:
    """Each label's line for `column`: mean over seeds by epoch with its 95% interval.

    `frame` holds one model per (label, seed) (ValueError otherwise). A series that diverged
    ends at the epoch where it did, and its label says so; a value that became NaN or
    infinite there is left out rather than drawn off the scale. Where some of a line's seeds
    stopped early (an interrupted run), `full_to` says up to which epoch it has them all, and
    its label says so, as it does when the line ends before its planned last epoch. Labels
    with no values for `column` (a measure that does not apply to them) are left out.
    """
    if column not in frame:
        return []
    frame = frame.assign(label=label_series(frame))
    check_one_model_each(frame, "label")
    lines = []
    for label, group in frame.groupby("label", sort=False):
        values = group[column].where(group[column].abs() != float("inf"))
        if values.isna().all():
            continue
        per_seed = values.groupby([group["epoch"], group["seed"]]).first()
        by_epoch = {epoch: v.dropna().tolist() for epoch, v in per_seed.groupby(level="epoch")}
        estimates = [mean_ci(v) if v else None for v in by_epoch.values()]
        index = pd.Index(list(by_epoch), name="epoch")
        series = {
            field: pd.Series(
                [getattr(e, field) * scale if e else float("nan") for e in estimates], index=index
            )
            for field in ("mean", "low", "high")
        }
        full_to, stopped = _full_to(group)
        diverged = group.loc[group["status"] == "diverged", "epoch"]
        notes = [f"diverged at epoch {int(diverged.min())}"] if len(diverged) else []
        notes += [stopped] if stopped else []
        shown = f"{label} ({'; '.join(notes)})" if notes else label
        lines.append(Line(shown, label, series["mean"], series["low"], series["high"], full_to))
    return lines


def colours(frame: pd.DataFrame) -> dict[str, str]:
    """One colour and line style per label, the same in every figure of the frame."""
    labels = dict.fromkeys(label_series(frame))
    return {label: (f"C{i % 10}", STYLES[i // 10 % len(STYLES)]) for i, label in enumerate(labels)}


def _draw(ax: Any, lines: list[Line], styles: dict[str, Any], log: bool = False) -> None:
    for line in lines:
        colour, style = styles[line.key]
        end = line.full_to if line.full_to is not None else line.mean.index.max()
        for part, faint in ((line.mean.index <= end, False), (line.mean.index >= end, True)):
            if faint and line.full_to is None:
                continue
            mean, low, high = line.mean[part], line.low[part], line.high[part]
            ax.plot(mean.index, mean.values, style, color=colour, marker="o", markersize=3,
                    alpha=0.35 if faint else 1, label=None if faint else line.label)  # fmt: skip
            if low.notna().any():
                # every measure here is non-negative: so is its band (a log axis needs it positive)
                low = low.clip(lower=line.mean[line.mean > 0].min() / 10 if log else 0)
                ax.fill_between(mean.index, low, high, color=colour, alpha=0.08 if faint else 0.2,
                                linewidth=0)  # fmt: skip
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = [e for line in lines for e in line.mean.index]
    if epochs and max(epochs) - min(epochs) < 2:  # too few epochs for the locator to keep whole
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def _title(title: str, frame: pd.DataFrame) -> str:
    counts = frame.assign(label=label_series(frame)).groupby("label")["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    if high == 1:
        return title
    seeds = f"{high} seeds" if low == high else f"{low} to {high} seeds per line"
    return f"{title}\nmean and 95% interval over {seeds}"


def plot_curves(frame: pd.DataFrame, out_dir: Path, epoch: int | None = None) -> list[Path]:
    """One PNG per curve (training loss, test loss, test accuracy), one line per label.

    With `epoch` (the epoch a report compares at), a dotted vertical line marks it when some
    line goes beyond it.
    """
    paths, styles = [], colours(frame)
    for column, (title, ylabel) in CURVES.items():
        lines = curves(frame, column, 100 if column.endswith("accuracy") else 1)
        if not lines:  # no run has this measure (validation without a validation split)
            continue
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.subplots()
        _draw(ax, lines, styles)
        if epoch is not None and frame["epoch"].max() > epoch:
            ax.axvline(epoch, color="black", linestyle=":", linewidth=1,
                       label=f"compared at epoch {epoch}")  # fmt: skip
        ax.set(title=_title(title, frame), ylabel=ylabel)
        ax.legend(fontsize="small")
        paths.append(_save(fig, out_dir / f"{column}.png"))
    return paths


# Unit-health figures: file, title, y label, the CSV columns (one panel each), scale, log axis
HEALTH = (
    ("gradient_flow", "Mean |gradient| at each layer's weights", "mean |∂loss/∂W|",
     ["grad_layer1", "grad_layer2", "grad_layer3"], 1, True),
    ("dead_units", "Dead units (no positive output on the probe batch)", "dead units (%)",
     ["dead_layer1", "dead_layer2"], 100, False),
    ("saturated_units", "Saturated outputs (within 5% of a bound)", "saturated outputs (%)",
     ["saturated_layer1", "saturated_layer2"], 100, False),
)  # fmt: skip


def plot_health(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Gradient flow, dead and saturated units per layer; a figure with nothing to show is skipped."""
    paths, styles = [], colours(frame)
    for name, title, ylabel, columns, scale, log in HEALTH:
        panels = [(column, curves(frame, column, scale)) for column in columns]
        if not any(lines for _, lines in panels):
            continue
        fig = Figure(figsize=(4.2 * len(columns), 4.4), layout="constrained")
        axes = fig.subplots(1, len(columns), sharey=True, squeeze=False)[0]
        for ax, (column, lines) in zip(axes, panels, strict=True):
            _draw(ax, lines, styles, log)
            ax.set_title(f"layer {column[-1]}" + (" (output)" if column.endswith("3") else ""))
        axes[0].set_ylabel(ylabel)
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:  # a panel may have lines the first lacks
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
        if handles:
            fig.legend(handles, labels, fontsize="small", loc="outside lower center",
                       ncols=min(4, len(labels)))  # fmt: skip
        fig.suptitle(_title(title, frame))
        paths.append(_save(fig, out_dir / f"{name}.png"))
    return paths


def cost_summary(frame: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """`summarize_cost(cost)` with each row's line label, in the order of the lines in `frame`.

    `cost` is `read_costs(...)`'s frame (with a `run` column, named as `frame`'s). A label that
    more than one run measured is told apart by its run; `key` keeps the plain label (colour).
    """
    summary = summarize_cost(cost)
    columns = ["label", "key", *summary.columns]
    if summary.empty:
        return pd.DataFrame(columns=columns)
    names = dict(zip(zip(frame["run"], frame["activation"], strict=True), label_series(frame),
                     strict=True))  # fmt: skip
    keys = [names.get((r.run, r.activation), r.activation) for r in summary.itertuples()]
    summary = summary.assign(key=keys)
    repeated = summary["key"].duplicated(keep=False)
    summary["label"] = summary["key"].where(~repeated, summary["key"] + " [" + summary["run"] + "]")
    rank = {label: i for i, label in enumerate(dict.fromkeys(label_series(frame)))}
    summary["_rank"] = [rank.get(k, len(rank)) for k in summary["key"]]
    summary = summary.sort_values("_rank", kind="stable").drop(columns="_rank")
    return summary[columns].reset_index(drop=True)


def plot_cost(frame: pd.DataFrame, cost: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Each activation's measured cost: time per step with its 95% interval, and saved memory.

    Nothing is drawn where no run has a cost measurement.
    """
    table = cost_summary(frame, cost)
    if table.empty:
        return []
    styles = colours(frame)
    colour = [styles[k][0] if k in styles else "grey" for k in table["key"]]
    x = list(range(len(table)))
    fig = Figure(figsize=(max(8, 1.4 * len(table) + 3), 4.6), layout="constrained")
    ax_time, ax_memory = fig.subplots(1, 2)
    us = 1e6 * table["seconds"]
    below = (us - 1e6 * table["low"]).fillna(0)
    above = (1e6 * table["high"] - us).fillna(0)
    ax_time.bar(x, us, yerr=[below, above], capsize=4, color=colour)
    ax_time.set(title="Activation time per training step\nmedian and 95% interval over rounds",
                ylabel="µs per step (forward + backward, both layers)")  # fmt: skip
    saved = table["saved_bytes"].astype(float) / 1024
    extra = table["extra_saved_bytes"].astype(float) / 1024
    ax_memory.bar(x, saved, color=colour, alpha=0.35)
    ax_memory.bar(x, extra, color=colour)
    for i, (total, own) in enumerate(zip(saved, extra, strict=True)):
        ax_memory.annotate(f"{kibibytes(1024 * total)} ({kibibytes(1024 * own)})", (i, total),
                           ha="center", va="bottom", fontsize="small")  # fmt: skip
    ax_memory.set(title="Kept for the backward pass (both layers)\nlight: saved; dark: extra "
                  "(not the output)", ylabel="KiB saved (in brackets: extra)")  # fmt: skip
    for ax in (ax_time, ax_memory):
        ax.set_xticks(x, table["label"], rotation=30 if len(table) > 4 else 0,
                      ha="right" if len(table) > 4 else "center")  # fmt: skip
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Activation cost: {describe(table)}", fontsize="small", wrap=True)
    return [_save(fig, out_dir / "activation_cost.png")]


def activation_curve(
    activation: Activation, hidden: int, span: float = 5.0, points: int = 401
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """One unit's output f(x) and derivative f'(x) as its input x runs over [-span, span].

    The activation is called as training calls it: on a (points, hidden) float32 tensor that
    requires grad, one sample per row; unit 1 (column 0) takes the x values, the other units
    are 0. Returns x, f(x) and f'(x) (by autograd) from column 0, each (points,), and whether
    unit 1's output also depends on the other units (then the curve is the one with those at
    0). Raises ValueError where the output is not a tensor of the input's shape, and whatever
    the activation itself raises.
    """
    x = torch.linspace(-span, span, points)
    z = torch.zeros(points, hidden)
    z[:, 0] = x
    z.requires_grad_()
    module = activation()
    with torch.enable_grad():
        y = module(z)
    if not isinstance(y, torch.Tensor) or y.shape != z.shape:
        raise ValueError(f"it returns {getattr(y, 'shape', type(y).__name__)} for {tuple(z.shape)}")
    (grad,) = torch.autograd.grad(y[:, 0].sum(), z)  # rows are samples: each row's own slope
    coupled = not activation.elementwise
    if activation.info is None:  # a user's own: does unit 1 see the others?
        others = torch.randn(points, hidden, generator=torch.Generator().manual_seed(0))
        others[:, 0] = x
        with torch.no_grad():
            coupled = not torch.allclose(module(others)[:, 0], y[:, 0].detach())
    return x, y[:, 0].detach(), grad[:, 0], coupled


def plot_activations(
    labels: list[str],
    out_path: Path,
    span: float = 5.0,
    specs: dict[str, str | None] | None = None,
    hidden: int = RunConfig.hidden,
) -> Path:
    """The activation functions and their derivatives on [-span, span], one line each.

    `specs` maps a short label to its spec (`activation_specs`); other labels are specs
    themselves. Each function is drawn through `activation_curve` at width `hidden`; one that
    cannot be imported or drawn here is left out, and the figure's title says which and why.
    """
    fig = Figure(figsize=(10, 4))
    ax_f, ax_d = fig.subplots(1, 2)
    skipped = []
    specs = specs or {}
    for i, label in enumerate(dict.fromkeys(labels)):
        spec = specs.get(label, label)
        if spec is None:
            skipped.append(f"{label} (runs give this label to different functions)")
            continue
        try:
            activation = resolve(spec)
        except UsageError:
            skipped.append(f"{label} (cannot be imported here)")
            continue
        except Exception as err:  # a user's module that fails as it is imported
            skipped.append(f"{label} (importing it failed: {type(err).__name__})")
            continue
        try:
            x, y, dy, coupled = activation_curve(activation, hidden, span)
        except Exception as err:  # a user's function that cannot be drawn: the rest still is
            skipped.append(f"{label} (drawing it failed: {type(err).__name__})")
            continue
        shown = f"{label} (unit 1; the other {hidden - 1} at 0)" if coupled else label
        style = STYLES[i % len(STYLES)]
        ax_f.plot(x, y, style, label=shown)
        ax_d.plot(x, dy, style, label=shown)
    ax_f.set(title="Activation f(x)", xlabel="x")
    ax_d.set(title="Derivative f'(x)", xlabel="x")
    for ax in (ax_f, ax_d):
        ax.grid(alpha=0.3)
        ax.axhline(0, color="grey", linewidth=0.5)
        if ax.lines:
            ax.legend(fontsize="small")
    if skipped:
        fig.suptitle("not drawn: " + "; ".join(skipped), fontsize="small", wrap=True)
    return _save(fig, out_path)


def _hidden(frame: pd.DataFrame) -> int:
    """The runs' hidden width (the most common one), for drawing the activations."""
    if "cfg_hidden" not in frame:
        return RunConfig.hidden
    widths = pd.to_numeric(frame["cfg_hidden"], errors="coerce").dropna()
    return int(widths.mode().iloc[0]) if len(widths) else RunConfig.hidden


def make_plot_dir(out_dir: Path) -> None:
    """Create `out_dir` (and its parents); a one-line error if that fails."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ActbenchError(
            f"cannot create plot folder {out_dir} ({err.strerror}); choose another with --out"
        ) from None


def _verdict(row: Any) -> str:
    if row.seeds < 2:
        return "one seed: no test"
    if pd.isna(row.p_holm):
        return "no test (no spread)"
    d_z = "" if pd.isna(row.d_z) else f"d_z {row.d_z:+.2f}, "
    verdict = "real" if row.significant else "noise"
    return f"{d_z}Holm p {p_value(row.p_holm)}: {verdict}"


def forest_figure(pairs: pd.DataFrame, baseline: str, where: str, key: str = "label") -> Figure:
    """A forest plot: each line's paired difference from `baseline`, with its 95% interval.

    `pairs` is `summary.compare`'s frame (differences as fractions, drawn in percentage
    points); `where` says at which epoch (e.g. 'at epoch 10 (final)'). A filled marker is a
    real difference (Holm-adjusted p below `summary.ALPHA`), a hollow one is not; the right
    margin gives each line's effect size d_z, adjusted p-value and verdict.
    """
    n = len(pairs)
    fig = Figure(figsize=(8, 2.0 + 0.5 * n), layout="constrained")
    ax = fig.subplots()
    ys = list(range(n, 0, -1))  # the first line on top
    for y, row in zip(ys, pairs.itertuples(index=False), strict=True):
        x = 100 * row.difference
        if not pd.isna(row.low):
            ax.hlines(y, 100 * row.low, 100 * row.high, color="black", linewidth=1.5)
        ax.plot(x, y, "o", markersize=7, color="black",
                markerfacecolor="black" if row.significant else "white")  # fmt: skip
    ax.axvline(0, color="grey", linewidth=1, linestyle="--")
    ax.set_yticks(ys, [f"{getattr(row, key)}\n{row.seeds} seed{'s' if row.seeds > 1 else ''}"
                       for row in pairs.itertuples()])  # fmt: skip
    ax.set_ylim(0.4, n + 0.6)
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(ys, [_verdict(row) for row in pairs.itertuples(index=False)])
    right.tick_params(length=0)
    ax.set_xlabel(f"test accuracy minus {baseline}'s (percentage points)")
    seeds = int(pairs["seeds"].max())
    how = (
        f"paired by seed; bars: 95% intervals\nfilled: real difference "
        f"(Holm-adjusted p < {ALPHA} over {n} comparison{'s' if n > 1 else ''}), hollow: noise"
        if seeds > 1
        else "one seed: no interval and no test (rerun with --seeds 5)"
    )
    ax.set_title(f"Difference from {baseline} {where}\n{how}", fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_differences(
    pairs: pd.DataFrame, baseline: str, where: str, out_path: Path, key: str = "label"
) -> Path:
    """`forest_figure` written to `out_path` as a PNG."""
    return _save(forest_figure(pairs, baseline, where, key), out_path)


def plot_runs(
    frame: pd.DataFrame,
    out_dir: Path,
    epoch: int | None = None,
    cost: pd.DataFrame | None = None,
    specs: dict[str, str | None] | None = None,
) -> list[Path]:
    """Every figure for the models in `frame` (one per label and seed), written into `out_dir`.

    `epoch`: the epoch a report compares at, marked on the learning curves; `cost`: the runs'
    cost measurements (`actbench.report.selection_costs`), drawn where there are any; `specs`
    (`actbench.results.activation_specs`): which function each short label stands for.
    """
    make_plot_dir(out_dir)
    paths = plot_curves(frame, out_dir, epoch)
    paths += plot_health(frame, out_dir)
    if cost is not None:
        paths += plot_cost(frame, cost, out_dir)
    paths.append(
        plot_activations(
            list(frame["activation"].astype(str)),
            out_dir / "activations.png",
            specs=specs,
            hidden=_hidden(frame),
        )
    )
    return paths
