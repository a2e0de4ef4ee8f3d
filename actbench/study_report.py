"""`actbench plot` of a study: figures and a Markdown report that read a grid.

A study is one run folder whose rows name their configuration in settings columns
(`results.SETTINGS`); the settings it varies are listed in its manifest's `grid`. Each
configuration is read at the last epoch all its models reached, as a single run is.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, NullFormatter

from actbench.errors import ActbenchError, UsageError
from actbench.names import setting_value
from actbench.outputs import write_output
from actbench.plots import activation_styles, line_offsets, make_plot_dir
from actbench.repeats import repeat_notes, settle
from actbench.results import SETTINGS, RunFolder
from actbench.stats import mean_ci
from actbench.study_table import by_configuration
from actbench.summary import comparison_epoch, rows_at

CURVES = "study_curves.png"
HEATMAP = "study_heatmap.png"
DEPTH = "depth_sweep.png"
CD = "critical_difference.png"
DPI = 100  # with figures about 9 inches wide: about the width a report shows them
REPORT = "report.md"
COLUMNS_MAX = 3  # small multiples per row (a report shows a figure about 830 pixels wide)


def is_study(run: RunFolder) -> bool:
    """Whether a run folder holds a study (a grid of two or more configurations)."""
    return bool(run.manifest.get("grid"))


@dataclass(frozen=True)
class StudyData:
    """A study's rows as a report reads them.

    `keys` are the settings the study varies; `final` has one row per configuration,
    activation and seed at that configuration's comparison epoch (`epoch` column), with a
    `config` column naming the configuration ('depth=8 lr=0.01'). `notes`: what was done with
    rows its CSV records more than once (`repeated_rows`); `left_out`: how many models were
    left out for that.
    """

    run: RunFolder
    keys: list[str]
    frame: pd.DataFrame
    final: pd.DataFrame
    configs: list[str]
    activations: list[str]
    styles: dict[str, Any]  # each activation's colour and marker, one map for every figure
    notes: list[str] = field(default_factory=list)
    left_out: int = 0


def study_data(run: RunFolder) -> StudyData:
    """Read a study's rows into the form its report uses; rows its CSV records more than once
    are settled as `repeated_rows` says.

    Raises ValueError when no epoch has finished, and ActbenchError when every model is left
    out for repeated rows that differ.
    """
    if run.metrics.empty:
        raise ValueError(f"{run.name} has no finished epochs")
    keys = _varying(run)
    frame, notes, left_out = repeated_rows(run, keys)
    if frame.empty:
        raise ActbenchError(
            f"every model of study {run.name} records an epoch more than once with different "
            "numbers in metrics.csv, so none can be reported; restore metrics.csv from a copy"
        )
    parts, configs = [], []
    named = []
    for name, rows in by_configuration(frame, keys):
        rows = rows.assign(config=name)
        named.append(rows)
        epoch = comparison_epoch(rows)
        final = rows_at(rows, epoch).assign(config=name, epoch=epoch)
        parts.append(final)
        configs.append(name)
    frame = pd.concat(named, ignore_index=True)
    activations = list(dict.fromkeys(frame["activation"]))
    final = pd.concat(parts, ignore_index=True)
    styles = activation_styles(activations)
    return StudyData(run, keys, frame, final, configs, activations, styles, notes, left_out)


def _varying(run: RunFolder) -> list[str]:
    """The settings the study varies (momentum too, where only SGD's has one): from its
    settings, so that a study stopped before some configurations began is read as planned."""
    planned = _planned(run)
    if planned is not None:
        return list(planned.varying)
    return [k for k in SETTINGS if run.metrics[k].nunique(dropna=False) > 1]


def repeated_rows(
    run: RunFolder, keys: Sequence[str] | None = None
) -> tuple[pd.DataFrame, list[str], int]:
    """A study's rows with those its CSV records more than once settled (`repeats.settle`):
    the rows, the notes saying what was done (each model named with its configuration), and
    the number of models left out. `keys`: the settings it varies (default: its own)."""
    keys = list(_varying(run) if keys is None else keys)
    frame, found = settle(run.metrics, [*SETTINGS, "activation", "seed"])
    if not found:
        return frame.copy(), [], 0
    at = {key: SETTINGS.index(key) for key in keys}

    def name(r: Any) -> str:
        where = " ".join(f"{k}={setting_value(r.model[i])}" for k, i in at.items())
        return f"{r.model[-2]} seed {r.model[-1]}" + (f" in {where}" if where else "")

    left_out = sum(not r.identical for r in found)
    return frame, repeat_notes(run.name, found, name), left_out


def _planned(run: RunFolder) -> Any:
    """The study's settings as its manifest records them (None where they cannot be read)."""
    from actbench.config import make_config

    config = dict(run.manifest.get("config", {}))
    if isinstance(config.get("seed"), list):
        config.pop("seeds", None)
    try:
        return make_config(config)
    except (UsageError, TypeError, ValueError):
        return None


def accuracy_table(data: StudyData) -> pd.DataFrame:
    """Mean final test accuracy (0-1) over seeds with its 95% t interval, per configuration
    and activation: columns config, activation, seeds, epoch, mean, low, high."""
    rows = []
    for (config, activation), group in data.final.groupby(["config", "activation"], sort=False):
        interval = mean_ci(group["test_accuracy"].tolist())
        rows.append({"config": config, "activation": activation, "seeds": len(group),
                     "epoch": int(group["epoch"].iloc[0]), "mean": interval.mean,
                     "low": interval.low, "high": interval.high})  # fmt: skip
    return pd.DataFrame(rows)


def _save(fig: Any, path: Path) -> None:
    """Write a figure as a PNG (`outputs.write_output`: atomically, noted as the plot's) and
    close it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    write_output(path, buffer.getvalue())


def _caption(fig: Any, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=8, ha="left", va="bottom", wrap=True)


def _setup(data: StudyData) -> str:
    """The settings every configuration shares, for captions: 'mnist, Adam, batch 64'."""
    first = data.frame.iloc[0]
    fixed = [f"{k} {setting_value(first[k])}" for k in SETTINGS if k not in data.keys
             and not (k == "momentum" and first["optimizer"] != "sgd")]  # fmt: skip
    subset = _subset(data.run)
    if subset:
        fixed.append(subset)
    seeds = int(data.final.groupby(["config", "activation"])["seed"].nunique().max())
    planned = _planned(data.run)
    if planned is not None and len(planned.seed_list) != seeds:
        return ", ".join([*fixed, f"up to {seeds} of {len(planned.seed_list)} seeds"])
    return ", ".join([*fixed, f"{seeds} seed{'s' * (seeds != 1)}"])


def _subset(run: RunFolder) -> str | None:
    """'a subset: 2,000 training and 333 test samples' for a study trained with --subset
    (per data set where it has several), from its manifest; None for whole data sets."""
    subset = run.manifest.get("config", {}).get("subset")
    if not subset:
        return None
    sizes = run.manifest.get("datasets") or {}
    try:
        shown = [f"{d['train_samples']:,} training and {d['test_samples']:,} test samples"
                 for d in sizes.values()]  # fmt: skip
    except (KeyError, TypeError, ValueError):
        shown = []
    if not shown:
        return f"a subset of {subset:,} training samples"
    if len(shown) == 1:
        return f"a subset: {shown[0]}"
    return "a subset: " + "; ".join(
        f"{name} {text}" for name, text in zip(sizes, shown, strict=True)
    )


def plot_study_curves(data: StudyData, out_dir: Path, column: str = "test_accuracy") -> Path:
    """Small multiples: `column` (percent) per epoch, mean over seeds, one panel per
    configuration, one colour per activation in every panel."""
    n = len(data.configs)
    cols = min(COLUMNS_MAX, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 1.2, 2.3 * rows + 1.0), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")  # fmt: skip
    for ax, config in zip(axes.flat, data.configs, strict=False):
        mine = data.frame[data.frame["config"] == config]
        for activation in data.activations:
            curve = mine[mine["activation"] == activation].groupby("epoch")[column].mean()
            if curve.empty:
                continue
            style = data.styles[activation]
            ax.plot(curve.index, 100 * curve.values, color=style.colour, marker=style.marker,
                    markersize=3, linewidth=1.3, label=activation)  # fmt: skip
        ax.set_title(config, fontsize=9)
        ax.grid(alpha=0.3)
        # whole epochs only (with one epoch, around it: 0.5 to 1.5, not 0.945 to 1.055)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if data.frame["epoch"].nunique() == 1:
            epoch = int(data.frame["epoch"].iloc[0])
            ax.set_xlim(epoch - 0.5, epoch + 0.5)
        ax.tick_params(labelbottom=True)  # every panel says its epochs
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{column.replace('_', ' ')} (%)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(f"{column.replace('_', ' ').capitalize()} per epoch, mean over seeds",
                 fontsize=11)  # fmt: skip
    fig.supxlabel(_setup(data), fontsize=8, x=0.01, ha="left")
    path = out_dir / CURVES
    _save(fig, path)
    return path


def plot_heatmap(data: StudyData, table: pd.DataFrame, out_dir: Path) -> Path:
    """Final test accuracy (percent, mean over seeds): activations x configurations."""
    grid = table.pivot(index="config", columns="activation", values="mean")
    grid = grid.reindex(index=data.configs, columns=data.activations)
    values = 100 * grid.to_numpy(dtype=float)
    width = max(5.5, 0.85 * len(data.activations) + 3.5)
    height = max(2.5, 0.32 * len(data.configs) + 1.6)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(data.activations)), data.activations, rotation=30, ha="right",
                  fontsize=8)  # fmt: skip
    ax.set_yticks(range(len(data.configs)), data.configs, fontsize=8)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), value in np.ndenumerate(values):
        text = "n/a" if not np.isfinite(value) else f"{value:.1f}"
        colour = "black" if np.isfinite(value) and value > middle else "white"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    ax.set_title("Final test accuracy (%), mean over seeds", fontsize=10)
    status = data.run.manifest.get("status", "completed")
    unfinished = "" if status == "completed" else f"; the study is {status}: see the report"
    _caption(fig, _setup(data) + "; intervals in the report's table" + unfinished)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path = out_dir / HEATMAP
    _save(fig, path)
    return path


APART = 0.24  # of the smallest step between depths: the activations' spread at each depth


def depth_sweep_figure(data: StudyData) -> Any | None:
    """Where the study varies depth: per activation, the gradient reaching the first layer
    (log axis, labelled at whole decades only), its saturated or dead units (%) and the final
    test accuracy (%) against depth (means over seeds and the other settings'
    configurations). None where depth does not vary.

    Activations that coincide (relu and gelu both with no dead unit, say) would hide one
    another, so each is set a small shift from every depth, the same in all three panels, as
    the per-epoch figures set their lines apart (`plots.line_offsets`), over `APART` of the
    smallest step between depths.
    """
    if "depth" not in data.keys or "grad_layer1" not in data.final.columns:
        return None
    final = data.final.assign(
        stuck=data.final["saturated_layer1"].fillna(data.final["dead_layer1"])
    )
    depths = sorted(final["depth"].unique())
    step = float(np.diff(depths).min()) if len(depths) > 1 else 1.0
    offsets = line_offsets(len(data.activations), APART * step)
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(10, 3.6))
    for i, (activation, offset) in enumerate(zip(data.activations, offsets, strict=True)):
        mine = final[final["activation"] == activation]
        by_depth = mine.groupby("depth")
        style = data.styles[activation]
        kwargs = {"color": style.colour, "marker": style.marker, "linestyle": style.dash,
                  "zorder": 3 + i, "label": activation}  # fmt: skip
        grad = by_depth["grad_layer1"].mean()
        left.plot(grad.index + offset, grad.values, **kwargs)
        stuck = by_depth["stuck"].mean()
        if stuck.notna().any():
            middle.plot(stuck.index + offset, 100 * stuck.values, **kwargs)
        accuracy = by_depth["test_accuracy"].mean()
        right.plot(accuracy.index + offset, 100 * accuracy.values, **kwargs)
    left.set_yscale("log")
    _decades(left)
    left.set_ylabel("mean |gradient| at layer 1 (log scale)")
    left.set_title("Gradient reaching the first layer", fontsize=10)
    middle.set_ylabel("units (%)")
    middle.set_title("Saturated (bounded) or dead (ReLU-like)\nunits of layer 1", fontsize=10)
    right.set_ylabel("final test accuracy (%)")
    right.set_title("Accuracy against depth", fontsize=10)
    for ax in (left, middle, right):
        ax.set_xlabel("depth (hidden layers)")
        ax.grid(alpha=0.3)
        ax.set_xticks(depths)
    right.legend(fontsize=8, frameon=False, loc="best")
    others = [k for k in data.keys if k != "depth"]
    over = f"; means over seeds and over {', '.join(others)}" if others else "; means over seeds"
    apart = "; activations set slightly apart at each depth so that none hides another"
    _caption(fig, _setup(data) + over + (apart if len(offsets) > 1 else ""))
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return fig


def _decades(ax: Any) -> None:
    """Label a log y axis at whole decades only (10⁻³, 10⁻²), not at the crowded minor ticks
    between them; where the data span less than that, widen the axis to the decades around
    it, so that at least two labels show."""
    ax.yaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    if not (0 < low < high < math.inf):  # nothing positive drawn: nothing to label
        return
    if math.floor(math.log10(high)) - math.ceil(math.log10(low)) < 1:
        ax.set_ylim(10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high)))


def plot_depth_sweep(data: StudyData, out_dir: Path) -> Path | None:
    """Draw `depth_sweep_figure` into `out_dir` (`DEPTH`); None where depth does not vary."""
    fig = depth_sweep_figure(data)
    if fig is None:
        return None
    path = out_dir / DEPTH
    _save(fig, path)
    return path


def _percent(mean: float, low: float, high: float) -> str:
    """'97.12 (96.80–97.44)': a mean accuracy and its interval, clipped to 0-100%."""
    if not math.isfinite(low):
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ({100 * max(low, 0):.2f}–{100 * min(high, 1):.2f})"


def _incomplete(data: StudyData) -> list[str]:
    """What the report must say is missing: models short of the planned epochs, diverged."""
    planned = data.run.manifest.get("config", {}).get("epochs")
    notes = []
    last = data.frame.groupby(["config", "activation", "seed"], sort=False)
    for (config, activation, seed), rows in last:
        status = rows["status"].iloc[-1]
        epoch = int(rows["epoch"].max())
        if status == "diverged":
            notes.append(f"{activation} (seed {seed}) in {config} diverged in epoch {epoch}")
        elif planned and epoch < planned:
            notes.append(f"{activation} (seed {seed}) in {config} finished {epoch} of {planned}")
    config = _planned(data.run)
    if config is not None:
        seeds = len(config.seed_list)
        models = len(config.points()) * len(config.activations) * seeds
        started = data.frame.groupby(["config", "activation", "seed"]).ngroups + data.left_out
        if started < models:
            notes.insert(0, f"{models - started} of the study's {models} models have no "
                            "finished epoch (not in any table or figure)")  # fmt: skip
        missing = len(config.points()) - len(data.configs)
        if missing > 0:
            notes.insert(0, f"{missing} of the study's {len(config.points())} configurations "
                            "have no finished epoch")  # fmt: skip
    return notes


def make_study_report(
    run: RunFolder, out_dir: Path, baseline: str | None = None, notes: Sequence[str] = ()
) -> tuple[Path, list[Path]]:
    """Draw a study's figures and write its report into `out_dir`.

    Returns the report's path and the figures. `baseline` names the activation the others
    are compared with in paired differences (default: the first); `notes`, sentences the
    report's Notes must give besides its own (`selection.apart_notes`). Raises ValueError
    where the study has no finished epoch, UsageError for an unknown baseline, and
    ActbenchError where every model is left out for its rows (`repeated_rows`).
    """

    data = study_data(run)
    base = baseline or data.activations[0]
    if base not in data.activations:
        raise UsageError(
            f"baseline {base!r} is not one of the study's activations "
            f"({', '.join(data.activations)}); name one of them with --baseline"
        )
    make_plot_dir(out_dir)
    table = accuracy_table(data)
    figures = [plot_study_curves(data, out_dir), plot_heatmap(data, table, out_dir)]
    depth = plot_depth_sweep(data, out_dir)
    if depth is not None:
        figures.append(depth)
    sections = _ranking_sections(data, base, out_dir, figures)
    lines = [f"# Study {run.name}", ""]
    grid = run.manifest.get("grid", {})
    planned = _planned(run)
    count = len(planned.points()) if planned is not None else len(data.configs)
    lines.append(
        f"{count} configurations ("
        + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in grid.items())
        + f") x {len(data.activations)} activation{'s' * (len(data.activations) != 1)}; "
        + f"{_setup(data)}."
    )
    lines.append("")
    incomplete = _incomplete(data)
    status = run.manifest.get("status", "unknown")
    if status != "completed" or incomplete:
        lines += [f"**Incomplete** (the study is {status}):", ""]
        lines += [f"- {note}" for note in incomplete[:30]]
        if len(incomplete) > 30:
            lines.append(f"- and {len(incomplete) - 30} more")
        lines.append("")
    if data.notes or notes:
        lines += ["## Notes", "", *[f"- {note}" for note in [*data.notes, *notes]], ""]
    lines += sections
    lines += ["## Final test accuracy per configuration", "",
              "Mean over seeds in percent, with its 95% interval (Student's t, clipped to 0–100; "
              "wide with few seeds); each configuration at the last epoch all its models "
              "reached.", ""]  # fmt: skip
    header = ["configuration", "epoch", *data.activations]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for config in data.configs:
        mine = table[table["config"] == config].set_index("activation")
        cells = [
            _percent(*mine.loc[a, ["mean", "low", "high"]]) if a in mine.index else "n/a"
            for a in data.activations
        ]
        epoch = int(mine["epoch"].iloc[0]) if len(mine) else 0
        lines.append("| " + " | ".join([config, str(epoch), *cells]) + " |")
    lines.append("")
    for figure in figures:
        if figure.name != CD:  # shown with the ranking
            lines += [f"![{figure.stem}]({figure.name})", ""]
    versions = run.manifest.get("versions", {})
    if versions:
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    path = out_dir / REPORT
    write_output(path, "\n".join(lines))
    return path, figures


def _difference(row: Any) -> str:
    """'+0.31 (-0.05 to +0.67)': a paired difference in points with its interval."""
    if not math.isfinite(row.low):
        return f"{100 * row.difference:+.2f}"
    return f"{100 * row.difference:+.2f} ({100 * row.low:+.2f} to {100 * row.high:+.2f})"


def _verdict(row: Any) -> str:
    if not math.isfinite(row.p_holm):
        return "n/a"
    return "yes" if row.significant else "no (noise)"


def _ranking_sections(
    data: StudyData, baseline: str, out_dir: Path, figures: list[Path]
) -> list[str]:
    """The ranking across configurations, the tuned comparison and the paired differences."""
    from actbench.cdplot import critical_difference_figure
    from actbench.ranking import (
        per_config_differences,
        rank_activations,
        tuned_comparison,
    )
    from actbench.summary import p_value

    final = data.final
    lines = ["## Ranking across configurations", ""]
    try:
        ranking = rank_activations(final)
    except ValueError as err:
        lines += [f"No ranking: {err}", ""]
    else:
        figures.append(critical_difference_figure(ranking, out_dir / CD))
        lines += [ranking.verdict, "", ranking.method, "",
                  "| activation | mean rank (1 = best) |", "|---|---|"]  # fmt: skip
        lines += [f"| {name} | {rank:.2f} |" for name, rank in ranking.mean_ranks.items()]
        lines += ["", f"![critical difference]({CD})", ""]
    lines += ["## Each activation at its own best settings", ""]
    try:
        tuned = tuned_comparison(final, baseline)
    except ValueError as err:
        lines += [f"Not made: {err}", ""]
    else:
        lines += [
            "Each activation's configuration is chosen on the validation split (mean over "
            "seeds), then its test accuracy is compared with the baseline's, paired by seed "
            "(Holm over each family). 'shared': every activation at the baseline's best "
            f"configuration. {baseline} (the baseline) is at its best configuration, "
            f"{tuned['baseline_config'].iloc[0]}, in both.",
            "",
            "| comparison | activation | configuration | difference (points, 95% interval) "
            "| Holm p | real? |",
            "|---|---|---|---|---|---|",
        ]
        for row in tuned.itertuples(index=False):
            lines.append(f"| {row.comparison} | {row.activation} | {row.config} | "
                         f"{_difference(row)} | {p_value(row.p_holm)} | {_verdict(row)} |")  # fmt: skip
        lines.append("")
    lines += [f"## Paired differences from {baseline}, per configuration", ""]
    try:
        pairs = per_config_differences(final, baseline)
    except ValueError as err:
        lines += [f"Not made: {err}", ""]
    else:
        lines += [
            f"Test accuracy minus {baseline}'s in points, paired by seed, at each "
            "configuration's last common epoch; p-values Holm-corrected over every "
            'comparison of the study ("yes": below 0.05), intervals 95% each and not '
            "adjusted, so an interval may exclude 0 where the corrected test says noise.",
            "",
            "| configuration | activation | difference (95% interval) | d_z | Holm p | real? |",
            "|---|---|---|---|---|---|",
        ]
        for row in pairs.itertuples(index=False):
            d_z = f"{row.d_z:+.2f}" if math.isfinite(row.d_z) else "n/a"
            lines.append(f"| {row.config} | {row.activation} | {_difference(row)} | {d_z} | "
                         f"{p_value(row.p_holm)} | {_verdict(row)} |")  # fmt: skip
        lines.append("")
    return lines
