"""A reader that closes the pipe (`actbench run | head -3`) ends a command as an interrupt.

Every pipe here has its reading end closed at a fixed point (before the command starts, or
after a fixed number of lines), so the outcome never depends on timing: once the reader is
gone every write fails, and a run asks at each epoch whether its reader is still there. A
run meant to be cut short has far more epochs than it can train before that happens: the
pipe's buffer holds at most a few thousand lines, so it cannot finish first. Time limits
only guard against a hang.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from runfolders import write_run

from actbench.errors import OutputClosed
from actbench.results import read_metrics
from actbench.terminal import Terminal, reader_gone

LABELS = ["relu", "tanh", "sigmoid"]
NOISE = ("Traceback", "Exception ignored", "BrokenPipeError", "Aborted")


def _closed_pipe() -> int:
    """The writing end of a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    return write


def _can_tell() -> bool:
    """Whether this system says a pipe's reader is gone before anything is written."""
    write = _closed_pipe()
    try:
        with os.fdopen(os.dup(write), "w") as file:
            return reader_gone(file)
    finally:
        os.close(write)


needs_poll = pytest.mark.skipif(
    not _can_tell(), reason="this system cannot tell a closed pipe without writing to it"
)


def _run_args(mnist_dir, results, epochs=100000):
    return ["run", "-a", ",".join(LABELS), "--epochs", str(epochs), "--hidden", "8",
            "--workers", "1", "--data-dir", str(mnist_dir), "--results-dir", str(results)]  # fmt: skip


def _actbench(args, stdout, stderr=subprocess.PIPE, polls=True):
    """`actbench ARGS` in a fresh process; `polls=False`: a closed pipe is found only by
    writing to it (as where the system cannot tell, or where the reader goes after the
    last check)."""
    setup = "" if polls else "import actbench.terminal as t; t.reader_gone = lambda file: False\n"
    code = (
        f"import sys\n{setup}import actbench.cli as cli\n"
        "sys.argv = ['actbench', *sys.argv[1:]]\ncli.main()\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], stdout=stdout, stderr=stderr,
                          text=True, env=env, timeout=600, check=False)  # fmt: skip


def _the_run(results: Path) -> tuple[Path, dict]:
    (run_dir,) = results.iterdir()
    return run_dir, json.loads((run_dir / "manifest.json").read_text())


@needs_poll
def test_a_closed_stdout_stops_the_run_after_its_epoch_and_says_how_to_resume(mnist_dir, tmp_path):
    """Nothing reads the run's stdout any more: the run stops after its first epoch, as if the
    user had stopped it, keeps that epoch, says on stderr how to resume, exits with 1."""
    results = tmp_path / "results"
    write = _closed_pipe()
    try:
        proc = _actbench(_run_args(mnist_dir, results), stdout=write)
    finally:
        os.close(write)
    run_dir, manifest = _the_run(results)
    assert proc.returncode == 1, proc.stderr
    assert not any(noise in proc.stderr for noise in NOISE), proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"Interrupted: standard output was closed; finished epochs are kept in {run_dir}; "
        f"continue with: actbench run --resume {run_dir}"
    )
    assert manifest["status"] == "interrupted"
    assert manifest["reason"] == "standard output was closed"
    assert manifest["resume"] == f"actbench run --resume {run_dir}"  # if stderr went too
    assert manifest["finished"]
    frame = read_metrics(run_dir / "metrics.csv")
    assert sorted(frame["activation"]) == sorted(LABELS)  # the first epoch, every model
    assert frame["epoch"].tolist() == [1, 1, 1]
    assert "epoch 1/100000" in proc.stderr  # shown before the run stopped

    # the line's command goes on from there
    resumed = _actbench(["run", "--resume", str(run_dir), "--epochs", "2"], subprocess.PIPE)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and "reason" not in manifest
    assert "resume" not in manifest
    assert read_metrics(run_dir / "metrics.csv")["epoch"].tolist() == [1, 1, 1, 2, 2, 2]


def test_a_reader_that_stops_after_three_lines_interrupts_the_run(mnist_dir, tmp_path):
    """`actbench run ... 2>&1 | head -3`: the reader takes three lines and goes while the run
    has many more to print. The run ends interrupted (not failed), every epoch it finished
    whole in its CSV, exit code 1."""
    results = tmp_path / "results"
    read, write = os.pipe()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "actbench", *_run_args(mnist_dir, results)]
    proc = subprocess.Popen(command, stdout=write, stderr=write, env=env)
    os.close(write)
    with os.fdopen(read) as reader:
        lines = [reader.readline() for _ in range(3)]
    assert lines[0].startswith("Run folder: ") and lines[2].startswith("epoch 1/100000")
    assert proc.wait(timeout=600) == 1
    run_dir, manifest = _the_run(results)
    assert manifest["status"] == "interrupted", manifest.get("error")
    assert manifest["reason"] in ("standard output was closed", "standard error was closed")
    assert manifest["resume"] == f"actbench run --resume {run_dir}"  # the line is lost
    frame = read_metrics(run_dir / "metrics.csv")
    assert len(frame) >= len(LABELS)
    for _, rows in frame.groupby("activation"):  # every epoch whole, none lost or half
        assert rows["epoch"].tolist() == list(range(1, len(rows) + 1))
    assert frame.groupby("activation").size().nunique() == 1


def test_a_write_that_finds_the_reader_gone_stops_the_run_too(mnist_dir, tmp_path):
    """Where only a write can tell (here stderr's first line), the run stops there: recorded
    interrupted, with the stream that closed, exit code 1."""
    results = tmp_path / "results"
    write = _closed_pipe()
    try:
        proc = _actbench(_run_args(mnist_dir, results), subprocess.DEVNULL, write, polls=False)
    finally:
        os.close(write)
    assert proc.returncode == 1
    _, manifest = _the_run(results)
    assert manifest["status"] == "interrupted"
    assert manifest["reason"] == "standard error was closed"


def test_stdout_closed_after_the_run_completed_leaves_it_completed(mnist_dir, tmp_path):
    """The reader goes only as the finished run prints its tables (`| head -3` reads them):
    the run stays completed with its cost measured, and the command ends with one line on
    stderr saying where its results are, exit 1."""
    results = tmp_path / "results"
    write = _closed_pipe()
    try:
        proc = _actbench(_run_args(mnist_dir, results, epochs=2), write, polls=False)
    finally:
        os.close(write)
    run_dir, manifest = _the_run(results)
    assert proc.returncode == 1, proc.stderr
    assert not any(noise in proc.stderr for noise in (*NOISE, "Interrupted")), proc.stderr
    assert proc.stderr.split()[:2] == ["Run", "folder:"]
    last = [line for line in proc.stderr.splitlines() if line.strip()]
    assert last[-2].startswith("epoch 2/2")  # then one line
    assert last[-1] == (
        f"Completed, but standard output was closed before the summary was shown: every result "
        f"is in {run_dir}; see them with: actbench plot {run_dir}"
    )
    assert manifest["status"] == "completed"
    assert (run_dir / "cost.csv").exists()
    assert read_metrics(run_dir / "metrics.csv")["epoch"].tolist() == [1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize(
    "args", [["activations"], ["--version"], ["plot", "RUN"], ["run", "--help"]]
)
def test_other_commands_end_quietly_on_a_closed_stdout(tmp_path, args):
    run_dir = write_run(tmp_path / "run")
    args = [str(run_dir) if arg == "RUN" else arg for arg in args]
    write = _closed_pipe()
    try:
        proc = _actbench(args, write)
    finally:
        os.close(write)
    assert proc.returncode == 1
    assert proc.stderr == ""
    if "plot" in args:  # what it wrote before printing stays written
        assert (run_dir / "plots" / "report.md").exists()


def test_a_dry_run_ends_quietly_on_a_closed_stdout(mnist_dir, tmp_path):
    results = tmp_path / "results"
    write = _closed_pipe()
    try:
        proc = _actbench([*_run_args(mnist_dir, results), "--dry-run"], write)
    finally:
        os.close(write)
    assert proc.returncode == 1
    assert proc.stderr == ""
    assert not results.exists()


@pytest.mark.parametrize("polls", [True, False])
def test_a_console_whose_reader_went_raises_once_then_writes_nothing(monkeypatch, polls):
    """Found by asking (`check_open`) or by writing: OutputClosed once, then the descriptor
    is the null device, so no later write, nor the flush at exit, fails."""
    if polls and not _can_tell():
        pytest.skip("this system cannot tell a closed pipe without writing to it")
    if not polls:
        monkeypatch.setattr("actbench.terminal.reader_gone", lambda file: False)
    write = _closed_pipe()
    with os.fdopen(write, "w") as file:
        console = Terminal(file=file, stderr=True)
        with pytest.raises(OutputClosed, match=r"^standard error was closed$"):
            if polls:
                console.check_open()
            else:
                console.print("a line")
        console.check_open()  # once only
        console.print("more")
        assert console.closed
        assert stat.S_ISCHR(os.fstat(write).st_mode)  # the null device now
