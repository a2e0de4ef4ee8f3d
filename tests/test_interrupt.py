"""Fault injection: a real run in a subprocess, stopped by a signal, keeps every finished epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from actbench.results import COLUMNS


def start_run(mnist_dir, results, workers, epochs=100000, extra=()):
    command = [sys.executable, "-m", "actbench", "run", "-a", "relu,tanh,sigmoid",
               "--epochs", str(epochs), "--hidden", "8", "--data-dir", str(mnist_dir),
               "--results-dir", str(results), "--workers", str(workers), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def wait_for_epochs(results, count, proc, timeout=60):
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
    _, stderr = proc.communicate(timeout=30)
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


def test_a_second_ctrl_c_still_exits_promptly(mnist_dir, tmp_path):
    results = tmp_path / "results"
    proc = start_run(mnist_dir, results, workers=2)
    metrics = wait_for_epochs(results, 3, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10  # no waiting out the workers' patience
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    manifest = json.loads((metrics.parent / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    frame = pd.read_csv(metrics)
    assert len(frame) >= 3 and list(frame.columns) == COLUMNS
