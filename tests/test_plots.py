"""Figures render headless from CSVs alone, with labels that tell differing runs apart."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.image import imread

from actbench.errors import UsageError
from actbench.plots import curves, label_series, plot_activations, plot_runs
from actbench.report import make_report, write_report
from actbench.results import RunWriter, find_runs, load_runs
from actbench.selection import select_models
from actbench.train import EpochResult


def write_run(folder, lr, activations=("relu", "sigmoid"), seeds=(0,)):
    """A hand-made run: relu's units die, sigmoid's saturate, the numbers move with the seed."""
    folder.mkdir(parents=True)
    writer = RunWriter(
        folder, list(activations), {"config": {"lr": lr, "seed": 0, "results_dir": str(folder)}}
    )
    for seed in seeds:
        for epoch in (1, 2, 3):
            health = {"grad_layer1": 1e-3 / epoch, "grad_layer2": 2e-3, "grad_layer3": 1e-2}
            writer.add(
                [
                    EpochResult(
                        a,
                        seed,
                        epoch,
                        1 / epoch,
                        0.8,
                        1.1 / epoch,
                        0.7 + 0.05 * epoch + 0.01 * seed,
                        0.5,
                        "ok",
                        **health,
                        **_unit_health(a, epoch),
                    )
                    for i, a in enumerate(activations)
                ]
            )


def _unit_health(activation, epoch):
    nan = float("nan")
    if activation == "relu":
        return {"dead_layer1": 0.1 * epoch, "dead_layer2": 0.05, "saturated_layer1": nan,
                "saturated_layer2": nan}  # fmt: skip
    return {"dead_layer1": nan, "dead_layer2": nan, "saturated_layer1": 0.2,
            "saturated_layer2": 0.3 * epoch / 3}  # fmt: skip


def test_plots_render_from_csv_alone(tmp_path):
    write_run(tmp_path / "results" / "run-1", 0.001)
    frame = load_runs(tmp_path / "results")
    paths = plot_runs(frame, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == ["activations.png", "dead_units.png",
                     "gradient_flow.png", "saturated_units.png", "test_accuracy.png",
                     "test_loss.png", "train_loss.png"]  # fmt: skip
    for path in paths:
        image = imread(path)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # not a blank canvas


def test_labels_name_only_settings_that_differ(tmp_path):
    write_run(tmp_path / "r" / "a", 0.001)
    write_run(tmp_path / "r" / "b", 0.01)
    labels = set(label_series(load_runs(tmp_path / "r")))
    assert labels == {
        "relu (lr=0.001)",
        "sigmoid (lr=0.001)",
        "relu (lr=0.01)",
        "sigmoid (lr=0.01)",
    }


def test_single_run_labels_are_activation_names():
    frame = pd.DataFrame({"activation": ["relu", "tanh"], "cfg_lr": ["0.1", "0.1"]})
    assert label_series(frame).tolist() == ["relu", "tanh"]


def test_activation_figure_skips_what_it_cannot_draw(tmp_path):
    path = plot_activations(["relu", "softmax", "not_installed_pkg:Act"], tmp_path / "a.png")
    assert imread(path).shape[0] > 100


def test_a_diverged_series_ends_where_it_diverged(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    writer = RunWriter(folder, ["relu", "identity"], {"config": {}})
    nan, inf = float("nan"), float("inf")
    writer.add(
        [
            EpochResult("relu", 0, 1, 0.9, 0.7, 0.8, 0.75, 0.1),
            EpochResult("identity", 0, 1, 2.0, 0.3, 1.9, 0.35, 0.1),
            EpochResult("relu", 0, 2, 0.5, 0.8, 0.6, 0.85, 0.1),
            EpochResult("identity", 0, 2, inf, 0.1, nan, 0.1, 0.1, "diverged"),
            EpochResult("relu", 0, 3, 0.4, 0.9, 0.5, 0.9, 0.1),
        ]
    )
    frame = load_runs(folder)
    loss = {line.label: line.mean for line in curves(frame, "train_loss")}
    accuracy = {line.label: line.mean for line in curves(frame, "test_accuracy", scale=100)}
    assert list(loss) == ["relu", "identity (diverged at epoch 2)"]
    assert loss["relu"].tolist() == [0.9, 0.5, 0.4]
    diverged = loss["identity (diverged at epoch 2)"]
    assert diverged.index.tolist() == [1, 2]  # stops at the epoch it diverged
    assert diverged.iloc[0] == 2.0 and pd.isna(diverged.iloc[1])  # the infinite loss is not drawn
    assert accuracy["identity (diverged at epoch 2)"].tolist() == [35.0, 10.0]
    assert len(plot_runs(frame, tmp_path / "plots")) == 4  # no health columns, no cost: skipped


def test_lines_carry_the_mean_and_interval_over_seeds(tmp_path):
    write_run(tmp_path / "run", 0.001, seeds=(0, 1, 2))
    frame = load_runs(tmp_path / "run")
    relu, _ = curves(frame, "test_accuracy", scale=100)
    # per seed 0.75, 0.76, 0.77 at epoch 1: mean 76%, sd 1 point, half-width 4.303 / sqrt(3)
    assert relu.mean.loc[1] == pytest.approx(76.0)
    assert relu.high.loc[1] - relu.mean.loc[1] == pytest.approx(4.303 / 3**0.5, abs=1e-3)
    dead = curves(frame, "dead_layer1", scale=100)
    assert [line.label for line in dead] == ["relu"]  # sigmoid cannot have dead units
    assert dead[0].mean.tolist() == pytest.approx([10.0, 20.0, 30.0])
    assert [line.label for line in curves(frame, "saturated_layer2")] == ["sigmoid"]


def test_report_renders_from_the_csv_alone(tmp_path):
    write_run(tmp_path / "results" / "run-1", 0.001, seeds=(0, 1, 2))
    selection = select_models(find_runs(tmp_path / "results"))
    out = tmp_path / "plots"
    report_path, paths = make_report(selection, out)
    report = report_path.read_text()
    assert report.startswith("# Activation comparison\n\n![Difference from relu](differences.png)")
    assert "Every activation has 3 seeds" in report
    assert "| relu | 3 | 86.00% ± 2.48 |" in report  # 0.85, 0.86, 0.87 at epoch 3
    assert "## Differences from relu" in report
    # sigmoid equals relu seed by seed in this run: a zero difference and no test
    assert "| sigmoid | 3 | +0.00 | +0.00 to +0.00 | n/a | n/a | n/a |" in report
    for path in paths:
        assert f"]({path.name})" in report and path.exists()
    other = write_report(selection, paths, out, baseline="sigmoid").read_text()
    assert "## Differences from sigmoid" in other
    with pytest.raises(UsageError, match="baseline 'gelu' is not among the lines"):
        make_report(selection, tmp_path / "elsewhere", baseline="gelu")
    assert not (tmp_path / "elsewhere").exists()  # refused before anything was written


def test_a_line_whose_seeds_stopped_early_thins_out(tmp_path):
    write_run(tmp_path / "run", 0.001, seeds=(0, 1))
    frame = load_runs(tmp_path / "run")
    frame = frame[~((frame["seed"] == 1) & (frame["epoch"] == 3))].assign(cfg_epochs="3")
    relu, _ = curves(frame, "test_accuracy", scale=100)
    assert relu.full_to == 2 and relu.mean.index.tolist() == [1, 2, 3]
    assert relu.label == "relu (seed 1 stopped at epoch 2: fewer seeds after it, faint)"
    assert relu.mean.loc[3] == pytest.approx(85.0)  # seed 0 alone
    assert pd.isna(relu.low.loc[3]) and not pd.isna(relu.low.loc[2])
    one = frame[(frame["seed"] == 0) & (frame["epoch"] < 3)].assign(cfg_epochs="40")
    (line, _) = curves(one, "test_accuracy")
    assert line.full_to is None and line.label == "relu (stopped at epoch 2 of 40)"
