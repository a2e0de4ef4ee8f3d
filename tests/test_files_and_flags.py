"""Files as users expect them (the user's umask, no lock file left) and flags that contradict."""

from __future__ import annotations

import builtins
import os
import re
import signal
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

import actbench.results
from actbench.cli import app
from actbench.config import load_config, make_config
from actbench.errors import UsageError
from actbench.results import RunLock, atomic_write

runner = CliRunner()
FAST = ["-a", "relu,tanh", "--epochs", "1", "--hidden", "8", "--batch-size", "32"]


@pytest.fixture
def umask():
    """Set the process umask for a test, and put the old one back after it."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_written_files_get_the_users_umask(tmp_path, umask, mask):
    umask(mask)
    atomic_write(tmp_path / "new.txt", "text")
    (tmp_path / "old.txt").write_text("x")
    os.chmod(tmp_path / "old.txt", 0o600)
    atomic_write(tmp_path / "old.txt", b"bytes")  # replaced, with the mode a new file gets
    for name in ("new.txt", "old.txt"):
        assert mode(tmp_path / name) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt", "old.txt"]


def test_a_run_and_its_figures_can_be_served(mnist_dir, tmp_path, umask):
    """The issue's example: with umask 022 every result file was -rw-------."""
    umask(0o022)
    results = tmp_path / "results"
    result = runner.invoke(app, ["run", *FAST, "--data-dir", str(mnist_dir), "--results-dir",
                                 str(results)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = results.iterdir()
    assert runner.invoke(app, ["plot", str(run_dir)]).exit_code == 0
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"metrics.csv", "manifest.json", "cost.csv", "report.md", "train_loss.png",
            "activations.png", "00-relu-seed0.pt"} <= names  # fmt: skip
    assert {str(p.relative_to(run_dir)): oct(mode(p)) for p in files} == {
        str(p.relative_to(run_dir)): oct(0o644) for p in files
    }


@pytest.fixture
def signal_handlers():
    """An interrupted run ignores further signals as it exits: give this process them back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_no_lock_file_is_left_however_a_run_ends(mnist_dir, tmp_path, monkeypatch, signal_handlers):
    args = ["run", *FAST, "--workers", "1", "--data-dir", str(mnist_dir)]
    finished = runner.invoke(app, [*args, "--results-dir", str(tmp_path / "ok")])
    assert finished.exit_code == 0, finished.output
    (run_dir,) = (tmp_path / "ok").iterdir()
    # a refused resume, too, takes the lock and gives it back
    assert runner.invoke(app, ["run", "--resume", str(run_dir)]).exit_code == 2

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("actbench.experiment.run_jobs", broken)
    failed = runner.invoke(app, [*args, "--results-dir", str(tmp_path / "failed")])
    assert failed.exit_code == 1, failed.output
    monkeypatch.setattr("actbench.experiment.run_jobs", interrupted)
    stopped = runner.invoke(app, [*args, "--results-dir", str(tmp_path / "stopped")])
    assert stopped.exit_code == 130, stopped.output
    for results in ("ok", "failed", "stopped"):
        (run_dir,) = (tmp_path / results).iterdir()
        assert (run_dir / "manifest.json").exists()
        assert not (run_dir / ".lock").exists(), results


def test_the_lock_is_held_once_even_while_its_file_is_deleted(tmp_path, monkeypatch):
    """B opens `.lock` just before A, finishing, deletes it; C then locks a new `.lock`.

    B's lock on the deleted file must not count: only one of B and C holds the folder.
    """
    first = RunLock(tmp_path).__enter__()
    holders = []

    def opened_just_before_the_end(path, mode="r", *args, **kwargs):
        handle = builtins.open(path, mode, *args, **kwargs)  # noqa: SIM115 (RunLock keeps it)
        if not holders:  # B's first attempt: A finishes and C starts before B locks
            holders.append(None)
            first.__exit__(None, None, None)
            holders[0] = RunLock(tmp_path).__enter__()
        return handle

    monkeypatch.setattr(actbench.results, "open", opened_just_before_the_end, raising=False)
    with pytest.raises(UsageError, match="in use by another actbench process"):
        RunLock(tmp_path).__enter__()
    monkeypatch.undo()
    (third,) = holders
    assert (tmp_path / ".lock").exists()
    third.__exit__(None, None, None)
    assert not (tmp_path / ".lock").exists()
    with RunLock(tmp_path):  # free again
        pass


# settings that contradict each other; each a usage error naming both (by their keys in
# Python; the command line names its flags)
CONTRADICTIONS = [
    ({"seeds": 1, "seed": "0,1"}, "seed 0,1 and seeds 1 contradict"),
    ({"seeds": 2, "seed": "0,1"}, "seed 0,1 and seeds 2 contradict"),
    ({"seeds": 3, "seed": [4, 5]}, "seed 4,5 and seeds 3 contradict"),
    ({"momentum": 0.9}, "momentum 0.9 applies to SGD only, and optimizer is adam"),
    ({"momentum": 0.5, "optimizer": "adam"}, "add --optimizer sgd or drop --momentum"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "message"), CONTRADICTIONS)
def test_contradicting_settings_are_refused(values, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        make_config(values)
    with pytest.raises(UsageError, match=re.escape(message)):
        load_config(**values)


def test_a_flag_that_contradicts_the_preset_is_refused(tmp_path):
    preset = tmp_path / "p.toml"
    named = re.escape(f"{preset}'s")  # what the preset gave is named by its file
    preset.write_text("seeds = 3\n")
    with pytest.raises(UsageError, match=f"^seed 0,1 and {named} seeds 3 contradict"):
        load_config(preset, seed="0,1")
    preset.write_text("seed = [0, 1]\n")
    with pytest.raises(UsageError, match=f"^{named} seed 0,1 and seeds 1 contradict"):
        load_config(preset, seeds=1)
    preset.write_text("seed = [0, 1]\nseeds = 1\n")
    with pytest.raises(UsageError, match=f"^{named} seed 0,1 and {named} seeds 1 contradict"):
        load_config(preset)
    preset.write_text('optimizer = "sgd"\nmomentum = 0.9\n')
    with pytest.raises(UsageError, match="drop --momentum"):
        load_config(preset, optimizer="adam")


def test_settings_that_agree_are_kept():
    assert load_config(seed="5", seeds=2).seed_list == [5, 6]
    assert load_config(seed="0,3").seed_list == [0, 3]
    assert load_config(optimizer="sgd", momentum=0.9).momentum == 0.9
    assert load_config(momentum=0.0).optimizer == "adam"  # no momentum: nothing ignored
    config = load_config(seed="0,3")
    assert make_config(config.to_dict()) == config


def test_the_issue_example_is_one_line_before_anything_is_written(mnist_dir, tmp_path):
    results = tmp_path / "results"
    result = runner.invoke(app, ["run", "--seeds", "1", "--seed", "0,1", "--data-dir",
                                 str(mnist_dir), "--results-dir", str(results)])  # fmt: skip
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: --seed 0,1 and --seeds 1 contradict each other")
    assert not results.exists()
