"""Fault injection: a real run in a subprocess, stopped by a signal, keeps every finished epoch.

The runs here have far more epochs than they ever train, so a signal always finds them
training, however fast or slow the machine; time limits only guard against a hang.
"""

from __future__ import annotations

import json
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
from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.jobs import Job, Unit
from actbench.parallel import train_in_workers
from actbench.results import COLUMNS
from actbench.signals import signals_held


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
    second Ctrl-C ends that wait, rather than its patience, even while a worker never ends.

    Both interrupts are raised in the parent at fixed points (on receiving the worker's first
    and second report), so nothing here depends on timing.
    """

    def stuck_worker(job, data, config, store, on_epoch, on_steps):
        on_epoch(["epoch before the first interrupt"])
        on_epoch(["epoch the parent takes while it waits"])
        threading.Event().wait()  # then hangs, and never checks for the request to stop

    monkeypatch.setattr("actbench.parallel.run_job", stuck_worker)
    received = []

    def on_epoch(job, rows):
        received.extend(rows)
        signal.raise_signal(signal.SIGINT)  # a Ctrl-C, at the first report and at the second

    config = make_config({"epochs": 1, "hidden": 8})
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    jobs = [Job(0, 0, (Unit(0, 0, "relu"),))]
    with pytest.raises(KeyboardInterrupt) as second:
        train_in_workers(jobs, [data], [config], None, 1, threads=1, on_epoch=on_epoch)
    # the interrupt that ended the run came while the first was being handled: the wait ended
    # on it, not after the parent's patience ran out (which re-raises the first one alone)
    assert isinstance(second.value.__context__, KeyboardInterrupt)
    assert received == ["epoch before the first interrupt", "epoch the parent takes while it waits"]


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
