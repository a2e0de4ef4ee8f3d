"""Comparison figures: learning curves per activation, and the activation functions themselves."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure  # no pyplot: works headless, with no display or backend
from matplotlib.ticker import MaxNLocator

from actbench.activations import resolve
from actbench.errors import ActbenchError, UsageError
from actbench.results import write_or_explain

CURVES = {
    "train_loss": ("Training loss", "cross-entropy"),
    "test_loss": ("Test loss", "cross-entropy"),
    "test_accuracy": ("Test accuracy", "accuracy (%)"),
}
STYLES = ("-", "--", ":", "-.")  # cycled with the colours so overlapping lines stay visible
# Settings that never change what a model learns, so they never tell two runs apart.
_NOT_LABELS = {"cfg_data_dir", "cfg_results_dir", "cfg_download", "cfg_eval_batch_size"}


def label_series(frame: pd.DataFrame) -> pd.Series:
    """Each row's line label: its activation, plus the settings in which its runs differ."""
    varying = [
        c
        for c in frame.columns
        if c.startswith("cfg_") and c not in _NOT_LABELS and frame[c].nunique(dropna=False) > 1
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


def curves(frame: pd.DataFrame, column: str) -> list[tuple[str, pd.Series]]:
    """Each line of a curve figure: its label and its values by epoch (mean over seeds).

    A series that diverged ends at the epoch where it did, and its label says so; a loss that
    became NaN or infinite there is left out rather than drawn off the scale.
    """
    frame = frame.assign(label=label_series(frame))
    lines = []
    for label, group in frame.groupby("label", sort=False):
        series = group.groupby("epoch")[column].mean()
        series = series.where(series.abs() != float("inf"))
        diverged = group.loc[group["status"] == "diverged", "epoch"]
        if len(diverged):
            label = f"{label} (diverged at epoch {int(diverged.min())})"
        lines.append((label, series * 100 if column.endswith("accuracy") else series))
    return lines


def plot_curves(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per curve (training loss, test loss, test accuracy), one line per label."""
    paths = []
    for column, (title, ylabel) in CURVES.items():
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for i, (label, series) in enumerate(curves(frame, column)):
            style = STYLES[i // 10 % len(STYLES)]
            ax.plot(series.index, series.values, style, marker="o", markersize=3, label=label)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        paths.append(_save(fig, out_dir / f"{column}.png"))
    return paths


def plot_activations(labels: list[str], out_path: Path, span: float = 5.0) -> Path:
    """The activation functions and their derivatives on [-span, span], one line each."""
    fig = Figure(figsize=(10, 4))
    ax_f, ax_d = fig.subplots(1, 2)
    skipped = []
    for i, label in enumerate(dict.fromkeys(labels)):
        try:
            activation = resolve(label)
        except UsageError:
            skipped.append(f"{label} (cannot be imported here)")
            continue
        if not activation.elementwise:
            skipped.append(f"{label} (not elementwise)")
            continue
        x = torch.linspace(-span, span, 401, requires_grad=True)
        y = activation()(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
        style = STYLES[i % len(STYLES)]
        ax_f.plot(x.detach(), y.detach(), style, label=label)
        ax_d.plot(x.detach(), dy, style, label=label)
    ax_f.set(title="Activation f(x)", xlabel="x")
    ax_d.set(title="Derivative f'(x)", xlabel="x")
    for ax in (ax_f, ax_d):
        ax.grid(alpha=0.3)
        ax.axhline(0, color="grey", linewidth=0.5)
        if ax.lines:
            ax.legend(fontsize="small")
    if skipped:
        fig.suptitle("not drawn: " + "; ".join(skipped), fontsize="small")
    return _save(fig, out_path)


def plot_runs(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every figure for the runs in `frame`, written into `out_dir`."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ActbenchError(
            f"cannot create plot folder {out_dir} ({err.strerror}); choose another with --out"
        ) from None
    paths = plot_curves(frame, out_dir)
    paths.append(
        plot_activations(list(frame["activation"].astype(str)), out_dir / "activations.png")
    )
    return paths
