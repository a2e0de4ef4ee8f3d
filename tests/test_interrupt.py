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

from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.jobs import Job, Unit
from actbench.parallel import train_in_workers
from actbench.results import COLUMNS


def start_run(mnist_dir, results, workers, epochs=100000, extra=()):
    command = [sys.executable, "-m", "actbench", "run", "-a", "relu,tanh,sigmoid",
               "--epochs", str(epochs), "--hidden", "8", "--data-dir", str(mnist_dir),
               "--results-dir", str(results), "--workers", str(workers), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C reaches the run as it reaches one typed in a terminal, even where the suite itself
    # was started with SIGINT ignored (a background job of a script): a child inherits that
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=_default_sigint)  # fmt: skip


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
