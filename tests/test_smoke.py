"""The smoke experiment on real MNIST: runs when ACTBENCH_SMOKE_DATA names a folder with it."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from actbench.cli import app

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DATA = os.environ.get("ACTBENCH_SMOKE_DATA")


@pytest.mark.skipif(not DATA, reason="set ACTBENCH_SMOKE_DATA to a folder holding real MNIST")
def test_smoke_preset_on_real_mnist(tmp_path):
    runner = CliRunner()
    results = tmp_path / "results"
    args = ["run", "--config", str(CONFIGS / "smoke.toml"), "--data-dir", DATA]
    result = runner.invoke(app, [*args, "--results-dir", str(results), "--no-download"])
    assert result.exit_code == 0, result.output
    (run_dir,) = results.iterdir()
    frame = pd.read_csv(run_dir / "metrics.csv")
    final = frame[frame["epoch"] == frame["epoch"].max()]
    assert set(final["activation"]) == {"relu", "sigmoid", "tanh", "leaky"}
    assert sorted(final["seed"].unique()) == [0, 1, 2]
    assert len(final) == 4 * 3
    assert (final["test_accuracy"] > 0.8).all(), final  # chance is 0.1
    assert final["grad_layer1"].gt(0).all()
    cost = pd.read_csv(run_dir / "cost.csv")
    assert sorted(cost["activation"].unique()) == ["leaky", "relu", "sigmoid", "tanh"]
    assert "mean ± 95% interval over 3 seeds" in result.stdout

    plotted = runner.invoke(app, ["plot", str(results)])
    assert plotted.exit_code == 0, plotted.output
    figures = ["train_loss", "test_loss", "test_accuracy", "gradient_flow", "dead_units",
               "saturated_units", "activation_cost", "activations"]  # fmt: skip
    for name in figures:
        assert (results / "plots" / f"{name}.png").stat().st_size > 10_000
    report = (results / "plots" / "report.md").read_text()
    assert "Every activation has 3 seeds" in report and "## Differences from relu" in report


def test_study_smoke_preset_on_mnist1d(tmp_path):
    """A small study on MNIST-1D, which is generated offline: it runs everywhere."""
    runner = CliRunner()
    results = tmp_path / "results"
    args = ["run", "--config", str(CONFIGS / "study-smoke.toml"), "--results-dir", str(results)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = results.iterdir()
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert len(frame) == 4 * 4 * 3 * 3  # configurations x activations x seeds x epochs
    assert set(frame["dataset"]) == {"mnist1d"}
    final = frame[frame["epoch"] == 3]
    assert (final.groupby("activation")["test_accuracy"].max() > 0.2).all()  # chance is 0.1
    assert "Test accuracy per configuration" in result.stdout

    plotted = runner.invoke(app, ["plot", str(run_dir)])
    assert plotted.exit_code == 0, plotted.output
    for name in ["study_curves", "study_heatmap", "critical_difference"]:
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 10_000
    report = (run_dir / "plots" / "report.md").read_text()
    for heading in ["## Ranking across configurations", "## Each activation at its own best",
                    "## Paired differences from relu, per configuration"]:  # fmt: skip
        assert heading in report
