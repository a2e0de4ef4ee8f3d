"""Fault injection: a real run in a subprocess, stopped by a signal, keeps every finished epoch.

The runs here have far more epochs than they ever train, so a signal always finds them
training, however fast or slow the machine; time limits only guard against a hang.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import torch

from actbench import signals
from actbench.checkpoint import CheckpointStore
from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.jobs import Job, Unit, run_job
from actbench.parallel import train_in_workers
from actbench.results import COLUMNS, RunWriter, read_metrics
from actbench.signals import signals_held
from actbench.train import EpochResult


def start_run(mnist_dir, results, workers, epochs=100000, extra=(), sigint=signal.SIG_DFL):
    command = [sys.executable, "-m", "actbench", "run", "-a", "relu,tanh,sigmoid",
               "--epochs", str(epochs), "--hidden", "8", "--data-dir", str(mnist_dir),
               "--results-dir", str(results), "--workers", str(workers), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C reaches the run as it reaches one typed in a terminal, even where the suite itself
    # was started with SIGINT ignored (a background job of a script): a child inherits that.
    # sigint=SIG_IGN starts it as a script's background job instead.
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))  # fmt: skip


def wait_for_epochs(results, count, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in results.glob("*/metrics.csv"):
            if len(pd.read_csv(path)) >= count:
                return path
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the run wrote no epochs in time")


@pytest.mark.parametrize(
    ("signum", "workers"),
    [(signal.SIGINT, 1), (signal.SIGINT, 2), (signal.SIGTERM, 2)],
)
def test_signal_stops_the_run_and_keeps_finished_epochs(mnist_dir, tmp_path, signum, workers):
    results = tmp_path / "results"
    proc = start_run(mnist_dir, results, workers)
    metrics = wait_for_epochs(results, 6, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert f"Interrupted; finished epochs are kept in {metrics.parent}" in stderr
    manifest = json.loads((metrics.parent / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["finished"]
    frame = pd.read_csv(metrics)
    assert list(frame.columns) == COLUMNS
    assert len(frame) >= 6
    assert frame[COLUMNS[: COLUMNS.index("status") + 1]].notna().all().all()
    # every activation's epochs are complete and consecutive from 1
    for _, group in frame.groupby("activation"):
        assert group["epoch"].tolist() == list(range(1, len(group) + 1))
    assert not list(metrics.parent.glob(".*.tmp"))  # no half-written file left behind


def test_a_second_interrupt_ends_the_wait_for_the_workers(mnist_dir, monkeypatch):
    """After a first Ctrl-C the parent waits for the workers to report what they finished; a
    second Ctrl-C ends that wait, and the worker with it, even while the worker never ends.

    Both interrupts are raised in the parent at fixed points (on receiving the worker's first
    and second report), and the parent's patience is unbounded, so only the second interrupt
    can end the wait: a worker left running would report once more after its pause.
    """

    def row(epoch):
        return EpochResult("relu", 0, epoch, 0.5, 0.8, 0.6, 0.75, 0.1)

    def stuck_worker(job, data, config, store, on_epoch, on_steps):
        on_epoch([row(1)])  # before the first interrupt
        on_epoch([row(2)])  # the parent takes it while it waits
        threading.Event().wait(60)  # then hangs, and never checks for the request to stop
        on_epoch([row(3)])

    monkeypatch.setattr("actbench.parallel.run_job", stuck_worker)
    monkeypatch.setattr("actbench.parallel.PATIENCE", math.inf)
    received = []

    def on_epoch(job, rows):
        received.extend(rows)
        signal.raise_signal(signal.SIGINT)  # a Ctrl-C, at the first report and at the second

    config = make_config({"epochs": 1, "hidden": 8})
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    jobs = [Job(0, 0, (Unit(0, 0, "relu"),))]
    with pytest.raises(KeyboardInterrupt):
        train_in_workers(jobs, [data], [config], None, 1, threads=1, on_epoch=on_epoch)
    assert [r.epoch for r in received] == [1, 2]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_a_background_job_that_ignores_sigint(mnist_dir, tmp_path, workers):
    """A script's background job starts with SIGINT ignored; SIGTERM right after its first
    epoch must still stop it as in the foreground: the message, the manifest, exit 143."""
    results = tmp_path / "results"
    proc = start_run(mnist_dir, results, workers, sigint=signal.SIG_IGN)
    metrics = wait_for_epochs(results, 1, proc)  # the first epoch row is there
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert f"Interrupted; finished epochs are kept in {metrics.parent}" in stderr
    assert json.loads((metrics.parent / "manifest.json").read_text())["status"] == "interrupted"


# Enough jobs that their numbers, queued for the workers all at once, would not fit in a pipe:
# each takes at least 9 bytes (a length and a pickled int), 90 kB in all, over Linux's 64 KiB.
MANY = 10000


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_run_of_many_jobs_stopped_in_its_first_epoch_ends(mnist_dir, tmp_path, signum):
    """A run of many more jobs than its workers will ever take, stopped as the first epoch
    is recorded, ends as any stopped run does: the line, the manifest, exit 128 + signal,
    every finished epoch with its checkpoint, and the process gone, with nothing left that
    holds it at exit (the job numbers not yet handed out once did: it never ended).

    The interrupt is raised in the parent at a fixed point, as it records the first epoch;
    the time limit only guards against a hang.
    """
    code = (
        "import signal, sys\n"
        "import actbench.cli as cli\n"
        "import actbench.experiment as experiment\n"
        "count, signum = int(sys.argv[1]), int(sys.argv[2])\n"
        "real = experiment.train_in_workers\n"
        "def train(jobs, data, configs, store, workers, threads, on_epoch, on_steps):\n"
        "    assert len(jobs) == count\n"
        "    def record(number, rows):\n"
        "        on_epoch(number, rows)\n"
        "        if not stopped:\n"
        "            stopped.append(number)\n"
        "            signal.raise_signal(signum)\n"
        "    stopped = []\n"
        "    real(jobs, data, configs, store, workers, threads, record, on_steps)\n"
        "experiment.train_in_workers = train\n"
        "sys.argv = ['actbench', *sys.argv[3:]]\n"
        "cli.main()\n"
    )
    results = tmp_path / "results"
    args = [str(MANY), str(int(signum)), "run", "-a", "relu,tanh", "--seeds", str(MANY),
            "--epochs", "1", "--subset", "100", "--hidden", "8", "--workers", "2",
            "--data-dir", str(mnist_dir), "--results-dir", str(results)]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"the stopped run never ended:\n{stderr}")
    assert proc.returncode == 128 + signum, stderr
    (run_dir,) = results.iterdir()
    assert stderr.splitlines()[-1] == (
        f"Interrupted; finished epochs are kept in {run_dir}; continue with: "
        f"actbench run --resume {run_dir}"
    )
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    kept = read_metrics(run_dir / "metrics.csv")
    assert len(kept) >= 2  # at least the epoch the interrupt came at, both of its models
    # every finished epoch is in the CSV, and every row's model has its checkpoint
    names = {path.name for path in (run_dir / "checkpoints").iterdir()}
    index = {"relu": 0, "tanh": 1}
    assert sorted(names) == sorted(
        f"{index[r.activation]:02d}-{r.activation}-seed{r.seed}.pt" for r in kept.itertuples()
    )


@pytest.fixture
def handlers():
    """Give this process its SIGINT and SIGTERM handlers back after the test."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_an_ignored_sigint_never_hides_a_sigterm_held_with_it(handlers):
    """Ctrl-C in the terminal reaches a script's background job too, which ignores it; a
    SIGTERM arriving in the same held moment must still be acted on."""
    received = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    with signals_held():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
        assert received == []  # held
    assert received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


LABELS = ("relu", "tanh", "sigmoid")


def _checkpointed_rows(run_dir):
    """Every model's rows as its latest checkpoint holds them: the epochs it finished."""
    store = CheckpointStore(run_dir)
    states = [store.load(index, label, 0) for index, label in enumerate(LABELS)]
    return [row.as_row() for state in states if state is not None for row in state.rows]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (signal.SIGINT, signal.SIGINT),
        (signal.SIGINT, signal.SIGTERM),
        (signal.SIGTERM, signal.SIGTERM),
    ],
)
def test_a_second_interrupt_loses_no_epoch_a_worker_finished(
    mnist_dir, tmp_path, monkeypatch, handlers, first, second
):
    """A first interrupt asks the workers to stop; a second comes while an epoch a worker
    finished (its checkpoint saved) has not reached the parent yet. That epoch is kept all
    the same: metrics.csv holds exactly the epochs the checkpoints hold, and one line says so.

    The workers train on until they are ended (they never look at the request to stop), and
    the parent receives both interrupts at fixed points: the first as it records the first
    epoch, the second as it records the next one, once some checkpoint is ahead of what it
    has recorded. Nothing depends on timing, only on waiting for that checkpoint.
    """
    from typer.testing import CliRunner

    from actbench.cli import app

    def trains_on(job, data, config, store, on_epoch, on_steps):  # in a worker
        run_job(job, data, config, store, on_epoch=on_epoch)  # no on_steps: it never stops

    recorded: dict[str, int] = {}  # each model's last epoch the parent recorded
    ahead: list[tuple[str, int]] = []  # a model's epoch saved but not recorded, at the second
    calls = []
    real_add = RunWriter.add

    def add(writer, rows, point=0):  # in the parent, as each epoch's rows arrive
        real_add(writer, rows, point)
        recorded.update({row.activation: row.epoch for row in rows})
        calls.append(rows)
        if len(calls) == 1:
            signal.raise_signal(first)
        elif len(calls) == 2:
            store = CheckpointStore(writer.run_dir)
            deadline = time.monotonic() + 300  # a guard against a hang, not a timing
            while not ahead:
                for index, label in enumerate(LABELS):
                    try:
                        state = store.load(index, label, 0)
                    except FileNotFoundError:  # being replaced by a worker's next save
                        continue
                    if state is not None and state.epoch > recorded.get(label, 0):
                        ahead.append((label, state.epoch))
                        break
                else:
                    assert time.monotonic() < deadline, "no worker finished another epoch"
                    time.sleep(0.01)
            signal.raise_signal(second)

    monkeypatch.setattr("actbench.parallel.run_job", trains_on)
    monkeypatch.setattr(RunWriter, "add", add)
    results = tmp_path / "results"
    args = ["run", "-a", ",".join(LABELS), "--epochs", "100000", "--hidden", "8",
            "--workers", "2", "--data-dir", str(mnist_dir), "--results-dir", str(results)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 128 + first, result.output
    (run_dir,) = results.iterdir()
    assert result.stderr.splitlines()[-1] == (
        f"Interrupted; finished epochs are kept in {run_dir}; continue with: "
        f"actbench run --resume {run_dir}"
    )
    assert "Traceback" not in result.output
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    kept = read_metrics(run_dir / "metrics.csv")
    saved = pd.DataFrame(_checkpointed_rows(run_dir))
    ((label, epoch),) = ahead
    # the epoch that was saved but not recorded when the second interrupt came is there
    assert ((kept["activation"] == label) & (kept["epoch"] == epoch)).any()
    key = ["activation", "epoch"]
    pd.testing.assert_frame_equal(
        kept[saved.columns].sort_values(key).reset_index(drop=True),
        saved.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )


@pytest.mark.parametrize("at", [0, 1, 2, 3])
def test_a_signal_while_handlers_are_swapped_leaves_them_as_they_were(handlers, monkeypatch, at):
    """`signal.signal` first runs the handler of a signal that has just arrived: here Ctrl-C's,
    raising KeyboardInterrupt at each of the four calls a hold makes (two in, two out)."""

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    real, calls = signal.signal, []

    def arriving(signum, handler):
        calls.append(signum)
        if len(calls) == at + 1:
            raise KeyboardInterrupt  # as the pending Ctrl-C's handler raises it, nothing set
        return real(signum, handler)

    monkeypatch.setattr(signals.signal, "signal", arriving)
    with pytest.raises(KeyboardInterrupt), signals_held():
        pass
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is on_term


def test_sigterm_while_starting_up_ends_the_run_as_an_interrupt(mnist_dir, tmp_path):
    """A SIGTERM before training begins (here while the settings are read) is an interrupt
    too: one line, exit 143, nothing written; not a process killed by the signal."""
    code = (
        "import signal, sys\n"
        "import actbench.cli as cli\n"
        "real = cli.load_config\n"
        "def load(*args, **kwargs):\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    return real(*args, **kwargs)\n"
        "cli.load_config = load\n"
        "sys.argv = ['actbench', *sys.argv[1:]]\n"
        "cli.main()\n"
    )
    results = tmp_path / "results"
    args = ["run", "-a", "relu", "--data-dir", str(mnist_dir), "--results-dir", str(results)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=False, preexec_fn=lambda: signal.signal(signal.SIGINT,
                          signal.SIG_IGN))  # fmt: skip
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert proc.stderr == "Interrupted\n"
    assert not results.exists()


def test_an_interrupt_while_measuring_the_cost_says_training_is_complete(
    mnist_dir, tmp_path, monkeypatch, handlers
):
    """Training is over and recorded complete; only the cost measurement was cut short, so
    the line does not offer a resume that has nothing to do."""
    from typer.testing import CliRunner

    from actbench.cli import app

    def interrupted(run_dir, config):
        raise KeyboardInterrupt

    monkeypatch.setattr("actbench.experiment.measure_run_cost", interrupted)
    results = tmp_path / "results"
    args = ["run", "-a", "relu", "--epochs", "1", "--hidden", "8", "--workers", "1",
            "--data-dir", str(mnist_dir), "--results-dir", str(results)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 128 + signal.SIGINT, result.output
    (run_dir,) = results.iterdir()
    assert result.stderr.splitlines()[-1] == (
        f"Interrupted after training: every epoch is kept in {run_dir}; only the activations' "
        "cost (cost.csv) was not measured"
    )
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"


def _run_in_process(mnist_dir, results, epochs=2):
    """`actbench run` in this process (CliRunner): three activations, one worker."""
    from typer.testing import CliRunner

    from actbench.cli import app

    args = ["run", "-a", ",".join(LABELS), "--epochs", str(epochs), "--hidden", "8",
            "--workers", "1", "--data-dir", str(mnist_dir), "--results-dir", str(results)]  # fmt: skip
    return CliRunner().invoke(app, args)


def _every_epoch(run_dir, epochs):
    frame = read_metrics(run_dir / "metrics.csv")
    return frame["epoch"].tolist() == [e for e in range(1, epochs + 1) for _ in LABELS]


def _after_training(run_dir):
    return (
        f"Interrupted after training: every epoch is kept in {run_dir}; only the activations' "
        "cost (cost.csv) was not measured"
    )


def _interrupt(how):
    if how == "KeyboardInterrupt":
        raise KeyboardInterrupt
    signal.raise_signal(how)  # to the run's own handler, at once, or once the write is over


@pytest.mark.parametrize(
    ("step", "how"),
    [
        ("finish", "KeyboardInterrupt"),  # the CSV, rewritten in the run's order
        ("finish", signal.SIGTERM),
        ("finish", signal.SIGINT),
        ("update", "KeyboardInterrupt"),  # the manifest's "completed"
        ("update", signal.SIGTERM),
    ],
)
def test_an_interrupt_while_the_final_files_are_written_leaves_the_run_completed(
    mnist_dir, tmp_path, monkeypatch, handlers, step, how
):
    """Every epoch is trained when the interrupt comes, as the run writes its final CSV or
    manifest: the run is recorded completed (never left "running"), then the interrupt acts:
    the cost is not measured, and the line says so without offering a resume."""
    real = getattr(RunWriter, step)
    interrupted = []

    def cut(writer, *args, **kwargs):
        final = writer.rows and (step == "finish" or kwargs.get("status") == "completed")
        if final and _every_epoch(writer.run_dir, 2) and not interrupted:
            interrupted.append(step)
            _interrupt(how)
        return real(writer, *args, **kwargs)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    monkeypatch.setattr(RunWriter, step, cut)
    results = tmp_path / "results"
    result = _run_in_process(mnist_dir, results)
    (run_dir,) = results.iterdir()
    assert interrupted == [step]
    code = 128 + (signal.SIGINT if how == "KeyboardInterrupt" else how)
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[-1] == _after_training(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["finished"]
    assert _every_epoch(run_dir, 2)
    assert not (run_dir / "cost.csv").exists()


def test_an_interrupt_between_the_last_epoch_and_the_wrap_up_leaves_the_run_completed(
    mnist_dir, tmp_path, monkeypatch, handlers
):
    """The interrupt comes after the last epoch is recorded, before anything else: nothing
    is left to train, so the run is completed, not interrupted with a resume that would
    refuse to run."""
    import actbench.experiment

    real = actbench.experiment.run_jobs

    def trains_then_stops(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr("actbench.experiment.run_jobs", trains_then_stops)
    results = tmp_path / "results"
    result = _run_in_process(mnist_dir, results)
    (run_dir,) = results.iterdir()
    assert result.exit_code == 128 + signal.SIGINT, result.output
    assert result.stderr.splitlines()[-1] == _after_training(run_dir)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    assert _every_epoch(run_dir, 2)


def test_an_interrupt_while_a_failure_is_recorded_keeps_the_failure(
    mnist_dir, tmp_path, monkeypatch, handlers
):
    """The run fails; an interrupt comes as the failure is written: the manifest says failed
    with the error, and the error is what the command reports."""
    real = RunWriter.finish
    calls = []

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    def cut(writer):
        calls.append(writer)
        if len(calls) == 2:  # the first is the run's start
            raise KeyboardInterrupt
        real(writer)

    monkeypatch.setattr("actbench.experiment.run_jobs", boom)
    monkeypatch.setattr(RunWriter, "finish", cut)
    results = tmp_path / "results"
    result = _run_in_process(mnist_dir, results)
    (run_dir,) = results.iterdir()
    assert result.exit_code == 1, result.output
    assert "Error: unexpected RuntimeError: boom" in result.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"] == "RuntimeError: boom"


def test_an_interrupt_while_the_results_are_printed_keeps_everything(
    mnist_dir, tmp_path, monkeypatch, handlers
):
    """After the run completed and its cost was measured, an interrupt as its tables print is
    one line, no traceback: every result is in the folder."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("actbench.tables.summary_table", interrupted)
    results = tmp_path / "results"
    result = _run_in_process(mnist_dir, results)
    (run_dir,) = results.iterdir()
    assert result.exit_code == 128 + signal.SIGINT, result.output
    assert result.stderr.splitlines()[-1] == (
        f"Interrupted after the run completed; every result is in {run_dir}"
    )
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    assert (run_dir / "cost.csv").exists()


def test_a_fault_before_training_is_recorded_as_a_failure(mnist_dir, tmp_path):
    """Whatever ends a run once its manifest says "running" is recorded: here a fault in the
    front end's start hook, before any epoch."""
    from actbench.experiment import Hooks, run_experiment

    def broken(*args):
        raise RuntimeError("no display")

    config = make_config({"activations": ["relu"], "epochs": 1, "hidden": 8, "workers": 1,
                          "data_dir": str(mnist_dir), "results_dir": str(tmp_path / "r")})  # fmt: skip
    with pytest.raises(RuntimeError, match="no display"):
        run_experiment(config, Hooks(on_start=broken))
    (run_dir,) = (tmp_path / "r").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"] == "RuntimeError: no display"


def test_an_interrupted_manifest_says_how_to_resume_from_anywhere(
    mnist_dir, tmp_path, monkeypatch, handlers
):
    """The manifest keeps the resume command (the terminal's line may be lost with a closed
    output) with the run folder's absolute path, whatever folder the run was started from."""

    def stops(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("actbench.experiment.run_jobs", stops)
    monkeypatch.chdir(tmp_path)
    result = _run_in_process(mnist_dir, "results")
    assert result.exit_code == 128 + signal.SIGINT, result.output
    (run_dir,) = (tmp_path / "results").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["resume"] == f"actbench run --resume {run_dir.resolve()}"
