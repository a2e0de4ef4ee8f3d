"""Studies: list-valued settings expand to a grid, one run folder holds it, rows say which
configuration they belong to, and every model's numbers are those it has trained alone."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pandas as pd
import pytest
import torch
from rich.cells import cell_len
from typer.testing import CliRunner

from actbench.cli import app
from actbench.config import load_config, make_config
from actbench.errors import UsageError
from actbench.experiment import run_experiment
from actbench.results import COLUMNS, SETTINGS, RunWriter, read_metrics, settings_of
from actbench.train import EpochResult

runner = CliRunner()


def test_lists_expand_to_the_cartesian_product_in_a_fixed_order():
    config = load_config(None, lr="1e-3,3e-3", hidden="16,32", batch_size="8")
    points = config.points()
    assert [(p.hidden, p.lr) for p in points] == [
        (16, 1e-3), (16, 3e-3), (32, 1e-3), (32, 3e-3),
    ]  # fmt: skip
    assert all(not p.is_grid and p.batch_size == 8 for p in points)
    assert config.grid == {"hidden": (16, 32), "lr": (1e-3, 3e-3)}
    assert config.to_dict()["lr"] == [1e-3, 3e-3]
    assert make_config(config.to_dict()) == config  # a manifest reads back to the same study


def test_a_toml_preset_gives_lists(tmp_path):
    preset = tmp_path / "study.toml"
    preset.write_text('lr = [0.001, 0.01]\noptimizer = ["adam", "sgd"]\nmomentum = 0.9\n')
    config = load_config(preset)
    # Adam has no momentum: its configurations take 0 and appear once each
    assert [(p.lr, p.optimizer, p.momentum) for p in config.points()] == [
        (0.001, "adam", 0.0), (0.001, "sgd", 0.9), (0.01, "adam", 0.0), (0.01, "sgd", 0.9),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"lr": "1e-3,1e-3"}, "lr lists 0.001 twice (0.001,0.001); give each value once"),
        ({"hidden": "16,x"}, "hidden must be an integer or a comma-separated list of them, got 'x'"),
        ({"lr": "1e-3,"}, "lr must be a number or a comma-separated list of them, got an empty item in '1e-3,'"),
        ({"lr": "1e-3,-1"}, "lr must be a positive finite number, got -1.0 (in the configuration lr -1.0)"),
        ({"optimizer": "adam,rmsprop"}, "optimizer must be one of adam, sgd, got 'rmsprop'"),
        ({"momentum": "0.5,0.9"}, "momentum 0.5,0.9 applies to SGD only"),
        ({"epochs": "2"}, None),
    ],
)  # fmt: skip
def test_bad_grid_values_name_the_key_and_the_value(flags, message):
    if message is None:  # epochs is one value for the whole study
        with pytest.raises(UsageError, match="epochs must be an integer"):
            make_config({"epochs": [2, 3]})
        return
    with pytest.raises(UsageError) as caught:
        load_config(None, **flags)
    assert str(caught.value).startswith(message)


def test_the_cli_refuses_a_bad_grid_before_writing(mnist_dir, tmp_path):
    results = tmp_path / "results"
    result = runner.invoke(app, ["run", "--lr", "0.01,0.01", "--data-dir", str(mnist_dir),
                                 "--results-dir", str(results)])  # fmt: skip
    assert result.exit_code == 2
    assert "lr lists 0.01 twice" in result.output
    assert not results.exists()


def study(mnist_dir, results, **extra):
    values = {"activations": "relu,tanh", "hidden": "8,12", "lr": "0.001,0.01", "seeds": 2,
              "batch_size": 16, "epochs": 2, "data_dir": str(mnist_dir),
              "results_dir": str(results), **extra}  # fmt: skip
    return load_config(None, **values)


def without_times(frame):
    return frame.drop(columns=["epoch_seconds"]).reset_index(drop=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_study_is_one_folder_whose_models_equal_the_same_models_trained_alone(
    mnist_dir, tmp_path, workers
):
    result = run_experiment(study(mnist_dir, tmp_path / "s", workers=workers))
    frame = read_metrics(result.run_dir / "metrics.csv")
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 4 * 2 * 2 * 2  # configurations x activations x seeds x epochs
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["grid"] == {"hidden": [8, 12], "lr": [0.001, 0.01]}
    assert len(manifest["configurations"]) == 4
    # rows in the run's order: configuration, seed, epoch, activation
    order = [(r.hidden, r.lr, r.seed, r.epoch) for r in frame.itertuples()]
    assert order == sorted(order)
    for hidden, lr, seed in [(12, 0.01, 1), (8, 0.001, 0)]:
        alone = run_experiment(make_config({
            "activations": "tanh", "hidden": hidden, "lr": lr, "seed": seed, "batch_size": 16,
            "epochs": 2, "data_dir": str(mnist_dir), "results_dir": str(tmp_path / "alone"),
            "workers": 1,
        }))  # fmt: skip
        mine = frame[(frame.activation == "tanh") & (frame.hidden == hidden) & (frame.lr == lr)
                     & (frame.seed == seed)]  # fmt: skip
        theirs = read_metrics(alone.run_dir / "metrics.csv")
        pd.testing.assert_frame_equal(without_times(mine), without_times(theirs),
                                      check_exact=True)  # fmt: skip


def test_a_study_prints_one_line_per_configuration_not_per_epoch(mnist_dir, tmp_path):
    args = ["run", "-a", "relu,tanh", "--hidden", "8,12", "--batch-size", "16", "--epochs", "2",
            "--data-dir", str(mnist_dir), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Study: 2 configurations x 2 activations x 1 seed = 4 models" in result.output
    assert "epoch 1/2" not in result.output  # no per-epoch lines
    # without a terminal (no bars), a line as each group ends
    assert "done 1/2: hidden=" in result.output and "done 2/2: hidden=" in result.output
    assert "hidden=8" in result.output and "hidden=12" in result.output


def test_dry_run_counts_and_estimates_and_writes_nothing(mnist_dir, tmp_path):
    results = tmp_path / "r"
    args = ["run", "-a", "relu,tanh,sigmoid", "--lr", "0.001,0.01", "--hidden", "8,12,16",
            "--seeds", "2", "--epochs", "3", "--batch-size", "16", "--dry-run",
            "--data-dir", str(mnist_dir), "--results-dir", str(results)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "6 configurations x 3 activations x 2 seeds = 36 models, 108 model-epochs" in (
        result.output
    )
    assert "hidden=16 lr=0.01" in result.output
    assert "Estimated time here, while nothing else runs: about" in result.output
    for part in ("start-up", "training", "cost"):  # the estimate says what it includes
        assert f"\n  {part} " in result.output
    assert not results.exists()


def test_a_plan_adds_start_up_and_cost_to_the_training_it_estimates():
    """The arithmetic, with measurements given: each shape of model measured once; training
    is every model's epochs shared by the workers; start-up and cost are added."""
    from actbench.study import plan_study

    config = load_config(None, activations="relu,tanh,gelu", hidden="8,16", lr="1e-3,1e-2",
                         seeds=2, epochs=4)  # fmt: skip
    data = object()  # one data set for every configuration
    calls = []

    def measure(activations, point, points_data):  # seconds per model-epoch, by width
        calls.append((point.hidden, point.lr))
        assert points_data is data and len(activations) == 3
        return {8: 0.5, 16: 2.0}[point.hidden]

    plan = plan_study(config, ["relu", "tanh", "gelu"], [data] * 4, 5, startup=7.0, cost=1.5,
                      measure=measure)  # fmt: skip
    assert calls == [(8, 0.001), (16, 0.001)]  # a learning rate does not change the shape
    # (0.5 + 0.5 + 2 + 2) s x 3 activations x 2 seeds x 4 epochs over 5 workers
    assert plan.seconds == pytest.approx(24.0)
    assert (plan.models, plan.model_epochs, plan.workers) == (24, 96, 5)
    assert plan.total == pytest.approx(7.0 + 24.0 + 1.5)


def test_a_dry_run_counts_from_the_command_s_start_and_times_the_cost_measurement(
    mnist_dir, tmp_path, monkeypatch
):
    import actbench.experiment
    from actbench.experiment import dry_run

    measured = []
    monkeypatch.setattr(actbench.experiment, "measure_config_cost", measured.append)
    # the clock: data loaded and checked; cost measured; the 2 workers started; and ended
    readings = iter([105.0, 107.5, 108.0, 108.25])
    config = make_config({"activations": ["relu", "tanh"], "hidden": [8, 12], "epochs": 1,
                          "batch_size": 16, "workers": 2, "data_dir": str(mnist_dir),
                          "results_dir": str(tmp_path / "r")})  # fmt: skip
    plan = dry_run(config, started=100.0, clock=lambda: next(readings))
    assert (plan.startup, plan.cost) == (5.0, 2.5)
    assert measured == [config.points()[0]]  # the cost a run measures after training
    # two groups (one per width) for two workers: the run starts 2 processes, timed here
    assert (plan.processes, plan.process_start) == (2, 0.25)
    assert plan.total == pytest.approx(7.75 + plan.seconds)
    assert next(readings, None) is None
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("workers", "activations"), [(1, ["relu", "tanh"]), (2, ["relu"])])
def test_a_dry_run_starts_no_workers_where_the_run_would_start_none(
    mnist_dir, tmp_path, monkeypatch, workers, activations
):
    """One worker asked for, or one model (either way, a run trains in its own process)."""
    import actbench.experiment
    from actbench.experiment import dry_run

    monkeypatch.setattr(actbench.experiment, "measure_config_cost", lambda point: None)
    started = []
    monkeypatch.setattr(actbench.experiment, "time_worker_start",
                        lambda *args: started.append(args) or 1.0)  # fmt: skip
    config = make_config({"activations": activations, "hidden": 8, "epochs": 1,
                          "batch_size": 16, "workers": workers, "data_dir": str(mnist_dir),
                          "results_dir": str(tmp_path / "r")})  # fmt: skip
    plan = dry_run(config)
    assert (plan.processes, plan.process_start, started) == (0, 0.0, [])


def test_the_dry_run_prints_each_part_of_its_estimate():
    from actbench.cli import plan_lines
    from actbench.study import StudyPlan

    plan = StudyPlan(["hidden=8", "hidden=16"], 3, 2, 12, 48, 3, seconds=3665.0, startup=7.04,
                     cost=1.5)  # fmt: skip
    lines = plan_lines(plan)
    assert lines[:3] == ["   1. hidden=8", "   2. hidden=16",
                         "2 configurations x 3 activations x 2 seeds = 12 models, 48 model-epochs"]  # fmt: skip
    # 7.04 + 3665 + 1.5 = 3673.54 s
    assert lines[3] == "Estimated time here, while nothing else runs: about 1:01:14 with 3 workers:"
    assert lines[4:7] == [
        "  start-up    7.0 s  imports and loading the data, timed in this dry run",
        "  training  1:01:05  from a few timed batches of each shape of model",
        "  cost        1.5 s  measuring each activation's cost at the end, timed here",
    ]
    # what the total leaves out, said where it is given
    assert lines[7:] == [
        "Not counted: Python's start and exit, and writing the run's files to disk.",
        "Nothing was written.",
    ]
    assert max(cell_len(line) for line in lines) <= 80


def test_the_dry_run_adds_and_prints_the_workers_start():
    from actbench.cli import plan_lines
    from actbench.study import StudyPlan

    plan = StudyPlan([], 2, 1, 2, 2, 2, seconds=10.0, startup=2.0, cost=1.0, processes=2,
                     process_start=3.5)  # fmt: skip
    assert plan.total == pytest.approx(16.5)
    lines = plan_lines(plan)
    assert lines[1] == "Estimated time here, while nothing else runs: about 16.5 s with 2 workers:"
    assert lines[2:6] == [
        "  start-up   2.0 s  imports and loading the data, timed in this dry run",
        "  workers    3.5 s  starting the 2 worker processes, timed here",
        "  training  10.0 s  from a few timed batches of each shape of model",
        "  cost       1.0 s  measuring each activation's cost at the end, timed here",
    ]
    ray = plan_lines(plan, "ray")
    assert (
        ray[6] == "Not counted: Python's start and exit, writing the files, Ray starting its tasks."
    )
    assert max(cell_len(line) for line in [*lines, *ray]) <= 80


@dataclass
class Sample:
    train_x: torch.Tensor
    train_y: torch.Tensor


def test_a_model_epoch_of_few_steps_is_timed_from_the_start(monkeypatch):
    """Where the sample holds no more optimiser steps than one report (32), the steps are
    timed from the start of the epoch, not taken as free; what follows them (evaluation and
    the checkpoints) is added."""
    import actbench.study
    from actbench.study import measure_model_epoch

    reports = []

    def train(activations, data, config, seed, on_steps, on_epoch, on_checkpoint):
        on_steps(32)  # one report: every step of the sample
        reports.append(on_checkpoint)
        on_epoch([])

    monkeypatch.setattr(actbench.study, "train_lockstep", train)
    readings = iter([10.0, 13.2, 13.5])  # begun, after the 32 steps, epoch over
    data = Sample(torch.zeros(2048, 4), torch.zeros(2048))  # 32 batches of 64
    point = make_config({"batch_size": 64})
    seconds = measure_model_epoch(["relu", "tanh"], point, data, clock=lambda: next(readings))
    # (3.2 s / 32 steps x 32 steps per epoch + 0.3 s after them) over 2 models
    assert seconds == pytest.approx(1.75)
    assert reports and callable(reports[0])


def test_a_measured_epoch_serialises_each_model_s_checkpoint(mnist_dir, monkeypatch):
    """As a run saves every model after each epoch (without writing the files)."""
    import actbench.study
    from actbench.activations import resolve_all
    from actbench.data import load_mnist, prepare
    from actbench.study import measure_model_epoch

    saved = []
    real_save = torch.save
    monkeypatch.setattr(actbench.study.torch, "save",
                        lambda obj, f: saved.append(obj["activation"]) or real_save(obj, f))  # fmt: skip
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    point = make_config({"hidden": 8, "batch_size": 16, "threads": 1})
    assert measure_model_epoch(resolve_all(["relu", "tanh"]), point, data, steps=2) > 0
    assert sorted(saved) == ["relu", "tanh"]


def rows(count, seed=0):
    return [EpochResult("relu", seed, epoch, 0.5, 0.9, 0.4, 0.91, 1.0) for epoch in
            range(1, count + 1)]  # fmt: skip


def test_recording_an_epoch_appends_what_is_new_and_nothing_else(tmp_path):
    """The bytes written per epoch do not grow with the rows recorded before."""
    settings = [settings_of(make_config({}))]
    sizes = {}
    for before in (10, 5000):
        folder = tmp_path / str(before)
        folder.mkdir()
        writer = RunWriter(folder, ["relu"], {}, settings=settings)
        writer.add(rows(before))
        path = folder / "metrics.csv"
        inode, old = os.stat(path).st_ino, path.read_bytes()
        writer.add(rows(1, seed=1))
        new = path.read_bytes()
        assert os.stat(path).st_ino == inode and new.startswith(old)  # appended in place
        sizes[before] = len(new) - len(old)
    assert sizes[10] == sizes[5000] > 0


def test_a_last_line_cut_short_is_not_a_finished_epoch(tmp_path):
    writer = RunWriter(tmp_path, ["relu"], {}, settings=[settings_of(make_config({}))])
    writer.add(rows(3))
    path = tmp_path / "metrics.csv"
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[-1][:25])  # the machine stopped mid-line
    frame = read_metrics(path)
    assert frame["epoch"].tolist() == [1, 2, 3]


def test_runs_of_earlier_versions_get_their_settings_from_the_manifest(mnist_dir, tmp_path):
    from actbench.results import find_runs

    run = run_experiment(make_config({"activations": "relu", "hidden": 8, "epochs": 1,
                                      "batch_size": 16, "data_dir": str(mnist_dir),
                                      "results_dir": str(tmp_path / "r")}))  # fmt: skip
    path = run.run_dir / "metrics.csv"
    pd.read_csv(path).drop(columns=list(SETTINGS)).to_csv(path, index=False)
    (found,) = find_runs([run.run_dir])
    assert found.metrics["hidden"].tolist() == [8]
    assert found.metrics["optimizer"].tolist() == ["adam"]


def test_a_study_stopped_by_a_signal_resumes_to_the_csv_of_an_uninterrupted_one(
    mnist_dir, tmp_path
):
    import signal

    from test_interrupt import start_run, wait_for_epochs

    grid = ["--lr", "0.001,0.01", "--optimizer", "adam,sgd", "--momentum", "0.9",
            "--batch-size", "16", "--threads", "1"]  # fmt: skip
    proc = start_run(mnist_dir, tmp_path / "a", 2, extra=grid)
    run_dir = wait_for_epochs(tmp_path / "a", 12, proc).parent
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    stopped = pd.read_csv(run_dir / "metrics.csv")
    epochs = int(stopped["epoch"].max()) + 2
    result = runner.invoke(app, ["run", "--resume", str(run_dir), "--epochs", str(epochs)])
    assert result.exit_code == 0, result.output
    whole = run_experiment(load_config(None, activations="relu,tanh,sigmoid", hidden=8,
                                       lr="0.001,0.01", optimizer="adam,sgd", momentum=0.9,
                                       batch_size=16, epochs=epochs, data_dir=str(mnist_dir),
                                       results_dir=str(tmp_path / "b"), workers=1))  # fmt: skip
    resumed = pd.read_csv(run_dir / "metrics.csv").drop(columns=["epoch_seconds"])
    uninterrupted = pd.read_csv(whole.run_dir / "metrics.csv").drop(columns=["epoch_seconds"])
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
    assert len(resumed) == 4 * 3 * epochs
    # every epoch finished before the signal is kept as it was
    kept = stopped.drop(columns=["epoch_seconds"]).merge(resumed, how="left", indicator=True)
    assert (kept["_merge"] == "both").all()


def test_the_progress_display_says_which_configuration_trains_and_how_many_groups_finished():
    from rich.console import Console

    from actbench.display import RunProgress
    from actbench.progress import Group

    groups = [
        Group(i, 0, ("relu", "tanh"), 0, 2, 10, f"depth={d}") for i, d in enumerate((2, 8, 16))
    ]
    display = RunProgress(Console(width=80, file=open(os.devnull, "w")))  # noqa: SIM115
    display.start(groups)
    try:
        display.steps(groups[0], 20)  # all of the first group's batches
        display.steps(groups[1], 5)
        recorder = Console(width=80, record=True)
        recorder.print(display.progress.make_tasks_table(display.progress.tasks))
        text = recorder.export_text()
    finally:
        display.stop()
    assert "training (1/3 groups done)" in text
    assert "depth=8, seed 0: relu" in text
    assert "depth=2," not in text  # finished: its row made room
    assert "5/12 model-epochs" in text


def test_dry_run_does_not_apply_to_a_resume(mnist_dir, tmp_path):
    run = run_experiment(make_config({"activations": "relu", "hidden": 8, "epochs": 1,
                                      "batch_size": 16, "data_dir": str(mnist_dir),
                                      "results_dir": str(tmp_path / "r")}))  # fmt: skip
    before = (run.run_dir / "metrics.csv").read_bytes()
    result = runner.invoke(app, ["run", "--resume", str(run.run_dir), "--epochs", "2",
                                 "--dry-run"])  # fmt: skip
    assert result.exit_code == 2
    assert "--dry-run plans a new run and does not apply to --resume" in result.output
    assert (run.run_dir / "metrics.csv").read_bytes() == before


def test_a_report_of_init_auto_does_not_claim_the_same_initial_weights(mnist_dir, tmp_path):
    from actbench.report import make_report
    from actbench.results import find_runs
    from actbench.selection import select_models

    run = run_experiment(make_config({"activations": "relu,tanh,selu", "init": "auto",
                                      "hidden": 8, "epochs": 1, "seeds": 2, "batch_size": 16,
                                      "data_dir": str(mnist_dir),
                                      "results_dir": str(tmp_path / "r")}))  # fmt: skip
    report, _ = make_report(select_models(find_runs([run.run_dir])), tmp_path / "plots")
    text = report.read_text()
    assert "each starts from its own recommended scheme's weights" in text
    assert "start from the same initial weights" not in text


def test_a_study_on_a_subset_says_so_in_its_report_and_captions(mnist_dir, tmp_path):
    from conftest import TEST, TRAIN

    from actbench.results import find_runs
    from actbench.study_report import _setup, make_study_report, study_data

    run = run_experiment(make_config({"activations": "relu,tanh", "hidden": [8, 16],
                                      "epochs": 1, "subset": 100, "batch_size": 16,
                                      "data_dir": str(mnist_dir),
                                      "results_dir": str(tmp_path / "r")}))  # fmt: skip
    (folder,) = find_runs([run.run_dir])
    test = round(TEST * 100 / TRAIN)
    said = f"a subset: 100 training and {test} test samples"
    assert said in _setup(study_data(folder))  # every figure's caption
    report, _ = make_study_report(folder, tmp_path / "plots")
    assert said in report.read_text().splitlines()[2]  # the report's first line


def test_momentum_names_only_the_configurations_it_applies_to():
    from actbench.study import describe
    from actbench.study_table import by_configuration

    config = make_config({"activations": "relu", "optimizer": ["adam", "sgd"],
                          "momentum": 0.9, "lr": [0.1, 0.01]})  # fmt: skip
    expected = ["lr=0.1 optimizer=adam", "lr=0.1 optimizer=sgd momentum=0.9",
                "lr=0.01 optimizer=adam", "lr=0.01 optimizer=sgd momentum=0.9"]  # fmt: skip
    assert [describe(p, config.varying) for p in config.points()] == expected
    frame = pd.DataFrame([{"lr": p.lr, "optimizer": p.optimizer, "momentum": p.momentum}
                          for p in config.points()])  # fmt: skip
    assert [name for name, _ in by_configuration(frame, list(config.varying))] == expected


def _study_groups(flags, workers):
    """The groups of models a study of `flags` trains on `workers` processes, as a run plans
    them, each named by its configuration."""
    from actbench.jobs import Unit, plan_jobs
    from actbench.progress import plan_groups
    from actbench.study import describe

    config = load_config(None, **flags)
    points, acts = config.points(), config.activations
    units = [Unit(s, p * len(acts) + i, a, "", p) for s in config.seed_list
             for p in range(len(points)) for i, a in enumerate(acts)]  # fmt: skip
    jobs = plan_jobs(units, {}, set(), workers)
    settings = [describe(p, config.varying) for p in points]
    return plan_groups(jobs, config.epochs, [10] * len(points), settings), settings


def _bars(groups, width=80, terminal=False):
    """Every group's bar at once (each has taken a step), as the terminal shows them, what
    the display printed above them, and each bar's name on one line."""
    from io import StringIO

    from rich.console import Console

    from actbench.display import RunProgress

    shown = StringIO()
    display = RunProgress(Console(width=width, file=shown, force_terminal=terminal))
    display.start(groups)
    try:
        for group in groups:
            display.steps(group, 1)
        recorder = Console(width=width, record=True, file=StringIO())
        recorder.print(display.progress.make_tasks_table(display.progress.tasks))
        names = [" ".join(task.description.split()) for task in display.progress.tasks]
        return recorder.export_text(), shown.getvalue(), names
    finally:
        display.stop()


# studies whose bars' full names are too wide for 80 columns (the first is the one a user met)
WIDE_STUDIES = [
    ({"activations": "relu,tanh", "depth": "1,2", "lr": "1e-3,1e-2", "hidden": "32,64"}, 2),
    ({"activations": "relu,tanh", "depth": "1,2", "lr": "1e-3,1e-2", "hidden": "32,64",
      "seeds": 3}, 1),
    ({"activations": "relu,sigmoid,tanh,leaky,gelu", "dataset": "mnist,fashion-mnist",
      "depth": "2,16", "optimizer": "adam,sgd", "momentum": 0.9, "batch_size": "32,128",
      "init": "torch,auto", "seeds": 12}, 2),
    ({"activations": "relu,tanh,my_package.activations:SwishWithALongName",
      "lr": "1e-3,3e-3", "hidden": "64,128", "depth": "2,8"}, 4),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "workers"), WIDE_STUDIES)
def test_a_study_s_bars_fit_80_columns_and_say_which_configuration(flags, workers):
    from actbench.display import short_setting

    groups, _ = _study_groups(flags, workers)
    text, _, names = _bars(groups)
    assert max(cell_len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text  # nothing cut off
    flat = " | ".join(names) + " |"  # a name too long for one line goes on over the next
    everything = len(load_config(None, **flags).activations)
    for group in groups:  # its configuration, seed and activations, each value whole
        for form in (group.setting, short_setting(group.setting)):
            name = f"{form}, seed {group.seed}"
            models = [f"{name}: {', '.join(group.labels)}"]
            if len(group.labels) < everything:
                models.append(f"{name}: {len(group.labels)} of {everything} activations")
            else:
                models.append(f"{name} ")
            if any(model in flat for model in models):
                break
        else:
            raise AssertionError(f"{group} not named in\n{text}")


def test_short_setting_names_keep_every_value():
    from actbench.display import short_setting

    assert short_setting("depth=8 hidden=32 lr=0.01") == "d=8 h=32 lr=0.01"
    assert short_setting("dataset=fashion-mnist optimizer=sgd momentum=0.9 batch_size=128 "
                         "init=auto") == "fashion-mnist sgd m=0.9 b=128 init=auto"  # fmt: skip


def test_short_names_are_spelled_out_above_the_bars():
    groups, _ = _study_groups(dict(WIDE_STUDIES[0][0]), 2)
    text, shown, _ = _bars(groups, terminal=True)
    assert "d=1 h=32 lr=0.001, seed 0" in text
    assert "In the bars: d = depth, h = hidden units" in shown


def test_bars_keep_full_names_and_every_activation_where_they_fit():
    groups, _ = _study_groups({"activations": "relu,tanh", "depth": "2,8,16"}, 1)
    text, shown, _ = _bars(groups, terminal=True)
    assert "depth=8, seed 0: relu, tanh" in text
    assert "In the bars" not in shown


def test_a_name_too_long_for_any_form_goes_on_over_lines_whole():
    from actbench.display import group_names
    from actbench.progress import Group

    groups = [Group(0, 3, ("relu",), 0, 2, 10, "dataset=fashion-mnist depth=16 lr=0.003"),
              Group(1, 3, ("tanh", "gelu"), 0, 2, 10, "dataset=fashion-mnist depth=16 lr=0.003")]  # fmt: skip
    names, short = group_names(groups, 24)
    assert names[groups[0]].split("\n") == ["  fashion-mnist d=16", "    lr=0.003, seed 3:",
                                             "    1 of 3 activations"]  # fmt: skip
    assert short == ["d"]
    assert all(cell_len(line) <= 24 for name in names.values() for line in name.split("\n"))
