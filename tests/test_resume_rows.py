"""Resume never throws finished epochs away: it continues from the checkpoints or refuses."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from test_resume import metrics, settings
from typer.testing import CliRunner

from actbench.checkpoint import CheckpointStore
from actbench.cli import app
from actbench.experiment import resume_experiment, run_experiment

runner = CliRunner()
ACTS = ["relu", "tanh", "sigmoid"]
KEEP = "start a new run (the rows stay as they are)"


def refused(run_dir, *args):
    """Resume `run_dir`, expecting a refusal that leaves the folder as it was; its one line.

    The run folder's own files are at fault, not the options: a runtime error, exit code 1.
    """
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["run", "--resume", str(run_dir), *args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # no row rewritten, nothing added (not even a lock file)
    return lines[0]


@pytest.fixture
def finished(mnist_dir, tmp_path):
    """A finished 2-epoch run of three models trained in one group."""
    return run_experiment(settings(mnist_dir, tmp_path / "a", epochs=2, workers=1)).run_dir


def test_deleted_checkpoints_are_refused_not_restarted(finished):
    """The issue's example: checkpoints/ deleted, resumed with more epochs, rows were lost."""
    shutil.rmtree(finished / "checkpoints")
    line = refused(finished, "--epochs", "4")
    assert line == (
        f"Error: {finished} has 2 finished epochs in metrics.csv but no checkpoints to "
        f"continue from; {KEEP}"
    )
    assert len(pd.read_csv(finished / "metrics.csv")) == 6


def test_one_models_missing_checkpoint_is_refused(finished):
    store = CheckpointStore(finished)
    for previous in (False, True):
        store.path(1, "tanh", 0, previous).unlink()
    line = refused(finished, "--epochs", "4")
    assert line == (
        f"Error: {finished} cannot be resumed: metrics.csv has 2 finished epochs of tanh "
        f"(seed 0) but it has no checkpoint; restore its checkpoints or {KEEP}"
    )


def test_an_older_generation_alone_is_refused(finished):
    """Only the checkpoint before the last is left: continuing would drop epoch 2's row."""
    CheckpointStore(finished).path(2, "sigmoid", 0).unlink()
    line = refused(finished, "--epochs", "4")
    assert "metrics.csv has 2 finished epochs of sigmoid (seed 0) but its checkpoint ends at " in (
        line
    )
    assert line.endswith(f"epoch 1; restore its checkpoints or {KEEP}")


def test_checkpoints_of_another_run_are_refused(finished, mnist_dir, tmp_path):
    other = run_experiment(settings(mnist_dir, tmp_path / "b", epochs=2, workers=1, lr=0.01))
    shutil.rmtree(finished / "checkpoints")
    shutil.copytree(other.run_dir / "checkpoints", finished / "checkpoints")
    line = refused(finished, "--epochs", "4")
    assert "the checkpoint of relu (seed 0)" in line
    assert f"does not match its epoch 1 in metrics.csv: it comes from another run; {KEEP}" in line


def test_rows_of_a_model_the_run_does_not_train_are_refused(finished):
    frame = pd.read_csv(finished / "metrics.csv")
    extra = frame[frame["activation"] == "relu"].assign(activation="gelu")
    pd.concat([frame, extra]).to_csv(finished / "metrics.csv", index=False)
    line = refused(finished, "--epochs", "4")
    assert "has rows of gelu (seed 0), which" in line and KEEP in line


def test_a_lost_metrics_csv_comes_back_whole_from_the_checkpoints(finished, mnist_dir, tmp_path):
    """Checkpoints ahead of the CSV hold real epochs: the resume keeps them all."""
    (finished / "metrics.csv").unlink()
    resume_experiment(finished, {"epochs": 3})
    whole = run_experiment(settings(mnist_dir, tmp_path / "b", epochs=3, workers=1))
    pd.testing.assert_frame_equal(metrics(finished), metrics(whole.run_dir), check_exact=True)


def test_a_run_listed_with_seeds_resumes(mnist_dir, tmp_path):
    """The manifest of a run with a list of seeds reads back (older ones also held a count)."""
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=1, seed=[0, 2]))
    path = run.run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["config"]["seed"] == [0, 2] and "seeds" not in manifest["config"]
    manifest["config"]["seeds"] = 1  # as earlier versions wrote it
    path.write_text(json.dumps(manifest))
    resume_experiment(run.run_dir, {"epochs": 2})
    frame = pd.read_csv(run.run_dir / "metrics.csv")
    assert sorted(set(zip(frame["seed"], frame["epoch"], strict=True))) == [
        (0, 1), (0, 2), (2, 1), (2, 2)
    ]  # fmt: skip
