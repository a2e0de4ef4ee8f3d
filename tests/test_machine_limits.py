"""What the machine cannot do is refused before anything is written; what fails inside a
worker is one line, with the worker's traceback kept for --debug."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

import actbench.runtime
from actbench.cli import app
from actbench.errors import UsageError
from actbench.runtime import (
    GENERATIONS,
    TRAINING_BYTES_PER_WEIGHT,
    check_fits,
    checkpoint_bytes,
)

runner = CliRunner()


def _run(mnist_dir, results, *extra):
    return runner.invoke(
        app,
        ["run", "-a", "relu,tanh", "--hidden", "8", "--batch-size", "16", "--epochs", "1",
         "--data-dir", str(mnist_dir), "--results-dir", str(results), *extra],
    )  # fmt: skip


def test_more_threads_than_cores_is_one_line_exit_2_and_writes_nothing(
    mnist_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(actbench.runtime, "cpu_cores", lambda: 2)
    results = tmp_path / "results"
    result = _run(mnist_dir, results, "--threads", "3")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: --threads 3 is more than this machine's 2 CPU cores; use --threads 2 or fewer"
    ]
    assert not results.exists()
    assert _run(mnist_dir, results, "--threads", "2", "--workers", "1").exit_code == 0


def test_a_model_too_big_for_the_memory_is_refused_with_its_size(mnist_dir, tmp_path, monkeypatch):
    # hand-worked: 784 x 256 + 256 x 256 + 256 x 10 = 268,800 weights, 16 bytes each to train
    monkeypatch.setattr(actbench.runtime, "memory_bytes", lambda: 2**20)
    results = tmp_path / "results"
    result = _run(mnist_dir, results, "--hidden", "256")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: --hidden 256 at --depth 2 gives one model 268,800 weights")
    assert line.endswith("use a smaller --hidden or --depth")
    assert not results.exists()
    # 784 x 8 + 8 x 8 + 8 x 10 = 6,416 weights: 102,656 bytes fit in 1 MiB
    assert _run(mnist_dir, results, "--workers", "1").exit_code == 0


def test_the_memory_check_is_exact_at_its_bound(monkeypatch):
    monkeypatch.setattr(actbench.runtime, "memory_bytes", lambda: 1000 * TRAINING_BYTES_PER_WEIGHT)
    check_fits(1000, "x")
    with pytest.raises(UsageError, match="gives one model 1,001 weights"):
        check_fits(1001, "x")
    monkeypatch.setattr(actbench.runtime, "memory_bytes", lambda: None)
    check_fits(10**18, "x")  # a system that does not say: nothing refused


def test_a_fault_in_a_worker_is_one_line_and_its_traceback_is_for_debug(
    mnist_dir, tmp_path, monkeypatch
):
    """The workers are forked, so the replaced training function is theirs too."""

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("actbench.parallel.run_job", broken)
    results = tmp_path / "results"
    result = _run(mnist_dir, results, "--workers", "2")
    assert result.exit_code == 1, result.output
    # either worker may be the first to report: both fail the same way
    assert re.fullmatch(
        r"Error: unexpected RuntimeError: training worker [01] failed: RuntimeError: boom; "
        r"rerun with --debug for the traceback and report it",
        result.stderr.splitlines()[-1],
    )
    assert "Traceback" not in result.stderr
    (run_dir,) = results.iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert re.fullmatch(
        r"RuntimeError: training worker [01] failed: RuntimeError: boom", manifest["error"]
    )

    debug = runner.invoke(
        app,
        ["--debug", "run", "-a", "relu,tanh", "--hidden", "8", "--batch-size", "16",
         "--epochs", "1", "--workers", "2", "--data-dir", str(mnist_dir),
         "--results-dir", str(tmp_path / "debug")],
    )  # fmt: skip
    assert debug.exit_code == 1
    assert "The worker's traceback:" in debug.stderr
    assert 'raise RuntimeError("boom")' in debug.stderr


def test_a_run_whose_checkpoints_cannot_fit_on_the_disk_is_refused_before_writing(
    mnist_dir, tmp_path, monkeypatch
):
    # hand-worked: 785 x 8 + 9 x 8 + 9 x 10 = 6,442 weights and biases; Adam keeps two
    # tensors more; float32; two generations: 154,608 bytes a model, 309,216 for relu, tanh
    free = {"bytes": 309_215}
    monkeypatch.setattr(actbench.runtime, "free_bytes", lambda folder: free["bytes"])
    results = tmp_path / "results"
    result = _run(mnist_dir, results, "--workers", "1")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"Error: the checkpoints of 2 models need at least 0.0 GB and the disk of {results} "
        "has 0.0 GB free; free some space, give --results-dir on a larger disk, or train "
        "fewer models (--seeds, grid values)"
    ]
    assert not results.exists()
    dry = _run(mnist_dir, results, "--workers", "1", "--dry-run")  # the same check
    assert dry.exit_code == 1 and dry.stderr.splitlines() == result.stderr.splitlines()
    free["bytes"] = 309_216
    assert _run(mnist_dir, results, "--workers", "1").exit_code == 0


def test_the_checkpoint_estimate_is_a_lower_bound_of_a_real_checkpoint(mnist_dir, tmp_path):
    results = tmp_path / "results"
    assert _run(mnist_dir, results, "--workers", "1").exit_code == 0
    saved = sorted((next(results.iterdir()) / "checkpoints").glob("*.pt"))
    assert saved
    one_generation = checkpoint_bytes(6_442, 2) // GENERATIONS
    for path in saved:
        assert one_generation <= path.stat().st_size < 2 * one_generation


@pytest.mark.parametrize(
    ("inputs", "hidden", "depth", "classes"), [(784, 8, 2, 10), (40, 16, 5, 3)]
)
def test_the_parameter_count_is_the_networks_own(inputs, hidden, depth, classes):
    from torch import nn

    from actbench.model import MLP, parameter_count

    model = MLP(nn.ReLU, hidden, inputs, classes, depth)
    assert parameter_count(inputs, hidden, depth, classes) == sum(
        p.numel() for p in model.parameters()
    )
    weights = sum(layer.weight.numel() for layer in model.linears())
    assert parameter_count(inputs, hidden, depth, classes, biases=False) == weights
