"""Resume: an interrupted run, continued from its checkpoints, ends as if never interrupted."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading

import pandas as pd
import pytest
import torch
from conftest import idx_bytes, make_split
from test_interrupt import start_run, wait_for_epochs
from typer.testing import CliRunner

from actbench import cli, datafiles
from actbench.activations import resolve
from actbench.checkpoint import CheckpointStore
from actbench.cli import app
from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.experiment import resume_experiment, run_experiment
from actbench.model import MLP
from actbench.results import RunLock

runner = CliRunner()
ACTS = "relu,tanh,sigmoid"


def settings(mnist_dir, results, **extra):
    values = {"activations": ACTS, "hidden": 8, "batch_size": 16, "data_dir": str(mnist_dir),
              "results_dir": str(results), "threads": 1, **extra}  # fmt: skip
    return make_config(values)


def metrics(run_dir):
    """The CSV without its times, the only columns that may differ between equal runs."""
    frame = pd.read_csv(run_dir / "metrics.csv")
    return frame.drop(columns=["epoch_seconds"])


def epochs_after_resume(stopped):
    """An end for the resumed run a few epochs past the furthest model of the stopped one.

    The stopped run was started with far more epochs than it could train before its signal,
    so a signal always found it training, however fast the machine; the resume then ends it
    at this epoch, and the uninterrupted run to compare with trains as many.
    """
    return int(stopped["epoch"].max()) + 3


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_then_resumed_equals_uninterrupted(mnist_dir, tmp_path, workers):
    proc = start_run(mnist_dir, tmp_path / "a", workers, extra=["--threads", "1",
                     "--batch-size", "16"])  # fmt: skip
    run_dir = wait_for_epochs(tmp_path / "a", 9, proc).parent
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert f"continue with: actbench run --resume {run_dir}" in stderr
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    stopped = pd.read_csv(run_dir / "metrics.csv")
    assert len(stopped) >= 9  # of a run of 100000 epochs: really stopped half-way
    epochs = epochs_after_resume(stopped)

    result = runner.invoke(app, ["run", "--resume", str(run_dir), "--epochs", str(epochs)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["resumed"]) == 1

    whole = run_experiment(settings(mnist_dir, tmp_path / "b", epochs=epochs, workers=workers))
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(whole.run_dir), check_exact=True)
    # the epochs finished before the interrupt are kept as they were
    kept = stopped.merge(pd.read_csv(run_dir / "metrics.csv"), how="left", indicator=True)
    assert (kept["_merge"] == "both").all()


def test_a_finished_run_extends_to_more_epochs(mnist_dir, tmp_path):
    short = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=2))
    result = runner.invoke(app, ["run", "--resume", str(short.run_dir), "--epochs", "4"])
    assert result.exit_code == 0, result.output
    long = run_experiment(settings(mnist_dir, tmp_path / "b", epochs=4))
    pd.testing.assert_frame_equal(metrics(short.run_dir), metrics(long.run_dir), check_exact=True)
    manifest = json.loads((short.run_dir / "manifest.json").read_text())
    assert manifest["config"]["epochs"] == 4


def test_a_run_given_a_relative_data_folder_resumes_from_anywhere(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(mnist_dir.parent)
    relative = settings(mnist_dir, tmp_path / "a", epochs=2, data_dir=mnist_dir.name)
    short = run_experiment(relative)
    manifest = json.loads((short.run_dir / "manifest.json").read_text())
    assert manifest["config"]["data_dir"] == str(mnist_dir.resolve())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # where "data" is no data folder
    result = runner.invoke(app, ["run", "--resume", str(short.run_dir), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    long = run_experiment(settings(mnist_dir, tmp_path / "b", epochs=3))
    pd.testing.assert_frame_equal(metrics(short.run_dir), metrics(long.run_dir), check_exact=True)


def test_resuming_the_folder_above_a_run_names_the_run(tmp_path):
    from runfolders import write_run

    run = write_run(tmp_path / "results" / "run-a")
    result = runner.invoke(app, ["run", "--resume", str(tmp_path / "results")])
    assert result.exit_code == 2
    assert result.output.strip().endswith(f"did you mean the run inside it, {run}?")


def test_resume_reads_the_data_in_the_background_like_a_new_run(mnist_dir, tmp_path, monkeypatch):
    """MNIST is decompressed while torch loads: from the run's data folder, or --data-dir's."""
    monkeypatch.delenv("ACTBENCH_DATA_DIR", raising=False)
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=1))
    asked, readers, real_prefetch, real_read = [], [], cli.prefetch, datafiles._read
    monkeypatch.setattr(
        cli, "prefetch", lambda folder: asked.append(folder) or real_prefetch(folder)
    )

    def read(path):
        readers.append(threading.current_thread().name)
        return real_read(path)

    monkeypatch.setattr(datafiles, "_read", read)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in mnist_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    for extra, folder in (([], mnist_dir), (["--data-dir", str(copy)], copy)):
        asked.clear()
        readers.clear()
        epochs = "2" if folder == mnist_dir else "3"
        result = runner.invoke(
            app, ["run", "--resume", str(run.run_dir), "--epochs", epochs, *extra]
        )
        assert result.exit_code == 0, result.output
        assert [str(f) for f in asked] == [str(folder)]
        assert len(readers) == 4 and set(readers) == {"actbench-prefetch"}  # none read twice


def test_a_missing_last_row_comes_back_from_the_checkpoint(mnist_dir, tmp_path):
    """A run killed between saving a checkpoint and writing its row loses nothing."""
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=3))
    full = metrics(run.run_dir)
    frame = pd.read_csv(run.run_dir / "metrics.csv")
    frame[frame["epoch"] < 3].to_csv(run.run_dir / "metrics.csv", index=False)
    resume_experiment(run.run_dir, {"epochs": 4})
    pd.testing.assert_frame_equal(metrics(run.run_dir)[lambda f: f["epoch"] <= 3], full)


def test_checkpoints_hold_only_tensors_and_plain_data(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=2))
    store = CheckpointStore(run.run_dir)
    state = store.load(1, "tanh", 0)
    assert state.epoch == 2 and not state.diverged and len(state.rows) == 2
    raw = torch.load(store.path(1, "tanh", 0), weights_only=True)
    assert set(raw["model"]) >= {"fc1.weight", "fc3.bias"}
    # the saved weights are model 1's own: its last test accuracy comes back from them
    model = MLP(resolve("tanh"), hidden=8)
    model.load_state_dict(state.model)
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    with torch.no_grad():
        accuracy = (model(data.test_x).argmax(1) == data.test_y).double().mean().item()
    assert accuracy == pytest.approx(state.rows[-1].test_accuracy)


def test_a_checkpoint_that_would_run_code_is_refused(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=1))
    path = CheckpointStore(run.run_dir).path(0, "relu", 0)
    torch.save({"evil": print}, path)  # loading this needs pickle's code execution
    result = runner.invoke(app, ["run", "--resume", str(run.run_dir), "--epochs", "2"])
    assert result.exit_code == 1
    assert f"checkpoint {path} is unreadable" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "0.1", "--hidden", "4"],
         "with different settings: --hidden 4 (the run used 8); --lr 0.1 (the run used 0.001)"),
        (["-a", "relu,gelu,sigmoid"], "--activations relu,gelu,sigmoid (the run used relu,tanh,"),
        (["--subset", "128"], "--subset 128 (the run used the full data set)"),
        (["--epochs", "1"], "is complete with 2 epochs; to extend it, give --epochs 3 or more"),
        (["--epochs", "2"], "is complete with 2 epochs; to extend it, give --epochs 3 or more"),
        ([], "is complete with 2 epochs; to extend it, give --epochs 3 or more"),
    ],
)  # fmt: skip
def test_resume_refuses_what_would_change_the_results(mnist_dir, tmp_path, args, message):
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=2))
    before = (run.run_dir / "metrics.csv").read_bytes()
    result = runner.invoke(app, ["run", "--resume", str(run.run_dir), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (run.run_dir / "metrics.csv").read_bytes() == before


def test_too_few_epochs_for_an_unfinished_run_name_the_one_number_that_works(mnist_dir, tmp_path):
    """Stopped after 2 of its 4 epochs: --epochs 2 trains nothing; 3 or more continues it."""
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=2))
    path = run.run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["epochs"], manifest["status"] = 4, "interrupted"
    path.write_text(json.dumps(manifest))
    for epochs in ("1", "2"):
        result = runner.invoke(app, ["run", "--resume", str(run.run_dir), "--epochs", epochs])
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [
            f"Error: {run.run_dir} has finished 2 of its 4 epochs; to continue it, give "
            "--epochs 3 or more (or no --epochs, for all 4)"
        ]
    resume_experiment(run.run_dir, {"epochs": 3})  # the number the message names
    assert pd.read_csv(run.run_dir / "metrics.csv")["epoch"].max() == 3


def test_resume_needs_a_run_folder_the_same_data_and_no_other_user(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=1))
    result = runner.invoke(app, ["run", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "is not an actbench run folder" in result.output

    other = tmp_path / "other-data"
    other.mkdir()
    for path in mnist_dir.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    _, labels = make_split(256, seed=9)  # other labels: other data
    (other / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    result = runner.invoke(
        app, ["run", "--resume", str(run.run_dir), "--epochs", "2", "--data-dir", str(other)]
    )
    assert result.exit_code == 2 and "differ from those" in result.output

    with RunLock(run.run_dir):  # as if another process were still writing it
        result = runner.invoke(app, ["run", "--resume", str(run.run_dir), "--epochs", "2"])
    assert result.exit_code == 2 and "in use by another actbench process" in result.output


def test_a_group_cut_in_the_middle_of_its_save_resumes_exactly(mnist_dir, tmp_path):
    """As a run killed outright (power cut, SIGKILL) between two models' checkpoint files
    leaves it: relu saved epoch 3, tanh and sigmoid still at epoch 2."""
    run = run_experiment(settings(mnist_dir, tmp_path / "a", epochs=3, workers=1))
    store = CheckpointStore(run.run_dir)
    for index, label in ((1, "tanh"), (2, "sigmoid")):
        os.replace(store.path(index, label, 0, previous=True), store.path(index, label, 0))
    frame = pd.read_csv(run.run_dir / "metrics.csv")  # a group's rows follow all its saves
    frame[frame["epoch"] < 3].to_csv(run.run_dir / "metrics.csv", index=False)
    assert [store.load(i, a, 0).epoch for i, a in enumerate(ACTS.split(","))] == [3, 2, 2]
    resume_experiment(run.run_dir, {"epochs": 5})
    whole = run_experiment(settings(mnist_dir, tmp_path / "b", epochs=5, workers=1))
    pd.testing.assert_frame_equal(metrics(run.run_dir), metrics(whole.run_dir), check_exact=True)


def test_killed_outright_then_resumed_equals_uninterrupted(mnist_dir, tmp_path):
    proc = start_run(mnist_dir, tmp_path / "a", 1, extra=["--threads", "1",
                     "--batch-size", "16"])  # fmt: skip
    run_dir = wait_for_epochs(tmp_path / "a", 9, proc).parent
    proc.kill()  # SIGKILL: no handler runs, nothing is tidied up
    proc.communicate(timeout=300)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    # a checkpoint may be one epoch ahead of its row (killed between the two): still behind
    epochs = epochs_after_resume(pd.read_csv(run_dir / "metrics.csv"))
    result = runner.invoke(app, ["run", "--resume", str(run_dir), "--epochs", str(epochs)])
    assert result.exit_code == 0, result.output
    whole = run_experiment(settings(mnist_dir, tmp_path / "b", epochs=epochs, workers=1))
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(whole.run_dir), check_exact=True)
