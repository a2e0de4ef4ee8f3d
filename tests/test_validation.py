"""The validation split (`--val N`): drawn once from the training data, evaluated every epoch."""

from __future__ import annotations

import hashlib
import json
import math
import re

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import TRAIN
from typer.testing import CliRunner

import actbench.data
from actbench.activations import resolve
from actbench.checkpoint import CheckpointStore
from actbench.cli import app
from actbench.config import load_config, make_config
from actbench.data import MEAN, STD, VAL_SEED, load_mnist, prepare, split_indices
from actbench.errors import UsageError
from actbench.experiment import resume_experiment, run_experiment
from actbench.model import MLP
from actbench.results import read_metrics
from actbench.train import EpochResult

runner = CliRunner()
CPU = torch.device("cpu")
VAL = 64


def settings(mnist_dir, results, **extra):
    values = {"activations": "relu,tanh", "hidden": 8, "batch_size": 16, "epochs": 2,
              "data_dir": str(mnist_dir), "results_dir": str(results), "threads": 1,
              "workers": 1, **extra}  # fmt: skip
    return make_config(values)


def normalised(images):
    return images.reshape(len(images), -1).float().div(255).sub(MEAN).div(STD)


@pytest.mark.parametrize("subset", [None, 200])
def test_split_is_disjoint_of_the_asked_size_and_covers_the_training_data(mnist_dir, subset):
    mnist = load_mnist(mnist_dir, download=False)
    train_idx, split = split_indices(TRAIN, subset, 0, VAL, 16)
    chosen, _ = split_indices(TRAIN, subset, 0)  # the training data before the split
    chosen = torch.arange(TRAIN) if chosen is None else chosen
    val = split.indices
    assert len(val) == VAL and len(set(val.tolist())) == VAL
    assert not set(val.tolist()) & set(train_idx.tolist())
    assert sorted([*val.tolist(), *train_idx.tolist()]) == sorted(chosen.tolist())
    assert val.tolist() == sorted(val.tolist())
    # the tensors are those rows of the training files, normalised like the rest
    data = prepare(mnist, subset, 0, CPU, val=VAL, batch_size=16)
    torch.testing.assert_close(data.val_x, normalised(mnist.train_images[val]))
    assert torch.equal(data.val_y, mnist.train_labels[val])
    torch.testing.assert_close(data.train_x, normalised(mnist.train_images[train_idx]))
    assert len(data.train_x) == len(chosen) - VAL


def test_split_is_the_same_across_calls_and_seeds(mnist_dir):
    mnist = load_mnist(mnist_dir, download=False)
    a = prepare(mnist, None, 0, CPU, val=VAL)
    b = prepare(mnist, None, 0, CPU, val=VAL)
    c = prepare(mnist, None, 7, CPU, val=VAL)
    assert torch.equal(a.val_split.indices, b.val_split.indices)
    assert torch.equal(a.val_split.indices, c.val_split.indices)
    assert torch.equal(a.val_x, c.val_x) and torch.equal(a.train_x, c.train_x)
    assert a.val_split.seed == VAL_SEED


def test_split_is_drawn_from_within_the_subset():
    subset, _ = split_indices(TRAIN, 128, 3)
    _, split = split_indices(TRAIN, 128, 3, 32, 16)
    assert set(split.indices.tolist()) <= set(subset.tolist())


def test_no_split_leaves_the_classic_data_unchanged(mnist_dir):
    mnist = load_mnist(mnist_dir, download=False)
    classic = prepare(mnist, None, 0, CPU)
    assert classic.val_x is None and classic.val_y is None and classic.val_split is None
    torch.testing.assert_close(classic.train_x, normalised(mnist.train_images))
    assert split_indices(TRAIN, None, 0, 0, 64) == (None, None)


@pytest.mark.parametrize(
    ("val", "batch", "subset", "message"),
    [
        (TRAIN, 16, None, f"val {TRAIN} leaves 0 of the {TRAIN} training samples"),
        (TRAIN + 5, 16, None, f"use --val {TRAIN - 16} or less"),
        (TRAIN - 15, 16, None, f"leaves 15 of the {TRAIN} training samples, fewer than one batch"),
        (
            3,
            64,
            50,
            "leaves 47 of the 50 training samples, fewer than one batch (batch_size 64); "
            "use --batch-size 47 or less",
        ),
        (50, 64, 50, "hold out fewer than 50 samples (--val) and lower --batch-size"),
    ],
)
def test_a_split_leaving_less_than_a_batch_is_refused(val, batch, subset, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        split_indices(TRAIN, subset, 0, val, batch)


def test_the_largest_split_leaves_exactly_one_batch():
    train_idx, split = split_indices(TRAIN, None, 0, TRAIN - 16, 16)
    assert len(train_idx) == 16 and len(split.indices) == TRAIN - 16


def test_manifest_records_the_split(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "r", val=VAL, epochs=1))
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    _, split = split_indices(TRAIN, None, 0, VAL, 16)
    text = ",".join(str(i) for i in sorted(split.indices.tolist()))
    assert manifest["validation"] == {
        "samples": VAL,
        "seed": VAL_SEED,
        "indices_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    assert manifest["data"]["val_samples"] == VAL
    assert manifest["data"]["train_samples"] == TRAIN - VAL
    assert manifest["config"]["val"] == VAL


def test_val_columns_are_the_models_own_loss_and_accuracy_on_the_split(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "r", val=VAL))
    frame = pd.read_csv(run.run_dir / "metrics.csv")
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, CPU, val=VAL)
    store = CheckpointStore(run.run_dir)
    checked = 0
    for index, label in enumerate(["relu", "tanh"]):
        for previous in (False, True):  # the weights after epoch 2, and after epoch 1
            state = store.load(index, label, 0, previous=previous)
            model = MLP(resolve(label), hidden=8)
            model.load_state_dict(state.model)
            with torch.no_grad():
                logits = model(data.val_x)
            loss = F.cross_entropy(logits, data.val_y).item()
            accuracy = (logits.argmax(1) == data.val_y).double().mean().item()
            row = frame[(frame["activation"] == label) & (frame["epoch"] == state.epoch)]
            assert row["val_loss"].item() == pytest.approx(loss, rel=1e-5)
            assert row["val_accuracy"].item() == pytest.approx(accuracy, abs=0.5 / VAL)
            checked += 1
    assert checked == 4
    # the columns hold validation numbers, not the test pass's
    assert not (frame["val_loss"] == frame["test_loss"]).any()


def test_a_models_rows_do_not_depend_on_the_other_seeds_of_the_run(mnist_dir, tmp_path):
    a = run_experiment(settings(mnist_dir, tmp_path / "a", val=VAL, seed="0,1"))
    b = run_experiment(settings(mnist_dir, tmp_path / "b", val=VAL, seed="0,2"))
    record = [json.loads((r.run_dir / "manifest.json").read_text())["validation"] for r in (a, b)]
    assert record[0] == record[1]
    columns = ["activation", "epoch", "train_loss", "test_loss", "val_loss", "val_accuracy"]
    first = a.metrics[a.metrics["seed"] == 0][columns].reset_index(drop=True)
    second = b.metrics[b.metrics["seed"] == 0][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, second)


def test_without_a_split_the_val_columns_are_nan(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "r", epochs=1))
    frame = read_metrics(run.run_dir / "metrics.csv")
    assert frame["val_loss"].isna().all() and frame["val_accuracy"].isna().all()
    assert frame["test_loss"].notna().all()
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["validation"] is None and manifest["data"]["val_samples"] == 0
    assert manifest["data"]["train_samples"] == TRAIN


def test_val_comes_from_presets_and_flags(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("val = 500\n")
    assert load_config(preset).val == 500
    assert load_config(preset, val=20).val == 20
    assert load_config().val == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "val must be 0 (no validation split) or a positive integer, got -1"),
        (1.5, "val must be an integer, got 1.5"),
        (True, "val must be an integer, got True"),
        ("10", "val must be an integer, got '10'"),
    ],
)
def test_bad_val_values_are_refused(value, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        make_config({"val": value})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--val", "-3"], "--val must be 0 (no validation split) or a positive integer, got -3"),
        (["--val", "many"], "Invalid value for '--val'"),
        (["--val", str(TRAIN)], f"--val {TRAIN} leaves 0 of the {TRAIN} training samples"),
        (
            ["--val", "250", "--batch-size", "16"],
            "fewer than one batch (--batch-size 16); use --val 240",
        ),
        (["--config", "{preset}"], "val must be an integer, got 'all'"),
    ],
)
def test_bad_val_is_one_line_exit_2_and_writes_nothing(mnist_dir, tmp_path, args, message):
    preset = tmp_path / "p.toml"
    preset.write_text('val = "all"\n')
    results = tmp_path / "results"
    filled = [a.format(preset=preset) for a in args]
    result = runner.invoke(
        app, ["run", *filled, "--data-dir", str(mnist_dir), "--results-dir", str(results)]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not results.exists()


def test_resume_extends_with_the_same_split(mnist_dir, tmp_path):
    whole = run_experiment(settings(mnist_dir, tmp_path / "a", val=VAL, epochs=3))
    part = run_experiment(settings(mnist_dir, tmp_path / "b", val=VAL))
    resumed = resume_experiment(part.run_dir, {"epochs": 3})
    columns = ["activation", "seed", "epoch", "val_loss", "val_accuracy", "test_loss"]
    pd.testing.assert_frame_equal(resumed.metrics[columns], whole.metrics[columns])
    assert resumed.manifest["validation"] == whole.manifest["validation"]


def test_resume_cannot_change_the_split_size(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "a", val=VAL))
    result = runner.invoke(app, ["run", "--resume", str(run.run_dir), "--val", "32"])
    assert result.exit_code == 2, result.output
    assert f"--val 32 (the run used {VAL})" in result.stderr
    plain = run_experiment(settings(mnist_dir, tmp_path / "b"))
    result = runner.invoke(app, ["run", "--resume", str(plain.run_dir), "--val", "32"])
    assert result.exit_code == 2, result.output
    assert "--val 32 (the run had no validation split)" in result.stderr


def test_resume_refuses_a_split_drawn_differently(mnist_dir, tmp_path, monkeypatch):
    run = run_experiment(settings(mnist_dir, tmp_path / "a", val=VAL))
    before = (run.run_dir / "metrics.csv").read_bytes()
    monkeypatch.setattr(actbench.data, "VAL_SEED", VAL_SEED + 1)  # as another draw would be
    result = runner.invoke(app, ["run", "--resume", str(run.run_dir), "--epochs", "3"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "the validation split drawn now differs" in lines[0], lines
    assert (run.run_dir / "metrics.csv").read_bytes() == before


def test_older_checkpoints_without_val_fields_still_load_and_resume(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "r", epochs=1))
    paths = sorted((run.run_dir / "checkpoints").glob("*.pt"))
    assert paths
    for path in paths:  # as written before the validation split existed
        raw = torch.load(path, weights_only=True)
        raw["rows"] = [
            {k: v for k, v in row.items() if k not in ("val_loss", "val_accuracy")}
            for row in raw["rows"]
        ]
        torch.save(raw, path)
    state = CheckpointStore(run.run_dir).load(0, "relu", 0)
    (row,) = state.rows
    assert isinstance(row, EpochResult) and row.test_accuracy == run.metrics["test_accuracy"][0]
    assert math.isnan(row.val_loss) and math.isnan(row.val_accuracy)
    resumed = resume_experiment(run.run_dir, {"epochs": 2})
    assert resumed.metrics["epoch"].tolist() == [1, 1, 2, 2]
    assert resumed.metrics["val_loss"].isna().all()


def test_an_older_csv_without_val_columns_reads_them_as_nan(mnist_dir, tmp_path):
    run = run_experiment(settings(mnist_dir, tmp_path / "r", epochs=1))
    path = run.run_dir / "metrics.csv"
    full = read_metrics(path)
    pd.read_csv(path).drop(columns=["val_loss", "val_accuracy"]).to_csv(path, index=False)
    older = read_metrics(path)
    assert older.columns.tolist() == full.columns.tolist()
    pd.testing.assert_frame_equal(older, full)


MNIST_TRAIN = 60_000  # MNIST's training samples as published


@pytest.mark.parametrize(
    ("subset", "val", "batch", "message"),
    [
        (2000, 5000, 64, "val 5000 leaves no training samples: the split is held out of subset "
         "2000; use --val 1936 or less, or --subset 5064 or more"),
        (2000, 2000, 64, "val 2000 leaves no training samples: the split is held out of subset "
         "2000; use --val 1936 or less, or --subset 2064 or more"),
        (2000, 1999, 64, "val 1999 leaves 1 training sample, fewer than one batch (batch_size "
         "64): the split is held out of subset 2000; use --val 1936 or less, --subset 2063 or "
         "more, or --batch-size 1 or less"),
        (2000, 1937, 64, "val 1937 leaves 63 training samples, fewer than one batch"),
        (2000, 1936, 64, None),  # exactly one batch left
        (2000, 1999, 1, None),  # one sample: one batch of 1
        (2000, 2000, 1, "val 2000 leaves no training samples"),
        # no --subset of 60,000 or more exists: not offered
        (59990, 59950, 64, "use --val 59926 or less, or --batch-size 40 or less"),
        (None, MNIST_TRAIN, 64, "val 60000 leaves no training samples: the split is held out "
         "of MNIST's 60000; use --val 59936 or less"),
        (None, MNIST_TRAIN - 63, 64, "val 59937 leaves 63 training samples, fewer than one "
         "batch (batch_size 64): the split is held out of MNIST's 60000; use --val 59936 or "
         "less, or --batch-size 63 or less"),
        (None, MNIST_TRAIN - 64, 64, None),
    ],
)  # fmt: skip
def test_a_split_that_leaves_less_than_a_batch_is_refused_with_the_settings(
    subset, val, batch, message
):
    """Checked with the other settings, before any data is read, and by the same rule as
    the split itself: held out of the subset (or the data set), it must leave one batch."""
    values = {"val": val, "batch_size": batch, "subset": subset}
    if message is None:
        assert make_config(values).val == val
        train_idx, split = split_indices(MNIST_TRAIN, subset, 0, val, batch)
        assert len(split.indices) == val
        assert len(train_idx) == (subset or MNIST_TRAIN) - val >= batch
        return
    with pytest.raises(UsageError, match=re.escape(message)):
        make_config(values)
    with pytest.raises(UsageError, match="fewer than one batch"):  # the split agrees
        split_indices(MNIST_TRAIN, subset, 0, val, batch)


def test_the_split_is_checked_against_each_data_set_s_own_size():
    message = "val 4000 leaves no training samples: the split is held out of MNIST-1D's 4000"
    with pytest.raises(UsageError, match=re.escape(message)):
        make_config({"dataset": "mnist1d", "val": 4000})
    assert make_config({"dataset": "mnist1d", "val": 3936}).val == 3936
    # CIFAR-10's size is known once its files are read: the split is checked then
    assert make_config({"dataset": "cifar10", "val": MNIST_TRAIN}).val == MNIST_TRAIN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subset", "2000", "--val", "5000"], "--val 5000 leaves no training samples: the "
         "split is held out of --subset 2000; use --val 1936 or less, or --subset 5064 or more"),
        (["--subset", "2000", "--val", "2000"], "--val 2000 leaves no training samples"),
        (["--subset", "2000", "--val", "1999"], "--val 1999 leaves 1 training sample, fewer "
         "than one batch (--batch-size 64)"),
        (["--val", "60000"], "--val 60000 leaves no training samples: the split is held out of "
         "MNIST's 60000; use --val 59936 or less"),
    ],
)  # fmt: skip
def test_a_split_larger_than_the_subset_is_one_line_before_any_data_is_read(
    tmp_path, args, message
):
    """Refused with the other settings: with no data at hand (and no download), still a
    usage error, not the missing data's."""
    results = tmp_path / "results"
    result = runner.invoke(app, ["run", *args, "--data-dir", str(tmp_path / "no-data"),
                                 "--no-download", "--results-dir", str(results)])  # fmt: skip
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {message}"), line
    assert not results.exists() and not (tmp_path / "no-data").exists()
