"""Comparison figures: learning curves with seed bands, unit health, time, and the functions."""

from __future__ import annotations

import io
import math
import textwrap
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # no pyplot: works headless, with no display or backend
from matplotlib.ticker import LogFormatterSciNotation, MaxNLocator

from actbench.activations import Activation, resolve
from actbench.catalog import CATALOG
from actbench.colours import distance
from actbench.config import RunConfig
from actbench.cost import describe, kibibytes, summarize_cost
from actbench.datasets import title as dataset_title
from actbench.errors import ActbenchError, UsageError
from actbench.outputs import write_output
from actbench.selection import IDENTITY, dataset_shape, init_words, network_name
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
# three more, any two at least 16 apart in CIEDE2000 (`colours.distance`; tab10's own closest
# pair, red and brown, is 16.2); the dashes cycle so that relu and leaky, whose curves overlap,
# both show.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#e6ab02", "#0a5f38", "#000000")  # fmt: skip
# For other activations (a user's own, or a built-in with its own parameter, e.g. leaky:0.1):
# one of these, any two at least 25 apart and none close to relu's blue. Each prefers the one a
# hash of its name picks, the same in every process; `activation_styles` moves it on to the
# next one that is at least `SEPARATION` from every other colour of the report.
EXTRA = ("#9e0168", "#029386", "#fe7b7c", "#9f8303", "#8f99fb", "#000080", "#3c4d03")
SEPARATION = 20.0  # CIEDE2000: lines this far apart in colour are not taken for one another
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
    fig.savefig(buffer, format="png", dpi=150)  # laid out to fit: nothing outside to take in
    return write_output(path, buffer.getvalue())


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
    """The style an activation prefers: fixed for the built-ins (in the catalogue's order),
    chosen by a stable hash of the name for any other (its colour from `EXTRA`). Within a
    report, `activation_styles` may give one of these another colour."""
    if activation in _BUILT_IN:
        i = _BUILT_IN.index(activation)
        return Style(PALETTE[i], MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)])
    h = _stable(activation)
    shapes = MARKERS[1:10]  # the clearly different ones, but relu's circle
    return Style(EXTRA[h % len(EXTRA)], shapes[h // 7 % len(shapes)], DASHES[h // 11 % 4])


_BUILT_IN = tuple(entry.name for entry in CATALOG)


def activation_styles(activations: Iterable[str]) -> dict[str, Style]:
    """Each activation's style in one report: computed once from all of the report's
    activations, and used by every figure of it, so that an activation has one colour
    throughout.

    A built-in keeps its own colour (`PALETTE`). Every other activation, taken in order of
    name (so the order of runs plays no part), gets the first colour of `EXTRA`, starting at
    the one its name prefers (`activation_style`), that is at least `SEPARATION` (CIEDE2000,
    `colours.distance`) from the colours of the report's built-ins and of the activations
    before it; so an activation keeps its colour from report to report unless one of these is
    too close to it. Where none is far enough (many activations), it gets the one farthest
    from them, and its dash and marker still tell it apart.
    """
    names = list(dict.fromkeys(str(a) for a in activations))
    styles = {name: activation_style(name) for name in names}
    taken = [styles[name].colour for name in names if name in _BUILT_IN]
    for name in sorted(n for n in names if n not in _BUILT_IN):
        start = EXTRA.index(styles[name].colour)
        order = EXTRA[start:] + EXTRA[:start]
        gaps = [min((distance(c, t) for t in taken), default=math.inf) for c in order]
        fits = [c for c, gap in zip(order, gaps, strict=True) if gap >= SEPARATION]
        colour = fits[0] if fits else order[gaps.index(max(gaps))]
        styles[name] = replace(styles[name], colour=colour)
        taken.append(colour)
    return styles


def line_styles(
    frame: pd.DataFrame, by_activation: dict[str, Style] | None = None
) -> dict[str, Style]:
    """Each line label's style, the same in every figure of the frame.

    The colour is the activation's, from `by_activation` (default: `activation_styles` of the
    frame's activations), so a line's colour says which activation it is in every figure;
    lines of one activation with different settings (`relu (lr=0.01)`, `relu (lr=0.1)`) share
    it and differ in dash and marker.
    """
    labels = label_series(frame)
    activations = frame["activation"].astype(str)
    by_activation = by_activation or activation_styles(activations)
    activation_of = dict(zip(labels, activations, strict=True))
    styles: dict[str, Style] = {}
    seen: dict[str, int] = {}  # activation -> its lines so far
    for label in dict.fromkeys(labels):
        activation = activation_of[label]
        base = by_activation[activation]
        k = seen.get(activation, 0)
        seen[activation] = k + 1
        marker = MARKERS[(MARKERS.index(base.marker) + k) % len(MARKERS)]
        dash = DASHES[(DASHES.index(base.dash) + k) % len(DASHES)]
        styles[label] = Style(base.colour, marker, dash)
    return styles


def _shared(frame: pd.DataFrame, column: str) -> list[str]:
    """The values a `cfg_` setting takes in `frame`, each once, without unknown ones."""
    if column not in frame:
        return []
    values = frame[column].dropna().astype(str)
    return [v for v in dict.fromkeys(values) if v not in ("None", "nan", "")]


def _settings(frame: pd.DataFrame, column: str, default: Any) -> pd.Series:
    """Each row's value of a `cfg_` setting as text; `default` where the run's manifest does
    not record it (runs made before the setting existed ran with its default)."""
    values = frame[column] if column in frame else pd.Series(None, index=frame.index)
    missing = values.isna() | values.astype(str).isin(["None", "nan", ""])
    return values.astype(str).mask(missing, str(default))


def networks(frame: pd.DataFrame) -> list[str]:
    """The networks of the rows of `frame`, each once, as `selection.network_name` writes
    them ('40-128-128-128-128-10'): the data's inputs and classes (the frame's `inputs` and
    `classes` columns, else the data set's own), the `cfg_depth` hidden layers (2 where not
    recorded) of `cfg_hidden` units. Rows whose width no run records are left out."""
    if "cfg_hidden" not in frame:
        return []
    shapes = pd.DataFrame(
        {
            "dataset": _settings(frame, "cfg_dataset", RunConfig.dataset),
            "depth": _settings(frame, "cfg_depth", RunConfig.depth),
            "hidden": frame["cfg_hidden"].astype(str),
            "inputs": frame.get("inputs"),
            "classes": frame.get("classes"),
        }
    )
    shapes = shapes[~frame["cfg_hidden"].isna() & ~shapes["hidden"].isin(["None", "nan", ""])]
    names = []
    for row in shapes.drop_duplicates().itertuples(index=False):
        ends: tuple[Any, Any] = (row.inputs, row.classes)
        if any(pd.isna(v) for v in ends):
            ends = dataset_shape(row.dataset) or (None, None)
        inputs, classes = (None if pd.isna(v) else int(v) for v in ends)
        names.append(network_name(inputs, row.depth, row.hidden, classes))
    return list(dict.fromkeys(names))


def dataset_names(frame: pd.DataFrame) -> list[str]:
    """The data sets of the rows of `frame` as messages name them ('MNIST-1D'), each once;
    MNIST where a run does not record one."""
    return [
        dataset_title(d) for d in dict.fromkeys(_settings(frame, "cfg_dataset", RunConfig.dataset))
    ]


def _inits(frame: pd.DataFrame) -> str:
    """'init kaiming', or 'init auto (relu: kaiming, tanh: xavier)' with the scheme each line
    was built with (the frame's `init_scheme`); '' where every run has the default, torch."""
    inits = _settings(frame, "cfg_init", RunConfig.init)
    if set(inits) == {RunConfig.init}:
        return ""
    labels = label_series(frame)
    words = []
    for init in dict.fromkeys(inits):
        rows = frame[inits == init]
        schemes: dict[str, str] = {}
        if "init_scheme" in frame:
            for label, scheme in zip(labels[rows.index], rows["init_scheme"], strict=True):
                schemes.setdefault(label, "unknown" if pd.isna(scheme) else str(scheme))
        words.append(init_words(init, schemes))
    return "init " + "/".join(words)


def setup_line(frame: pd.DataFrame) -> str:
    """What the models in `frame` were trained with, for a figure's caption: e.g. 'MNIST-1D,
    40-128-128-128-128-10, Adam lr 0.001, batch 64, init auto (relu: kaiming, tanh: xavier),
    3 seeds'. From the runs' settings (`cfg_` columns, and `networks`); a setting that differs
    between runs shows each value ('lr 0.001/0.01'); a data set, depth or initialisation no
    run records is the default (MNIST, 2, torch: what runs made before they existed used), and
    any other setting no run records is left out. The default initialisation (torch) is not
    named."""
    parts = ["/".join(dataset_names(frame))]
    subset = _shared(frame, "cfg_subset")
    if subset:
        parts[0] += f" ({'/'.join(subset)}-sample subset)"
    nets = networks(frame)
    if nets:
        parts.append("/".join(nets))
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
    if init := _inits(frame):
        parts.append(init)
    val = _shared(frame, "cfg_val")
    if val and val != ["0"]:
        parts.append(f"{'/'.join(val)} held out for validation")
    seeds = sorted(int(s) for s in frame["seed"].unique())
    parts.append(f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds")
    return ", ".join(parts)


def _figure(width: float, height: float) -> Figure:
    """A figure with a renderer of its own (Agg), so that a legend can be measured as it is
    laid out (`_foot`)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


class _PlainLog(LogFormatterSciNotation):
    """Log-axis tick labels as plain numbers (0.3, 1, 2) rather than 3×10⁻¹, on the ticks
    matplotlib's own log formatter labels."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log_floor(lines: list[Line]) -> float:
    """The bottom of a log axis for `lines`: a little below their smallest positive value
    (mean or interval end), as matplotlib's own 5% margin; NaN where there is none."""
    values = pd.concat([s for line in lines for s in (line.mean, line.low, line.high)])
    values = values[(values > 0) & (values < math.inf)]
    if values.empty:
        return math.nan
    low, high = float(values.min()), float(values.max())
    return low / (high / low) ** 0.05 if high > low else low / 2


def _draw(
    ax: Any,
    lines: list[Line],
    styles: dict[str, Style],
    log: bool = False,
    top: float = math.inf,
    floor: float | None = None,
) -> bool:
    """Each line's mean by epoch, with its 95% interval where it has two seeds or more.

    Up to `BANDS_UP_TO` lines the intervals are light bands. With more, overlapping bands
    would hide one another, so each interval is an error bar, and the lines are set side by
    side around each epoch (a small shift, the same for a line at every epoch) so that lines
    that coincide, and their bars, all show. A line with one seed has no interval and shows
    none.

    Every measure drawn is at least 0, and at most `top` (100 for a percentage): a t interval
    from few seeds can reach past these, so its ends are cut there. On a `log` axis, where 0
    cannot be drawn, an end at or below 0 is cut at the axis's bottom edge, `floor` (default
    `_log_floor(lines)`; give one for axes that share their y axis). Returns whether some
    interval was cut.
    """
    side_by_side = len(lines) > BANDS_UP_TO
    bars = side_by_side and any(line.low.notna().any() for line in lines)
    offsets = line_offsets(len(lines)) if side_by_side else [0.0] * len(lines)
    bottom = (floor if floor is not None else _log_floor(lines)) if log else 0.0
    cut = False
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
            outside = (low <= 0 if log else low < 0) | (high > top)
            cut = cut or bool(outside.any())
            low = low.mask(low <= 0, bottom) if log else low.clip(lower=0)  # NaN stays
            high = high.clip(upper=top)
            if bars:
                drawn = ax.errorbar(x, mean.values, yerr=[mean - low, high - mean], fmt="none",
                                    ecolor=style.colour, elinewidth=1, capsize=2,
                                    alpha=0.35 if faint else 0.8, zorder=2).lines[2]  # fmt: skip
            else:
                drawn = [ax.fill_between(mean.index, low, high, color=style.colour, linewidth=0,
                                         alpha=0.06 if faint else 0.13, zorder=1)]  # fmt: skip
            for artist in drawn:  # the axis ends where the cut ends do, with no margin
                artist.sticky_edges.y[:] = [e for e in (bottom, top) if math.isfinite(e)]
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = [e for line in lines for e in line.mean.index]
    if epochs and max(epochs) - min(epochs) < 2:  # too few epochs for the locator to keep whole
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    return cut


def line_offsets(n: int, width: float = 0.24) -> list[float]:
    """Where n lines sit around each x value (with their error bars), so that lines that
    coincide all show: n shifts spread evenly over `width` (x units: epochs in a curve
    figure, where 0.24 is about a quarter of the step between points), centred on 0."""
    if n < 2:
        return [0.0] * n
    return [width * (i / (n - 1) - 0.5) for i in range(n)]


def _cut_note(log: bool, top: float) -> str:
    """What `_draw` did to the intervals it cut, for a caption."""
    if log:
        return "intervals reaching 0 or below cut at the bottom edge"
    return f"intervals cut to the possible 0–{top:g}%" if top < math.inf else "intervals cut at 0"


def _heading(
    fig: Figure, title: str, frame: pd.DataFrame, apart: bool = False, cut: str = ""
) -> str:
    """Give the figure its title, and return its caption: the set-up (`setup_line`), what the
    intervals are, `cut` (what was cut of them: `_cut_note`) and, with `apart`, that the lines
    are set side by side (`_draw`), so that a figure pasted alone still says what it shows."""
    counts = frame.assign(label=label_series(frame)).groupby("label")["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    if high > 1:
        seeds = f"{high} seeds" if low == high else f"{low} to {high} seeds per line"
        one = " (none for one seed)" if low == 1 else ""
        shown = f"mean and 95% interval over {seeds}{one}"
        shown += f"; {cut}" if cut else ""
    else:
        shown = "one seed: no interval (rerun with --seeds 5)"
    if apart:
        shown += "; lines set slightly apart at each epoch so that none hides another"
    fig.suptitle(title, fontsize="large")
    return f"{setup_line(frame)}\n{shown}"


LEGEND_WRAP = 44  # characters per line of a legend label
CHARS_PER_INCH = 15  # of small type (8.3 pt): a little more than fit, on average
PAD = 0.06  # inches between the axes, the legend, the caption and the figure's edge


def _foot(fig: Figure, axes: list[Any], caption: str = "") -> Any:
    """Below the axes: one legend for every line of `axes`, then `caption` in small type.

    The legend's labels are wrapped (`LEGEND_WRAP` characters a line) and set in as many
    columns as fit the figure's width, rows balanced; each line of the caption is wrapped to
    the figure's width. The figure grows by their height and the axes are laid out above them
    (constrained layout in the rest of the figure), so that the legend covers no curve, and
    neither it nor the caption covers the title or another text, however long the labels.
    Returns the legend, or None where there is no line.
    """
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    renderer = fig.canvas.get_renderer()
    fits = 0.96 * fig.bbox.width
    legend, legend_height = None, 0.0
    if handles:
        wrapped = [textwrap.fill(label, LEGEND_WRAP) for label in labels]

        def place(columns: int) -> Any:
            return fig.legend(handles, wrapped, loc="lower center", ncols=columns,
                              fontsize="small", borderaxespad=0,
                              bbox_transform=fig.transFigure)  # fmt: skip

        columns = len(handles)
        while columns > 1:
            legend = place(columns)
            wide = legend.get_window_extent(renderer).width > fits
            legend.remove()
            if not wide:
                break
            columns -= 1
        legend = place(math.ceil(len(handles) / math.ceil(len(handles) / columns)))
        legend_height = legend.get_window_extent(renderer).height / fig.dpi
    text, caption_height = None, 0.0
    if caption:
        width = int(CHARS_PER_INCH * fig.get_figwidth())
        while True:
            shown = "\n".join(textwrap.fill(line, width) for line in caption.splitlines())
            if text is None:
                text = fig.text(0.5, 0, shown, ha="center", va="bottom", fontsize="small",
                                gid="caption")  # fmt: skip
            text.set_text(shown)
            if text.get_window_extent(renderer).width <= fits or width <= 20:
                break
            width -= 5
        caption_height = text.get_window_extent(renderer).height / fig.dpi
    # from the bottom edge up: the caption, the legend, then the rest of the figure
    at_caption = PAD
    at_legend = at_caption + (caption_height + PAD if text is not None else 0.0)
    foot = at_legend + (legend_height + PAD if legend is not None else 0.0)
    height = fig.get_figheight() + foot
    fig.set_figheight(height)
    if text is not None:
        text.set_y(at_caption / height)
    if legend is not None:
        legend.set_bbox_to_anchor((0.5, at_legend / height), fig.transFigure)
    fig.get_layout_engine().set(rect=(0, foot / height, 1, 1 - foot / height))
    return legend


def curve_figure(
    frame: pd.DataFrame, column: str, epoch: int | None = None, styles: dict | None = None
) -> Figure | None:
    """The figure of one curve (`CURVES`), one line per label; None where no run has it.

    Losses are drawn on a log axis, where their late epochs do not sink against zero;
    accuracies in %, their intervals cut to 0-100% (`_draw`). With `epoch` (the epoch a report
    compares at), a dotted vertical line marks it when some line goes beyond it. `styles`:
    `line_styles`, to share with the report's other figures.
    """
    title, ylabel = CURVES[column]
    percent = column.endswith("accuracy")
    lines = curves(frame, column, 100 if percent else 1)
    if not lines:  # no run has this measure (validation without a validation split)
        return None
    fig = _figure(7, 4.2)
    ax = fig.subplots()
    log, top = column in LOSSES, 100.0 if percent else math.inf
    cut = _draw(ax, lines, styles or line_styles(frame), log, top)
    if log:
        ax.yaxis.set_major_formatter(_PlainLog())
        ax.yaxis.set_minor_formatter(_PlainLog(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    if epoch is not None and frame["epoch"].max() > epoch:
        ax.axvline(epoch, color="black", linestyle=":", linewidth=1,
                   label=f"compared at epoch {epoch}")  # fmt: skip
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""))
    apart = len(lines) > BANDS_UP_TO
    _foot(fig, [ax], _heading(fig, title, frame, apart, _cut_note(log, top) if cut else ""))
    return fig


def plot_curves(
    frame: pd.DataFrame, out_dir: Path, epoch: int | None = None, styles: dict | None = None
) -> list[Path]:
    """One PNG per curve (`curve_figure`): training loss, test loss, test accuracy, and the
    validation ones where there is a validation split."""
    paths, styles = [], styles or line_styles(frame)
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


def plot_health(frame: pd.DataFrame, out_dir: Path, styles: dict | None = None) -> list[Path]:
    """Gradient flow, dead and saturated units per layer; a figure with nothing to show is
    skipped. Percentages' intervals are cut to 0-100%, as gradients' at 0 (`_draw`)."""
    paths, styles = [], styles or line_styles(frame)
    for name, title, ylabel, columns, scale, log in HEALTH:
        panels = [(column, curves(frame, column, scale)) for column in columns]
        if not any(lines for _, lines in panels):
            continue
        fig = _figure(2.5 * len(columns) + 1.0, 4.0)
        axes = fig.subplots(1, len(columns), sharey=True, squeeze=False)[0]
        top = 100.0 if scale == 100 else math.inf  # a fraction drawn in %
        floor = _log_floor([line for _, lines in panels for line in lines]) if log else None
        cut = False
        for ax, (column, lines) in zip(axes, panels, strict=True):
            cut = _draw(ax, lines, styles, log, top, floor) or cut
            ax.set_title(f"layer {column[-1]}" + (" (output)" if column.endswith("3") else ""))
        axes[0].set_ylabel(ylabel)
        apart = max(len(p) for _, p in panels) > BANDS_UP_TO
        caption = _heading(fig, title, frame, apart, _cut_note(log, top) if cut else "")
        _foot(fig, list(axes), caption)  # a panel may have lines the first lacks
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


def plot_cost(
    frame: pd.DataFrame, cost: pd.DataFrame, out_dir: Path, styles: dict | None = None
) -> list[Path]:
    """Each activation's measured cost: time per step with its 95% interval, and saved memory,
    as horizontal bars, one row per line label (wrapped where long), the first on top.

    Nothing is drawn where no run has a cost measurement. `styles`: `line_styles`, to share
    with the report's other figures.
    """
    table = cost_summary(frame, cost)
    if table.empty:
        return []
    styles = styles or line_styles(frame)
    colour = [styles[k].colour if k in styles else "grey" for k in table["key"]]
    names = [textwrap.fill(str(label), 28) for label in table["label"]]
    y = list(range(len(table), 0, -1))
    rows = sum(max(1, name.count("\n") + 1) for name in names)
    fig = _figure(8, 1.6 + 0.3 * rows + 0.15 * len(table))
    ax_time, ax_memory = fig.subplots(1, 2, sharey=True)
    us = 1e6 * table["seconds"]
    below = (us - 1e6 * table["low"]).fillna(0)
    above = (1e6 * table["high"] - us).fillna(0)
    ax_time.barh(y, us, xerr=[below, above], capsize=3, color=colour)
    ax_time.set(title="Time per training step\n(median and 95% interval\nover rounds)",
                xlabel="µs per step (forward + backward,\nboth hidden layers)")  # fmt: skip
    saved = table["saved_bytes"].astype(float) / 1024
    extra = table["extra_saved_bytes"].astype(float) / 1024
    ax_memory.barh(y, saved, color=colour, alpha=0.35)
    ax_memory.barh(y, extra, color=colour)
    for row, total, own in zip(y, saved, extra, strict=True):
        ax_memory.annotate(f" {kibibytes(1024 * total)} ({kibibytes(1024 * own)})", (total, row),
                           ha="left", va="center", fontsize="small")  # fmt: skip
    ax_memory.set_xlim(0, 1.35 * max(float(saved.max()), 1e-9))  # room for the numbers
    ax_memory.set(title="Kept for the backward pass\n(light: saved; dark: extra,\nnot the output)",
                  xlabel="KiB saved (in brackets: extra)")  # fmt: skip
    ax_time.set_yticks(y, names)
    ax_time.set_ylim(0.4, len(table) + 0.6)
    for ax in (ax_time, ax_memory):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Activation cost", fontsize="large")
    how = describe(table)
    _foot(fig, [], how[:1].upper() + how[1:])
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
    styles: dict[str, Style] | None = None,
) -> Path:
    """The activation functions and their derivatives on [-span, span], one line each.

    `specs` maps a short label to its spec (`activation_specs`); other labels are specs
    themselves. Each function is drawn through `activation_curve` at width `hidden`; one that
    cannot be imported or drawn here is left out, and the figure's title says which and why.
    `styles`: each label's style (`activation_styles`, default: of `labels`), to share with
    the report's other figures.
    """
    styles = styles or activation_styles(labels)
    fig = _figure(9, 3.8)
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
        style = _function_style(styles[label], i)
        ax_f.plot(x, y, **style, label=shown)
        ax_d.plot(x, dy, **style)
    ax_f.set(title="Activation f(x)", xlabel="x")
    ax_d.set(title="Derivative f'(x)", xlabel="x")
    for ax in (ax_f, ax_d):
        ax.grid(alpha=0.3)
        ax.axhline(0, color="grey", linewidth=0.5)
    _foot(fig, [ax_f])
    if skipped:
        fig.suptitle("not drawn: " + "; ".join(skipped), fontsize="small", wrap=True)
    return _save(fig, out_path)


def _hidden(frame: pd.DataFrame) -> int:
    """The runs' hidden width (the most common one), for drawing the activations."""
    if "cfg_hidden" not in frame:
        return RunConfig.hidden
    widths = pd.to_numeric(frame["cfg_hidden"], errors="coerce").dropna()
    return int(widths.mode().iloc[0]) if len(widths) else RunConfig.hidden


def _function_style(style: Style, i: int) -> dict[str, Any]:
    """How `plot_activations` draws its `i`-th function: the activation's colour and dash,
    each line thinner than the one before and drawn over it, so that curves that coincide
    (relu and leaky for x > 0) all stay visible."""
    return {"color": style.colour, "linestyle": style.dash, "zorder": 2 + i,
            "linewidth": max(1.0, 3.8 - 1.2 * i)}  # fmt: skip


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
    names = [
        textwrap.fill(str(getattr(row, key)), 30) + f"\n{row.seeds} seed{'s' * (row.seeds > 1)}"
        for row in pairs.itertuples()
    ]
    rows = max(name.count("\n") + 1 for name in names)  # lines of the tallest label
    fig = _figure(8, 2.0 + max(0.5, 0.22 * rows) * n)
    ax = fig.subplots()
    ys = list(range(n, 0, -1))  # the first line on top
    for y, row in zip(ys, pairs.itertuples(index=False), strict=True):
        x = 100 * row.difference
        if not pd.isna(row.low):
            ax.hlines(y, 100 * row.low, 100 * row.high, color="black", linewidth=1.5)
        ax.plot(x, y, "o", markersize=7, color="black",
                markerfacecolor="black" if row.significant else "white")  # fmt: skip
    ax.axvline(0, color="grey", linewidth=1, linestyle="--")
    ax.set_yticks(ys, names)
    ax.set_ylim(0.4, n + 0.6)
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(ys, [_verdict(row) for row in pairs.itertuples(index=False)])
    right.tick_params(length=0)
    ax.set_xlabel(textwrap.fill(f"test accuracy minus {baseline}'s (percentage points)", 70))
    seeds = int(pairs["seeds"].max())
    how = (
        f"paired by seed; bars: 95% intervals\nfilled: real difference "
        f"(Holm-adjusted p < {ALPHA} over {n} comparison{'s' if n > 1 else ''}), hollow: noise"
        if seeds > 1
        else "one seed: no interval and no test (rerun with --seeds 5)"
    )
    ax.set_title(f"{textwrap.fill(f'Difference from {baseline} {where}', 70)}\n{how}",
                 fontsize="medium")  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    if setup:
        _foot(fig, [], setup)
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
    by_activation = activation_styles(frame["activation"])  # one style map for every figure
    styles = line_styles(frame, by_activation)
    paths = plot_curves(frame, out_dir, epoch, styles)
    paths += plot_health(frame, out_dir, styles)
    if cost is not None:
        paths += plot_cost(frame, cost, out_dir, styles)
    paths.append(
        plot_activations(
            list(frame["activation"].astype(str)),
            out_dir / "activations.png",
            specs=specs,
            hidden=_hidden(frame),
            styles=by_activation,
        )
    )
    return paths
