"""The command line, driven in-process: the happy path and every error path a user can hit."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
from importlib.metadata import version

import pandas as pd
import pytest
import torch
from runfolders import write_run
from typer.testing import CliRunner

import actbench.results
from actbench import __version__
from actbench.cli import app
from actbench.results import COLUMNS

runner = CliRunner()
FAST = ["--epochs", "2", "--hidden", "16", "--batch-size", "32"]


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], prog_name="actbench", **kwargs)


def test_run_then_plot(mnist_dir, tmp_path):
    results = tmp_path / "results"
    result = invoke(
        "run",
        "-a",
        "relu,Tanh,leaky:0.1",
        *FAST,
        "--data-dir",
        mnist_dir,
        "--results-dir",
        results,
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = results.iterdir()
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert frame["activation"].tolist() == ["relu", "tanh", "leaky:0.1"] * 2
    assert frame["epoch"].tolist() == [1, 1, 1, 2, 2, 2]
    assert frame["test_accuracy"].between(0, 1).all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["config"]["epochs"] == 2
    assert manifest["versions"]["torch"] == version("torch")
    assert manifest["started"] and manifest["finished"]
    assert "leaky:0.1" in result.stdout
    # no validation split: no best epoch is chosen, and none on the test set
    words = " ".join(result.stdout.split())  # the caption wraps at the table's width
    assert "best (ep)" not in words and "no best epoch is chosen" in words
    assert "f(x) µs" in result.stdout  # the cost table, from the run's own measurement
    cost = pd.read_csv(run_dir / "cost.csv")
    assert cost["activation"].unique().tolist() == ["leaky:0.1", "relu", "tanh"]
    # one line per epoch, with every activation in the order given, even from several workers
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("epoch 2/2")]
    assert line.index("relu") < line.index("tanh") < line.index("leaky:0.1")

    plotted = invoke("plot", results)
    assert plotted.exit_code == 0, plotted.output
    assert f"to {results / 'plots'}" in plotted.stdout.replace("\n", "")
    assert sorted(p.name for p in (results / "plots").iterdir()) == [
        ".actbench-plot.json",  # what this plot wrote, for the next one (`actbench.outputs`)
        "activation_cost.png",
        "activations.png",
        "dead_units.png",
        "differences.png",
        "gradient_flow.png",
        "report.md",
        "saturated_units.png",  # tanh is bounded
        "test_accuracy.png",
        "test_loss.png",
        "train_loss.png",
    ]


def test_a_subset_says_how_many_samples_it_trains_and_tests_on(mnist_dir, tmp_path):
    from conftest import TEST, TRAIN

    result = invoke("run", "-a", "relu", *FAST, "--subset", 100, "--val", 20, "--data-dir",
                    mnist_dir, "--results-dir", tmp_path / "results", terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    test = round(TEST * 100 / TRAIN)  # the same share of the test set
    line = f"--subset 100: mnist 80 training, 20 validation and {test} test samples"
    assert line in result.output
    (run_dir,) = (tmp_path / "results").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["data"]["test_samples"] == test


def test_config_file_and_environment_data_dir(mnist_dir, tmp_path, monkeypatch):
    preset = tmp_path / "p.toml"
    preset.write_text('activations = ["sigmoid"]\nepochs = 1\nhidden = 8\n')
    monkeypatch.setenv("ACTBENCH_DATA_DIR", str(mnist_dir))
    result = invoke("run", "--config", preset, "--results-dir", tmp_path / "r", "--epochs", "2")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(next((tmp_path / "r").iterdir()) / "metrics.csv")
    assert frame["activation"].unique().tolist() == ["sigmoid"]
    assert frame["epoch"].max() == 2  # the flag beat the preset


def test_two_runs_get_two_folders(mnist_dir, tmp_path):
    for _ in range(2):
        result = invoke(
            "run",
            "-a",
            "relu",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--data-dir",
            mnist_dir,
            "--results-dir",
            tmp_path / "r",
        )
        assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "r").iterdir())) == 2


def _bad_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("epochs = = 1\n")
    return path


def _unknown_key(tmp_path):
    path = tmp_path / "unknown.toml"
    path.write_text("epoch = 1\n")
    return path


def _corrupt_data(tmp_path, mnist_dir):
    (mnist_dir / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    return mnist_dir


def _csv_run(tmp_path, name, columns):
    folder = tmp_path / name
    folder.mkdir()
    values = {"activation": "relu", "status": "ok"}
    row = [str(values.get(c, 1)) for c in columns]
    (folder / "metrics.csv").write_text(",".join(columns) + "\n" + ",".join(row) + "\n")
    return folder


# (arguments, exit code, a piece of the one-line message)
ERRORS = [
    (["run", "-a", "rleu"], 2, "unknown activation 'rleu' (did you mean 'relu'?)"),
    (["run", "-a", "relu,,tanh"], 2, "empty activation name"),
    (["run", "-a", "relu,RELU"], 2, "listed twice"),
    (["run", "-a", "nosuchpkg:Act"], 2, "cannot import 'nosuchpkg'"),
    (["run", "-a", "math:pi"], 2, "is not an activation"),
    (["run", "--epochs", "0"], 2, "Error: --epochs must be a positive integer, got 0"),
    (["run", "--epochs", "ten"], 2, "Invalid value for '--epochs'"),
    (["run", "--batch-size", "-4"], 2, "Error: --batch-size must be a positive integer"),
    (["run", "--lr", "nan"], 2, "Error: --lr must be a positive finite number"),
    (["run", "--lr", "0"], 2, "Error: --lr must be a positive finite number"),
    (["run", "--hidden", "0"], 2, "Error: --hidden must be a positive integer"),
    (["run", "--subset", "0"], 2, "Error: --subset must be a positive integer"),
    (
        ["run", "--subset", "10", "--batch-size", "16"],
        2,
        "--subset 10 is smaller than one batch (--batch-size 16); use --batch-size 10 or less",
    ),
    (["run", "--subset", "100000"], 2, "subset 100000 is larger than the 256 training samples"),
    (["run", "--seed", "-1"], 2, "Error: --seed must be a non-negative integer"),
    (["run", "--optimizer", "rmsprop"], 2, "Error: --optimizer must be one of adam, sgd"),
    (["run", "--device", "tpu"], 2, "Error: --device must be one of auto, cpu, cuda, mps"),
    (["run", "--epoch", "3"], 2, "No such option: --epoch"),
    (["run", "--config", "{bad_toml}"], 2, "is not valid TOML"),
    (["run", "--config", "{unknown_key}"], 2, "unknown config key 'epoch'"),
    (["run", "--config", "{missing}"], 2, "does not exist"),
    (["run", "--data-dir", "{empty}", "--no-download"], 1, "MNIST is not in"),
    (["run", "--data-dir", "{corrupt}"], 1, "train-images-idx3-ubyte.gz is corrupt"),
    (["run", "--results-dir", "{a_file}"], 2, "is a file; choose a folder"),
    (["run", "--data-dir", "{a_file}"], 2, "is a file; point --data-dir at a folder"),
    (["run", "--results-dir", "{a_file}/sub"], 1, "cannot create results folder"),
    (["run", "--resume", "{missing}"], 2, "is not a folder; give a run folder to --resume"),
    (["run", "--resume", "{empty}"], 2, "is not an actbench run folder (it has no manifest.json"),
    (["plot", "{empty}"], 2, "no finished epochs under"),
    (["plot", "{few_columns}"], 2, "is not an actbench run folder (it has no manifest.json"),
    (["plot", "{more_columns}"], 2, "metrics.csv has unexpected columns ['extra']); give"),
    (["plot", "{good_run}", "--out", "{a_file}/plots"], 1, "cannot create plot folder"),
    (["plot", "{a_file}"], 2, "is a file"),
    (["plot", "{missing}"], 2, "does not exist"),
]
if not torch.cuda.is_available():
    ERRORS.append((["run", "--device", "cuda"], 2, "device cuda is not available"))


@pytest.mark.parametrize(("args", "code", "message"), ERRORS, ids=lambda v: str(v)[:40])
def test_every_mistake_is_one_line(mnist_dir, tmp_path, args, code, message):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty").mkdir()
    places = {
        "bad_toml": _bad_toml(tmp_path),
        "unknown_key": _unknown_key(tmp_path),
        "missing": tmp_path / "missing.toml",
        "empty": tmp_path / "empty",
        "a_file": tmp_path / "a_file",
        "corrupt": None,
        "few_columns": _csv_run(tmp_path, "few", ["activation", "seed", "epoch"]),
        "more_columns": _csv_run(tmp_path, "more", [*COLUMNS, "extra"]),
        "good_run": _csv_run(tmp_path, "good", COLUMNS),
    }
    filled = []
    for arg in args:
        if arg == "{corrupt}":
            arg = str(_corrupt_data(tmp_path, mnist_dir))
        filled.append(arg.format(**{k: v for k, v in places.items() if v is not None}))
    if "run" in filled and "--data-dir" not in filled:
        filled += ["--data-dir", str(mnist_dir)]
    if "run" in filled and "--results-dir" not in filled:
        filled += ["--results-dir", str(tmp_path / "results")]
    result = invoke(*filled)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_debug_shows_the_traceback(tmp_path):
    result = invoke("--debug", "run", "--data-dir", tmp_path / "none", "--no-download")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr


@pytest.mark.parametrize("command", ["run", "plot", "activations"])
def test_every_command_has_help(command):
    result = invoke(command, "-h")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert result.stdout.count("--") >= 1


def test_activations_lists_every_builtin():
    result = runner.invoke(app, ["activations"], terminal_width=200)
    assert result.exit_code == 0
    for name in (
        "relu",
        "leaky",
        "sigmoid",
        "tanh",
        "softmax",
        "elu",
        "gelu",
        "silu",
        "mish",
        "selu",
        "softplus",
        "prelu",
        "identity",
    ):
        assert name in result.stdout
    assert "max(0, x)" in result.stdout


def test_version_and_module_entry_point():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "actbench", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_a_diverging_activation_stops_alone(mnist_dir, tmp_path):
    # plain SGD at a huge learning rate: the linear control blows up, the others stay finite
    result = invoke(
        "run", "-a", "relu,identity,tanh", "--optimizer", "sgd", "--lr", "100", "--epochs", "3",
        "--hidden", "8", "--data-dir", mnist_dir, "--results-dir", tmp_path / "r",
        terminal_width=200,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "r").iterdir()
    frame = pd.read_csv(run_dir / "metrics.csv")
    identity = frame[frame["activation"] == "identity"]
    assert identity["epoch"].tolist() == [1]  # stopped at the epoch it diverged
    assert identity["status"].tolist() == ["diverged"]
    assert (
        not pd.Series(identity[["train_loss", "test_loss"]].values.ravel())
        .map(lambda v: abs(v) < float("inf"))
        .all()
    )
    for name in ("relu", "tanh"):
        rows = frame[frame["activation"] == name]
        assert rows["epoch"].tolist() == [1, 2, 3] and (rows["status"] == "ok").all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["diverged"] == [{"activation": "identity", "seed": 0, "epoch": 1}]
    assert "diverged ep 1" in result.stdout
    assert invoke("plot", run_dir).exit_code == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="file permissions do not bind the root user")
def test_unwritable_results_folder(mnist_dir, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = invoke("run", "--data-dir", mnist_dir, "--results-dir", locked)
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 1
    assert "cannot write in results folder" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_disk_mid_run_is_one_line_and_keeps_what_was_written(
    mnist_dir, tmp_path, monkeypatch, workers
):
    """The disk fills up when the second epoch's checkpoints are saved."""
    real = actbench.results.atomic_write
    # Each worker process reaches its first save of a second epoch at its own pace. The disk
    # fills up once every worker is there, so whichever worker is faster, every model has
    # finished its first epoch and none its second. (The timeout only guards against a hang:
    # a broken barrier fails the run with another error.)
    everyone_there = multiprocessing.get_context("fork").Barrier(int(workers))

    def fill_up(path, content):
        if path.parent.name == "checkpoints" and path.with_suffix(".prev.pt").exists():
            everyone_there.wait(timeout=300)
            raise OSError(28, "No space left on device")
        real(path, content)

    monkeypatch.setattr("actbench.results.atomic_write", fill_up)
    result = invoke(
        "run", "-a", "relu,tanh,sigmoid", "--epochs", "3", "--hidden", "8", "--workers", workers,
        "--data-dir", mnist_dir, "--results-dir", tmp_path / "r",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("Error: cannot write") and "No space left on device" in lines[-1]
    (run_dir,) = (tmp_path / "r").iterdir()
    assert f"actbench run --resume {run_dir}" in lines[-1] and "Traceback" not in result.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    frame = pd.read_csv(run_dir / "metrics.csv")
    # every model's first epoch is kept, and no model's second
    assert sorted(zip(frame["activation"], frame["epoch"], strict=True)) == [
        ("relu", 1),
        ("sigmoid", 1),
        ("tanh", 1),
    ]


def test_an_unexpected_fault_is_one_line(mnist_dir, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("actbench.experiment.run_jobs", broken)
    args = ["run", "-a", "relu", "--epochs", "1", "--workers", "1", "--data-dir", mnist_dir,
            "--results-dir", tmp_path / "r"]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: unexpected ZeroDivisionError: division by zero; "
        "rerun with --debug for the traceback and report it"
    )
    assert "Traceback" not in result.output
    assert "Traceback" in invoke("--debug", *args).stderr


def test_seeds_give_intervals_and_a_paired_comparison(mnist_dir, tmp_path):
    result = invoke(
        "run", "-a", "relu,tanh", "--seeds", "3", "--baseline", "tanh", *FAST,
        "--data-dir", mnist_dir, "--results-dir", tmp_path / "r", terminal_width=200,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "r").iterdir()
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert len(frame) == 2 * 3 * 2  # activations x seeds x epochs
    assert sorted(frame["seed"].unique()) == [0, 1, 2]
    assert "mean ± 95% interval over 3 seeds" in result.stdout
    assert "minus tanh's in points, paired by seed (3 seeds)" in result.stdout
    assert "seed 2 epoch 2/2" in result.stderr
    # each seed is its own model: seed 1 of relu is what a run with --seed 1 alone gives
    alone = invoke(
        "run", "-a", "relu", "--seed", "1", *FAST, "--data-dir", mnist_dir,
        "--results-dir", tmp_path / "alone",
    )  # fmt: skip
    assert alone.exit_code == 0, alone.output
    single = pd.read_csv(next((tmp_path / "alone").iterdir()) / "metrics.csv")
    mine = frame[(frame["activation"] == "relu") & (frame["seed"] == 1)]
    assert mine["test_loss"].tolist() == pytest.approx(single["test_loss"].tolist(), rel=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "0,x"], "Error: --seed must be an integer or a comma-separated list"),
        (["--seed", "1,1"], "Error: --seed lists a seed twice"),
        (["--seed", "0,1", "--seeds", "3"], "give either a list of seeds"),
        (["--seeds", "0"], "Error: --seeds must be a positive integer"),
        (["--baseline", "gelu"], "Error: --baseline 'gelu' is not one of the activations"),
    ],
)
def test_seed_and_baseline_mistakes(mnist_dir, tmp_path, args, message):
    result = invoke("run", "-a", "relu,tanh", *args, "--data-dir", mnist_dir,
                    "--results-dir", tmp_path / "r")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_run_writes_nothing_outside_its_folder(mnist_dir, tmp_path):
    def snapshot(root):
        return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = invoke("run", "-a", "relu", "--epochs", "1", "--hidden", "8", "--data-dir",
                    mnist_dir, "--results-dir", tmp_path / "results")  # fmt: skip
    assert result.exit_code == 0, result.output
    after = snapshot(tmp_path)
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    outside = {p: v for p, v in after.items() if run_dir not in p.parents}
    assert outside == before


def test_help_and_usage_errors_answer_without_loading_torch():
    """torch, pandas and matplotlib take seconds to import: a typo must not wait for them."""
    code = (
        "import sys\n"
        "from actbench.cli import app\n"
        "for args in (['--help'], ['run', '--help'], ['run', '--epochs', 'x']):\n"
        "    print('exit', app(args, standalone_mode=False))\n"
        "print('loaded', sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    marked = [line for line in proc.stdout.splitlines() if line.startswith(("exit", "loaded"))]
    assert marked == ["exit 0", "exit 0", "exit 2", "loaded []"]
    assert "Invalid value for '--epochs'" in proc.stderr


def test_a_usage_error_is_one_line_on_stderr_in_a_fresh_process(mnist_dir, tmp_path):
    """Nothing torch logs on import (a CUDA_HOME warning on a CPU machine) joins the line."""
    command = [sys.executable, "-m", "actbench", "run", "-a", "rleu", "--data-dir",
               str(mnist_dir), "--results-dir", str(tmp_path / "results")]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: unknown activation 'rleu' (did you mean 'relu'?)")
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["plot"], "Error: Missing argument 'PATH'; see 'actbench plot --help'"),
        (["frobnicate"], "Error: No such command 'frobnicate'; see 'actbench --help'"),
    ],
)
def test_a_click_usage_error_reads_as_one_sentence(args, line):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.strip() == line


@pytest.mark.parametrize("command", [[], ["run"], ["plot"], ["activations"]])
def test_help_reads_whole_at_80_columns(command, monkeypatch):
    """Every help text whole: nothing cut short with an ellipsis, no line wider than 80."""
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(*command, "--help", terminal_width=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert "…" not in result.stdout
    words = " ".join(result.stdout.split())
    if command == ["run"]:
        assert (
            "Comma-separated names, e.g. relu,tanh,leaky:0.1, or your own as "
            "package.module:attribute, with a short label as label=package.module:attribute "
            "(sin=torch:sin). See `actbench activations`." in words
        )
    if not command:  # each command's summary whole
        for name in ("run", "plot", "activations"):
            summary = next(c.short_help for c in app.registered_commands if _name(c) == name)
            assert f"{name} {summary}" in words


def test_no_command_prints_the_help_as_help_does():
    """`actbench` alone: the whole help, line for line as --help prints it, on stderr with
    click's exit code for a missing command (2), not an error squashed onto one line."""
    helped = invoke("--help", terminal_width=80)
    result = invoke(terminal_width=80)
    assert result.exit_code == 2
    assert result.stderr == helped.stdout
    assert result.stderr.startswith("Usage: actbench [OPTIONS] COMMAND [ARGS]...\n")
    assert "\nCommands:\n" in result.stderr and "Error" not in result.stderr


def test_help_shows_the_ray_extra_as_pip_takes_it():
    result = invoke("run", "--help", terminal_width=80)
    words = " ".join(result.stdout.split())
    assert "(pip install 'actbench[ray]')" in words
    assert "\\[" not in result.stdout


def test_a_message_names_a_flag_as_typed_and_a_preset_s_key_as_written(mnist_dir, tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("batch_size = 128\n")
    result = invoke("run", "--config", preset, "--subset", "50", "--data-dir", mnist_dir,
                    "--results-dir", tmp_path / "r")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"Error: --subset 50 is smaller than one batch ({preset}'s batch_size 128); use "
        "--batch-size 50 or less"
    )
    preset.write_text("subset = 50\nbatch_size = 128\n")  # the preset alone is refused
    result = invoke("run", "--config", preset, "--epochs", "1", "--data-dir", mnist_dir)
    assert (
        f"Error: {preset}'s subset 50 is smaller than one batch ({preset}'s batch_size 128)"
        in result.stderr
    )


def test_download_help_speaks_of_every_data_set():
    words = " ".join(invoke("run", "--help", terminal_width=80).stdout.split())
    assert (
        "--download / --no-download Download the data set's files where they are missing" in words
    )
    assert "MNIST if missing" not in words


def _name(command):
    return command.name or command.callback.__name__


def _foreign(folder):
    """A folder another program wrote a metrics.csv into."""
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,loss,accuracy\n1,0.5,0.9\n")
    return folder


def test_plot_says_a_folder_actbench_did_not_make_is_not_a_run(tmp_path):
    """As `run --resume` says of it, and as a usage error: the path given leads to it."""
    folder = _foreign(tmp_path / "theirs")
    result = invoke("plot", folder)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"Error: {folder} is not an actbench run folder (it has no manifest.json with its "
        "settings, and its metrics.csv has missing columns ['activation', 'seed', 'epoch', "
        "'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'epoch_seconds', "
        "'status', 'grad_layer1', 'grad_layer2', 'grad_layer3', 'dead_layer1', 'dead_layer2', "
        "'saturated_layer1', 'saturated_layer2']); give folders made by actbench run"
    ]
    resumed = invoke("run", "--resume", folder)
    assert resumed.exit_code == 2
    assert resumed.stderr.startswith(f"Error: {folder} is not an actbench run folder (it has no")
    # under a folder of runs: which folder, and how to plot the others
    write_run(tmp_path / "results" / "run-1")
    inside = _foreign(tmp_path / "results" / "theirs")
    result = invoke("plot", tmp_path / "results")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {inside} is not an actbench run folder")
    assert line.endswith(
        f"give folders made by actbench run, or move {inside} out of {tmp_path / 'results'}"
    )
    assert "remove" not in line


def test_plot_of_a_run_with_a_damaged_csv_is_a_runtime_error(tmp_path):
    """A run actbench made (it has its manifest) whose metrics.csv was damaged afterwards."""
    run = write_run(tmp_path / "results" / "run-1")
    frame = pd.read_csv(run / "metrics.csv")
    frame.assign(extra=1).to_csv(run / "metrics.csv", index=False)
    result = invoke("plot", tmp_path / "results")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"Error: {run / 'metrics.csv'} has unexpected columns ['extra']; this actbench version "
        "did not write it: use the version that did, or restore it from a copy, or move "
        f"{run} out of {tmp_path / 'results'}"
    ]


def test_a_dry_run_counts_the_workers_start_and_says_what_it_leaves_out(
    mnist_dir, tmp_path, monkeypatch
):
    import actbench.experiment

    started = []

    def time_worker_start(data, processes, threads, clock):  # the run's 2 workers: 12.5 s
        started.append((processes, threads))
        return 12.5

    monkeypatch.setattr(actbench.experiment, "time_worker_start", time_worker_start)
    results = tmp_path / "r"
    common = ["run", "-a", "relu,tanh", "--hidden", "8", "--batch-size", "16", "--epochs", "1",
              "--dry-run", "--data-dir", mnist_dir, "--results-dir", results]  # fmt: skip
    result = invoke(*common, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert started == [(2, 1)]
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"  workers +12\.5 s  starting the 2 worker processes, timed here",
                        lines[3])  # fmt: skip
    assert lines[6:] == [
        "Not counted: Python's start and exit, and writing the run's files to disk.",
        "Nothing was written.",
    ]
    result = invoke(*common, "--workers", "1")  # a run of one process starts none
    assert result.exit_code == 0, result.output
    assert started == [(2, 1)] and "workers " not in result.stdout
    assert not results.exists()
