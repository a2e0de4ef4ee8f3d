"""Figures render headless from CSVs alone, with labels that tell differing runs apart."""

from __future__ import annotations

import pandas as pd
from matplotlib.image import imread

from actbench.plots import curves, label_series, plot_activations, plot_runs
from actbench.results import RunWriter, load_runs
from actbench.train import EpochResult


def write_run(folder, lr, activations=("relu", "sigmoid")):
    folder.mkdir(parents=True)
    writer = RunWriter(
        folder, list(activations), {"config": {"lr": lr, "seed": 0, "results_dir": str(folder)}}
    )
    for epoch in (1, 2, 3):
        writer.add(
            [
                EpochResult(a, 0, epoch, 1 / epoch, 0.8, 1.1 / epoch, 0.7 + 0.05 * epoch, 0.5)
                for a in activations
            ]
        )


def test_plots_render_from_csv_alone(tmp_path):
    write_run(tmp_path / "results" / "run-1", 0.001)
    frame = load_runs(tmp_path / "results")
    paths = plot_runs(frame, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == ["activations.png", "test_accuracy.png", "test_loss.png", "train_loss.png"]
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
    loss = dict(curves(frame, "train_loss"))
    accuracy = dict(curves(frame, "test_accuracy"))
    assert list(loss) == ["relu", "identity (diverged at epoch 2)"]
    assert loss["relu"].tolist() == [0.9, 0.5, 0.4]
    diverged = loss["identity (diverged at epoch 2)"]
    assert diverged.index.tolist() == [1, 2]  # stops at the epoch it diverged
    assert diverged.iloc[0] == 2.0 and pd.isna(diverged.iloc[1])  # the infinite loss is not drawn
    assert accuracy["identity (diverged at epoch 2)"].tolist() == [35.0, 10.0]
    assert len(plot_runs(frame, tmp_path / "plots")) == 4
