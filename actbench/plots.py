"""Comparison figures: learning curves with seed bands, unit health, time, and the functions."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure  # no pyplot: works headless, with no display or backend
from matplotlib.ticker import MaxNLocator

from actbench.activations import Activation, resolve
from actbench.catalog import CATALOG
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
FOREST = "differences.png"  # the figure a report opens with
LOSSES = ("train_loss", "test_loss", "val_loss")  # drawn on a log axis
# One colour, marker and dash per built-in activation, in the catalogue's order: the same in
# every figure of every run (relu is always blue). The colours are matplotlib's tab10 and
# three more; the dashes cycle so that relu and leaky, whose curves overlap, both show.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#e6ab02", "#1b9e77", "#000000")  # fmt: skip
# For other activations (a user's own, or a built-in with its own parameter, e.g. leaky:0.1):
# one of these, chosen by a hash of the name that is the same in every process. None is a
# blue, so none is taken for relu, the usual baseline.
EXTRA = ("#6a3d9a", "#e7298a", "#66a61e", "#b15928", "#35978f", "#4d4d4d", "#fb9a99")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "d", "p", "h")
DASHES = ("-", "--", "-.", ":")
BANDS_UP_TO = 3  # lines with seed bands; more lines show their intervals as error bars


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


@dataclass(frozen=True)
class Style:
    """How one line is drawn."""

    colour: str
    marker: str
    dash: str


def _stable(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def activation_style(activation: str) -> Style:
    """The style an activation has in every figure: fixed for the built-ins (in the
    catalogue's order), chosen by a stable hash of the name for any other."""
    names = [entry.name for entry in CATALOG]
    if activation in names:
        i = names.index(activation)
        return Style(PALETTE[i], MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)])
    h = _stable(activation)
    shapes = MARKERS[1:10]  # the clearly different ones, but relu's circle
    return Style(EXTRA[h % len(EXTRA)], shapes[h // 7 % len(shapes)], DASHES[h // 11 % 4])


def line_styles(frame: pd.DataFrame) -> dict[str, Style]:
    """Each line label's style, the same in every figure of the frame.

    The colour is the activation's (`activation_style`), so a line's colour says which
    activation it is in every figure and run; lines of one activation with different settings
    (`relu (lr=0.01)`, `relu (lr=0.1)`) share it and differ in dash and marker. Where two other
    activations' hashes give the same colour, the later takes the next colour free.
    """
    labels = label_series(frame)
    activation_of = dict(zip(labels, frame["activation"].astype(str), strict=True))
    styles: dict[str, Style] = {}
    owner: dict[str, str] = {}  # colour -> the activation that has it here
    seen: dict[str, int] = {}  # activation -> its lines so far
    for label in dict.fromkeys(labels):
        activation = activation_of[label]
        base = activation_style(activation)
        colour = base.colour
        if owner.get(colour, activation) != activation and colour in EXTRA:
            free = [c for c in EXTRA[EXTRA.index(colour) :] + EXTRA if c not in owner]
            colour = free[0] if free else colour
        owner.setdefault(colour, activation)
        k = seen.get(activation, 0)
        seen[activation] = k + 1
        marker = MARKERS[(MARKERS.index(base.marker) + k) % len(MARKERS)]
        dash = DASHES[(DASHES.index(base.dash) + k) % len(DASHES)]
        styles[label] = Style(colour, marker, dash)
    return styles


def _shared(frame: pd.DataFrame, column: str) -> list[str]:
    """The values a `cfg_` setting takes in `frame`, each once, without unknown ones."""
    if column not in frame:
        return []
    values = frame[column].dropna().astype(str)
    return [v for v in dict.fromkeys(values) if v not in ("None", "nan", "")]


def setup_line(frame: pd.DataFrame) -> str:
    """What the models in `frame` were trained with, for a figure's caption: e.g. 'MNIST,
    784-128-128-10, Adam lr 0.001, batch 64, 3 seeds'. From the runs' settings (`cfg_`
    columns); a setting that differs between runs shows each value ('lr 0.001/0.01'), and
    one no run records is left out."""
    parts = ["MNIST"]
    subset = _shared(frame, "cfg_subset")
    if subset:
        parts[0] += f" ({'/'.join(subset)}-sample subset)"
    hidden = _shared(frame, "cfg_hidden")
    if hidden:
        parts.append("784-" + "/".join(hidden) + "-" + "/".join(hidden) + "-10"
                     if len(hidden) > 1 else f"784-{hidden[0]}-{hidden[0]}-10")  # fmt: skip
    optimizers = _shared(frame, "cfg_optimizer")
    lrs = _shared(frame, "cfg_lr")
    training = "/".join({"adam": "Adam", "sgd": "SGD"}.get(o, o) for o in optimizers)
    if lrs:
        training = f"{training} lr {'/'.join(lrs)}".strip()
    if "sgd" in optimizers and (momentum := _shared(frame, "cfg_momentum")):
        training += f", momentum {'/'.join(momentum)}"
    if training:
        parts.append(training)
    batch = _shared(frame, "cfg_batch_size")
    if batch:
        parts.append(f"batch {'/'.join(batch)}")
    val = _shared(frame, "cfg_val")
    if val and val != ["0"]:
        parts.append(f"{'/'.join(val)} held out for validation")
    seeds = sorted(int(s) for s in frame["seed"].unique())
    parts.append(f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds")
    return ", ".join(parts)


def _draw(ax: Any, lines: list[Line], styles: dict[str, Style], log: bool = False) -> None:
    """Each line's mean by epoch, with its 95% interval where it has two seeds or more.

    Up to `BANDS_UP_TO` lines the intervals are light bands. With more, overlapping bands
    would hide one another, so each interval is an error bar, and the lines are set side by
    side around each epoch (a small shift, the same for a line at every epoch) so that lines
    that coincide, and their bars, all show. A line with one seed has no interval and shows
    none.
    """
    side_by_side = len(lines) > BANDS_UP_TO
    bars = side_by_side and any(line.low.notna().any() for line in lines)
    offsets = _offsets(len(lines)) if side_by_side else [0.0] * len(lines)
    for i, (line, offset) in enumerate(zip(lines, offsets, strict=True)):
        style = styles[line.key]
        end = line.full_to if line.full_to is not None else line.mean.index.max()
        for part, faint in ((line.mean.index <= end, False), (line.mean.index >= end, True)):
            if faint and line.full_to is None:
                continue
            mean, low, high = line.mean[part], line.low[part], line.high[part]
            x = mean.index + offset
            ax.plot(x, mean.values, linestyle=style.dash, color=style.colour,
                    marker=style.marker, markersize=4, linewidth=1.6, zorder=3 + i,
                    alpha=0.35 if faint else 1, label=None if faint else line.label)  # fmt: skip
            if not low.notna().any():
                continue
            # every measure here is non-negative: so is its band (a log axis needs it positive)
            low = low.clip(lower=line.mean[line.mean > 0].min() / 10 if log else 0)
            if bars:
                ax.errorbar(x, mean.values, yerr=[mean - low, high - mean], fmt="none",
                            ecolor=style.colour, elinewidth=1, capsize=2,
                            alpha=0.35 if faint else 0.8, zorder=2)  # fmt: skip
            else:
                ax.fill_between(mean.index, low, high, color=style.colour, linewidth=0,
                                alpha=0.06 if faint else 0.13, zorder=1)  # fmt: skip
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = [e for line in lines for e in line.mean.index]
    if epochs and max(epochs) - min(epochs) < 2:  # too few epochs for the locator to keep whole
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def _offsets(n: int, width: float = 0.24) -> list[float]:
    """Where n lines sit around each epoch (with their error bars): over `width` epochs."""
    if n < 2:
        return [0.0] * n
    return [width * (i / (n - 1) - 0.5) for i in range(n)]


def _heading(fig: Figure, title: str, frame: pd.DataFrame, apart: bool = False) -> None:
    """The figure's title above it and a caption below it: the set-up (`setup_line`), what
    the intervals are and, with `apart`, that the lines are set side by side (`_draw`), so
    that a figure pasted alone still says what it shows."""
    counts = frame.assign(label=label_series(frame)).groupby("label")["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    if high > 1:
        seeds = f"{high} seeds" if low == high else f"{low} to {high} seeds per line"
        one = " (none for one seed)" if low == 1 else ""
        shown = f"mean and 95% interval over {seeds}{one}"
    else:
        shown = "one seed: no interval (rerun with --seeds 5)"
    if apart:
        shown += "; lines set slightly apart at each epoch so that none hides another"
    fig.suptitle(title, fontsize="large")
    # below the figure's own area: saving with a tight bounding box takes it in
    fig.text(0.5, -0.01, f"{setup_line(frame)}\n{shown}", ha="center", va="top",
             fontsize="small", gid="caption")  # fmt: skip


def _legend(fig: Figure, axes: list[Any]) -> None:
    """One legend for every line of `axes`, outside them (right of the figure), so it covers
    no curve."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")


def curve_figure(
    frame: pd.DataFrame, column: str, epoch: int | None = None, styles: dict | None = None
) -> Figure | None:
    """The figure of one curve (`CURVES`), one line per label; None where no run has it.

    Losses are drawn on a log axis, where their late epochs do not sink against zero. With
    `epoch` (the epoch a report compares at), a dotted vertical line marks it when some line
    goes beyond it.
    """
    title, ylabel = CURVES[column]
    lines = curves(frame, column, 100 if column.endswith("accuracy") else 1)
    if not lines:  # no run has this measure (validation without a validation split)
        return None
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    _draw(ax, lines, styles or line_styles(frame), log=column in LOSSES)
    if epoch is not None and frame["epoch"].max() > epoch:
        ax.axvline(epoch, color="black", linestyle=":", linewidth=1,
                   label=f"compared at epoch {epoch}")  # fmt: skip
    ax.set_ylabel(ylabel + (" (log scale)" if column in LOSSES else ""))
    _heading(fig, title, frame, apart=len(lines) > BANDS_UP_TO)
    _legend(fig, [ax])
    return fig


def plot_curves(frame: pd.DataFrame, out_dir: Path, epoch: int | None = None) -> list[Path]:
    """One PNG per curve (`curve_figure`): training loss, test loss, test accuracy, and the
    validation ones where there is a validation split."""
    paths, styles = [], line_styles(frame)
    for column in CURVES:
        fig = curve_figure(frame, column, epoch, styles)
        if fig is not None:
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
    paths, styles = [], line_styles(frame)
    for name, title, ylabel, columns, scale, log in HEALTH:
        panels = [(column, curves(frame, column, scale)) for column in columns]
        if not any(lines for _, lines in panels):
            continue
        fig = Figure(figsize=(2.8 * len(columns) + 1.6, 4.0), layout="constrained")
        axes = fig.subplots(1, len(columns), sharey=True, squeeze=False)[0]
        for ax, (column, lines) in zip(axes, panels, strict=True):
            _draw(ax, lines, styles, log)
            ax.set_title(f"layer {column[-1]}" + (" (output)" if column.endswith("3") else ""))
        axes[0].set_ylabel(ylabel)
        _legend(fig, list(axes))  # a panel may have lines the first lacks
        _heading(fig, title, frame, apart=max(len(p) for _, p in panels) > BANDS_UP_TO)
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
    styles = line_styles(frame)
    colour = [styles[k].colour if k in styles else "grey" for k in table["key"]]
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
    # slanted where the names would run into one another side by side
    slant = len(table) > 4 or table["label"].astype(str).str.len().max() * len(table) > 40
    for ax in (ax_time, ax_memory):
        ax.set_xticks(x, table["label"], rotation=30 if slant else 0,
                      ha="right" if slant else "center")  # fmt: skip
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
    fig = Figure(figsize=(10, 4), layout="constrained")
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
        style = _function_style(label, i)
        ax_f.plot(x, y, **style, label=shown)
        ax_d.plot(x, dy, **style)
    ax_f.set(title="Activation f(x)", xlabel="x")
    ax_d.set(title="Derivative f'(x)", xlabel="x")
    for ax in (ax_f, ax_d):
        ax.grid(alpha=0.3)
        ax.axhline(0, color="grey", linewidth=0.5)
    _legend(fig, [ax_f])
    if skipped:
        fig.suptitle("not drawn: " + "; ".join(skipped), fontsize="small", wrap=True)
    return _save(fig, out_path)


def _hidden(frame: pd.DataFrame) -> int:
    """The runs' hidden width (the most common one), for drawing the activations."""
    if "cfg_hidden" not in frame:
        return RunConfig.hidden
    widths = pd.to_numeric(frame["cfg_hidden"], errors="coerce").dropna()
    return int(widths.mode().iloc[0]) if len(widths) else RunConfig.hidden


def _function_style(label: str, i: int) -> dict[str, Any]:
    """How `plot_activations` draws its `i`-th function: the activation's colour and dash,
    each line thinner than the one before and drawn over it, so that curves that coincide
    (relu and leaky for x > 0) all stay visible."""
    style = activation_style(label)
    return {"color": style.colour, "linestyle": style.dash, "zorder": 2 + i,
            "linewidth": max(1.0, 3.4 - 1.0 * i)}  # fmt: skip


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


def forest_figure(
    pairs: pd.DataFrame, baseline: str, where: str, key: str = "label", setup: str = ""
) -> Figure:
    """A forest plot: each line's paired difference from `baseline`, with its 95% interval.

    `pairs` is `summary.compare`'s frame (differences as fractions, drawn in percentage
    points); `where` says at which epoch (e.g. 'at epoch 10 (final)'). A filled marker is a
    real difference (Holm-adjusted p below `summary.ALPHA`), a hollow one is not; the right
    margin gives each line's effect size d_z, adjusted p-value and verdict. `setup`
    (`setup_line`), if given, is the figure's caption.
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
    if setup:
        fig.text(0.5, -0.01, setup, ha="center", va="top", fontsize="small", gid="caption")
    return fig


def plot_differences(
    pairs: pd.DataFrame,
    baseline: str,
    where: str,
    out_path: Path,
    key: str = "label",
    setup: str = "",
) -> Path:
    """`forest_figure` written to `out_path` as a PNG."""
    return _save(forest_figure(pairs, baseline, where, key, setup), out_path)


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
