"""Run folders, the CSV schema, atomic writes, reading runs back and the summary table."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from actbench.errors import ActbenchError, UsageError
from actbench.results import (
    COLUMNS,
    METRICS,
    RunWriter,
    atomic_write,
    create_run_dir,
    load_runs,
    read_metrics,
)
from actbench.summary import compare, summarize
from actbench.train import EpochResult

SCHEMA = [
    "activation",
    "dataset",
    "depth",
    "hidden",
    "lr",
    "optimizer",
    "momentum",
    "batch_size",
    "init",
    "seed",
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "epoch_seconds",
    "status",
    "grad_layer1",
    "grad_layer2",
    "grad_layer3",
    "dead_layer1",
    "dead_layer2",
    "saturated_layer1",
    "saturated_layer2",
    "val_loss",
    "val_accuracy",
]


def row(activation="relu", epoch=1, acc=0.9, seed=0):
    return EpochResult(activation, seed, epoch, 0.5, acc - 0.01, 0.4, acc, 1.25)


def test_csv_schema_is_stable():
    assert COLUMNS == SCHEMA


def test_writer_keeps_csv_and_manifest_current(tmp_path):
    writer = RunWriter(tmp_path, ["relu", "tanh"], {"status": "running"})
    assert pd.read_csv(tmp_path / METRICS).columns.tolist() == SCHEMA
    writer.add([row("relu"), row("tanh")])
    frame = read_metrics(tmp_path / METRICS)
    assert frame["activation"].tolist() == ["relu", "tanh"]
    assert frame["test_accuracy"].tolist() == [0.9, 0.9]
    writer.update(status="completed")
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "completed"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rows_from_several_workers_are_written_in_a_fixed_order(tmp_path):
    writer = RunWriter(tmp_path, ["relu", "tanh", "gelu"], {})
    writer.add([row("gelu", 1), row("tanh", 1)])
    writer.add([row("tanh", 2), row("gelu", 2)])
    writer.add([row("relu", 1), row("relu", 2)])
    # appended as they came (each epoch on the disk at once), then put in order as it ends
    appended = read_metrics(tmp_path / METRICS)
    assert appended["activation"].tolist() == ["gelu", "tanh", "tanh", "gelu", "relu", "relu"]
    writer.finish()
    frame = read_metrics(tmp_path / METRICS)
    assert list(zip(frame["epoch"], frame["activation"], strict=True)) == [
        (1, "relu"),
        (1, "tanh"),
        (1, "gelu"),
        (2, "relu"),
        (2, "tanh"),
        (2, "gelu"),
    ]


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_write(path, "new content")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_run_folders_are_never_reused(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = create_run_dir(tmp_path, now)
    second = create_run_dir(tmp_path, now)
    assert first.name == "run-20260102-030405"
    assert second.name == "run-20260102-030405-2"


def test_results_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="is a file"):
        create_run_dir(tmp_path / "f")


def test_unwritable_results_dir(tmp_path, monkeypatch):
    """Permission bits do not stop root, so the refusal the OS would give is injected."""
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.parent == tmp_path / "locked":
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ActbenchError, match=r"cannot write in results folder .*Permission denied"):
        create_run_dir(tmp_path / "locked")


def test_read_metrics_refuses_wrong_columns(tmp_path):
    path = tmp_path / METRICS
    pd.DataFrame({"activation": ["relu"], "epoch": [1]}).to_csv(path, index=False)
    with pytest.raises(ActbenchError, match="missing columns"):
        read_metrics(path)
    frame = pd.DataFrame([row().as_row()]).assign(bonus=1)
    frame.to_csv(path, index=False)
    with pytest.raises(ActbenchError, match=r"unexpected columns \['bonus'\]"):
        read_metrics(path)


def test_load_runs_finds_every_run_and_its_settings(tmp_path):
    for name, lr in (("a", 0.1), ("b", 0.01)):
        run = tmp_path / name
        run.mkdir()
        writer = RunWriter(run, ["relu"], {"config": {"lr": lr, "activations": ["relu"]}})
        writer.add([row(epoch=1), row(epoch=2)])
    frame = load_runs(tmp_path)
    assert sorted(frame["run"].unique()) == ["a", "b"]
    assert sorted(frame["cfg_lr"].unique()) == ["0.01", "0.1"]
    assert len(frame) == 4


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_load_runs_errors(tmp_path, case):
    target = {"missing": tmp_path / "nope", "file": tmp_path / "f", "empty": tmp_path}[case]
    if case == "file":
        target.write_text("")
    message = {"missing": "does not exist", "file": "is a file", "empty": "no finished epochs"}
    with pytest.raises(UsageError, match=message[case]):
        load_runs(target)


def test_summary_by_hand():
    frame = pd.DataFrame(
        [
            row("relu", 1, 0.90).__dict__,
            row("relu", 2, 0.95).__dict__,
            row("relu", 3, 0.93).__dict__,
            row("tanh", 1, 0.80).__dict__,
            row("tanh", 2, 0.85).__dict__,
            row("tanh", 3, 0.86).__dict__,
        ]
    )
    table = summarize(frame).set_index("activation")
    assert table.loc["relu", "test_accuracy"] == pytest.approx(0.93)
    assert table.loc["relu", "epoch"] == 3
    # no validation columns: no best epoch is chosen (the test peak at epoch 2 is not one)
    assert table["best_epoch"].isna().all() and table["best_test_accuracy"].isna().all()
    assert table.loc["tanh", "seconds_per_epoch"] == pytest.approx(1.25)
    assert list(table.index) == ["relu", "tanh"]


def test_the_best_epoch_is_chosen_on_the_validation_split():
    # relu's test accuracy peaks at epoch 2 (0.95), its validation accuracy at epoch 3
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for epoch, test, val in ((1, 0.90, 0.91), (2, 0.95, 0.92), (3, 0.93, 0.96)):
            rows.append({**row("relu", epoch, test + shift, seed).__dict__,
                         "val_loss": 0.3, "val_accuracy": val + shift})  # fmt: skip
    table = summarize(pd.DataFrame(rows)).iloc[0]
    assert table["best_epoch"] == 3
    assert table["best_val_accuracy"] == pytest.approx(0.97)  # (0.96 + 0.98) / 2
    assert table["best_test_accuracy"] == pytest.approx(0.94)  # (0.93 + 0.95) / 2, at epoch 3
    # the same frame without the columns, or with them empty (--val 0): nothing is chosen
    plain = pd.DataFrame(rows).drop(columns=["val_loss", "val_accuracy"])
    assert summarize(plain).iloc[0]["best_epoch"] is None
    empty = pd.DataFrame(rows).assign(val_accuracy=float("nan"))
    assert summarize(empty).iloc[0]["best_epoch"] is None


def test_the_best_epoch_is_looked_for_only_up_to_the_compared_epoch():
    rows = [{**row("relu", e, 0.9).__dict__, "val_accuracy": v}
            for e, v in ((1, 0.91), (2, 0.93), (3, 0.99))]  # fmt: skip
    assert summarize(pd.DataFrame(rows), epoch=2).iloc[0]["best_epoch"] == 2


def test_summary_over_seeds_by_hand():
    # final accuracies of relu over seeds 0, 1, 2: 0.90, 0.92, 0.94 -> mean 0.92, sd 0.02,
    # half-width 4.303 * 0.02 / sqrt(3) = 0.04969; tanh is relu - 0.020, 0.021, 0.022 seed by seed
    rows = []
    for seed, acc in enumerate([0.90, 0.92, 0.94]):
        rows += [row("relu", 1, acc - 0.1, seed).__dict__, row("relu", 2, acc, seed).__dict__]
        rows += [row("tanh", 1, acc - 0.1, seed).__dict__]
        rows += [row("tanh", 2, acc - 0.020 - 0.001 * seed, seed).__dict__]
    frame = pd.DataFrame(rows)
    table = summarize(frame).set_index("activation")
    assert table.loc["relu", "seeds"] == 3
    assert table.loc["relu", "test_accuracy"] == pytest.approx(0.92)
    assert table.loc["relu", "test_accuracy_high"] == pytest.approx(0.92 + 0.04969, abs=1e-4)
    assert table.loc["relu", "test_accuracy_low"] == pytest.approx(0.92 - 0.04969, abs=1e-4)
    (pair,) = compare(frame, "relu").itertuples(index=False)
    # differences -0.020, -0.021, -0.022: mean -0.021, sd 0.001, half-width 0.0024843,
    # t = -0.021 / (0.001 / sqrt 3) = -36.37, d_z = -21; one comparison: Holm changes nothing
    assert pair.activation == "tanh" and pair.seeds == 3
    assert pair.difference == pytest.approx(-0.021)
    assert pair.high == pytest.approx(-0.021 + 0.0024843, abs=1e-6)
    assert pair.t == pytest.approx(-36.373, rel=1e-4)
    assert pair.d_z == pytest.approx(-21.0)
    assert pair.p_holm == pair.p and pair.p < 0.001
    assert pair.significant  # the whole interval is below zero
    # the unpaired intervals of the two overlap widely: only pairing shows the difference
    assert table.loc["tanh", "test_accuracy_high"] > table.loc["relu", "test_accuracy_low"]


def test_compare_corrects_for_several_comparisons_with_holm():
    # three activations against relu over four seeds; each one's p-value from scipy's paired
    # t test, then Holm by hand
    from scipy.stats import ttest_rel

    base = [0.90, 0.92, 0.91, 0.93]
    others = {
        "a": [0.915, 0.93, 0.925, 0.94],  # clearly above
        "b": [0.906, 0.922, 0.918, 0.934],  # a little above
        "c": [0.899, 0.925, 0.905, 0.936],  # noise
    }
    rows = [row("relu", 1, acc, seed).__dict__ for seed, acc in enumerate(base)]
    for name, accs in others.items():
        rows += [row(name, 1, acc, seed).__dict__ for seed, acc in enumerate(accs)]
    pairs = compare(pd.DataFrame(rows), "relu").set_index("activation")
    p = {name: ttest_rel(accs, base).pvalue for name, accs in others.items()}
    assert pairs["p"].to_dict() == pytest.approx(p)
    ranked = sorted(p, key=p.get)  # Holm: i-th smallest times (3 - i), running maximum
    expected, running = {}, 0.0
    for i, name in enumerate(ranked):
        running = max(running, min(1.0, p[name] * (3 - i)))
        expected[name] = running
    assert pairs["p_holm"].to_dict() == pytest.approx(expected)
    assert pairs["significant"].to_dict() == {n: expected[n] < 0.05 for n in others}
    # the correction matters here: b's own p-value is below 0.05, its adjusted one is not
    assert p["b"] < 0.05 < expected["b"] and not pairs.loc["b", "significant"]
    assert pairs.loc["a", "significant"]


def test_summary_reports_divergence_per_activation():
    frame = pd.DataFrame(
        [
            row("relu", 1, 0.9, 0).__dict__,
            {**row("relu", 2, 0.1, 0).__dict__, "status": "diverged"},
            row("relu", 1, 0.9, 1).__dict__,
            row("relu", 2, 0.95, 1).__dict__,
            row("relu", 3, 0.96, 1).__dict__,
        ]
    )
    table = summarize(frame).set_index("activation")
    assert table.loc["relu", "diverged_seeds"] == 1
    assert table.loc["relu", "diverged_epoch"] == 2
    # at epoch 3, the last every model reached: seed 0 counts with the epoch it diverged in
    assert table.loc["relu", "epoch"] == 3
    assert table.loc["relu", "test_accuracy"] == pytest.approx((0.1 + 0.96) / 2)


def test_a_model_stopped_early_sets_the_compared_epoch():
    frame = pd.DataFrame(
        [row("relu", e, 0.9 + 0.01 * e, 0).__dict__ for e in (1, 2, 3)]
        + [row("tanh", e, 0.8 + 0.01 * e, 0).__dict__ for e in (1, 2)]
    )
    table = summarize(frame).set_index("activation")
    assert (table["epoch"] == 2).all()
    assert table.loc["relu", "test_accuracy"] == pytest.approx(0.92)  # not its epoch 3
    (pair,) = compare(frame, "relu").itertuples(index=False)
    assert pair.difference == pytest.approx(-0.1)


def test_summaries_refuse_a_seed_run_twice():
    once = [row("relu", 1, acc, seed).__dict__ for seed, acc in enumerate([0.90, 0.92, 0.94])]
    twice = [*once, row("relu", 1, 0.90, 0).__dict__]  # seed 0 again: not a new sample
    with pytest.raises(ValueError, match="relu seed 0 has several rows for epoch 1"):
        summarize(pd.DataFrame(twice))
    with pytest.raises(ValueError, match="select_models"):
        compare(pd.DataFrame([*twice, row("tanh", 1, 0.9, 0).__dict__]), "relu")


def _make_run_dir(args):
    folder, stamp = args
    return create_run_dir(Path(folder), datetime.fromisoformat(stamp)).name


def test_runs_started_at_the_same_moment_get_distinct_folders(tmp_path):
    import multiprocessing

    # spawn, not fork: a child forked from this many-threaded test process can inherit a lock
    # that another thread held at that moment, and wait on it forever
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        names = pool.map(_make_run_dir, [(str(tmp_path), "2026-01-02T03:04:05")] * 8)
    assert len(set(names)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
