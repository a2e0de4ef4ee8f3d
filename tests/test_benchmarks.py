"""The speed benchmark runs end to end on tiny data and compares the same work three ways.

No timing is asserted here (timings belong to the benchmark's own output); what is checked is
that the script runs, prints every ratio it promises, and that the hand-written loop and
`actbench run` really do the same work: same seed, same batches, same final accuracy.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "speed.py"
# Only against a hang: each script starts several fresh processes that import torch, which on
# a busy machine takes minutes in all (the speed script took over 300 s beside other work).
HANG = 1800  # seconds


def _accuracies(output: str, approach: str) -> str:
    (line,) = [line for line in output.splitlines() if re.match(rf"{approach}\s+\d", line)]
    return re.sub(r"^\S+\s+\S+\s+\S+\s+", "", line)  # drop the name, seconds and memory


def test_speed_benchmark_prints_the_three_ratios(mnist_dir):
    command = [sys.executable, str(SCRIPT), "--data-dir", str(mnist_dir), "--repeats", "1"]
    command += ["--activations", "relu,tanh", "--hidden", "16", "--previous"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for approach in ("tutorial", "hand-written", "actbench", "previous"):
        assert re.search(rf"repeat 1: {approach}\s+\d+\.\d+ s", out)
        # memory is watched in a separate run after the timed ones, never while timing
        memory = re.search(rf"memory \(1 epoch\(s\), untimed\): {approach}\s+(\d+) MB", out)
        assert memory and int(memory.group(1)) > 0
        assert out.index("repeat 1: matrix-multiply") < memory.start()
    spread = r"; repeats \d+\.\d+ to \d+\.\d+\)"
    assert re.search(r"tutorial / actbench:\s+\d+\.\d+x faster\s+\(goal >= 30x" + spread, out)
    assert re.search(r"hand-written / actbench:\s+\d+\.\d+x faster\s+\(goal >= 3x" + spread, out)
    assert re.search(r"actbench / floor:\s+\d+\.\d+x\s+\(goal <= 2.5x" + spread, out)
    assert re.search(r"actbench / previous step:\s+\d+\.\d+x\s+\(goal <= 1.1x" + spread, out)
    assert re.fullmatch(r"relu \d+\.\d\d% tanh \d+\.\d\d%", _accuracies(out, "previous"))
    assert re.search(r"repeat 1: matrix-multiply\s+\d+\.\d GFLOP/s", out)
    assert re.search(r"matrix-multiply rate: \d+\.\d GFLOP/s", out)
    assert "work: 2 activations x 1 epoch(s) x 256 training samples + test pass on 64" in out
    mine, theirs = _accuracies(out, "actbench"), _accuracies(out, "hand-written")
    assert re.fullmatch(r"relu \d+\.\d\d% tanh \d+\.\d\d%", mine)
    assert mine == theirs


def test_speed_benchmark_needs_a_data_folder():
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=HANG
    )
    assert done.returncode == 2
    assert "give --data-dir" in done.stderr


STEP_SCRIPT = SCRIPT.parent / "step.py"
ROUNDS_SPREAD = r"x  \(rounds \d+\.\d\d to \d+\.\d\d\)"


def test_step_benchmark_prints_both_ratios():
    command = [sys.executable, str(STEP_SCRIPT), "--activations", "relu,prelu", "--hidden", "8"]
    command += ["--rounds", "2", "--steps", "3", "--previous"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "step: 2 model(s) (relu,prelu), batch 64, hidden 8" in out
    for way in ("one at a time", "actbench", "products only", "previous step"):
        assert re.search(rf"  {way}\s+\d+\.\d{{3}} ms per step \(median\)", out)
    assert re.search(r"one at a time / actbench: \d+\.\d\d" + ROUNDS_SPREAD, out)
    assert re.search(r"actbench / its matrix products: \d+\.\d\d" + ROUNDS_SPREAD, out)
    assert re.search(r"actbench / previous step: \d+\.\d\d" + ROUNDS_SPREAD, out)


def test_step_benchmark_compares_group_sizes():
    command = [sys.executable, str(STEP_SCRIPT), "--activations", "relu,prelu,tanh", "--groups"]
    command += ["--hidden", "8", "--rounds", "2", "--steps", "3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for size in (3, 2, 1):
        assert re.search(rf"  groups of {size}\s+\d+\.\d{{3}} ms per step \(median\)", out)
    assert re.search(r"groups of 2 / groups of 3: \d+\.\d\d" + ROUNDS_SPREAD, out)
    assert re.search(r"groups of 1 / groups of 3: \d+\.\d\d" + ROUNDS_SPREAD, out)
    assert "actbench" not in out.split("\n", 2)[2]  # only the grouped steps are timed


def test_study_benchmark_prints_its_two_ratios(mnist_dir):
    script = SCRIPT.parent / "study.py"
    command = [sys.executable, str(script), "--data-dir", str(mnist_dir), "--epochs", "1",
               "--seeds", "2", "--depths", "1,2", "--hidden", "8", "--activations",
               "relu,tanh"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # every approach trained what it says: the classic four once, the grid, the grid's sample
    assert re.search(r"classic\s+4 model-epochs in\s+\d+\.\d s = \s*\d+\.\d+ per s, peak", out)
    assert re.search(r"study\s+8 model-epochs in", out)  # 2 activations x 2 seeds x 2 depths
    assert re.search(r"hand-written\s+4 model-epochs in", out)  # one seed of each model
    assert re.search(r"study cost per model-epoch / classic's: \d+\.\d+x raw, \d+\.\d+x per "
                     r"weight \(goal <= 1x\)", out)  # fmt: skip
    assert re.search(r"study speed / hand-written loop's:\s+\d+\.\d+x \(goal >= 3x\)", out)


RAY_SCRIPT = SCRIPT.parent / "ray_scaling.py"


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None,
    reason="needs Ray with Tune: pip install 'actbench[ray]' 'ray[tune]'",
)
def test_ray_scaling_benchmark_times_the_same_study_every_way(mnist_dir):
    """Each approach trains every model-epoch of the study once; every ratio is printed."""
    command = [sys.executable, str(RAY_SCRIPT), "--data-dir", str(mnist_dir), "--activations",
               "relu,tanh", "--hidden", "8", "--lr", "0.01", "--seeds", "1", "--epochs", "2",
               "--subset", "128", "--workers", "1"]  # fmt: skip
    from ray._common.utils import get_ray_address_file

    address = Path(get_ray_address_file(None))  # where `ray.init()` looks for a running Ray
    before = address.read_text() if address.exists() else None
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "study: 2 activations x hidden 8 x lr 0.01 x 1 seeds = 1 groups of 2 models" in out
    # the Ray it started for the joined pair is gone, and no later run tries to join it
    assert (address.read_text() if address.exists() else None) == before
    for name in ("local-1", "ray", "tune", "ray-join", "tune-join"):  # 2 models x 2 epochs
        assert re.search(rf"^{name}\s+4 model-epochs in\s+\d+\.\d s = \s*\d+\.\d{{3}} per s$",
                         out, flags=re.M), out  # fmt: skip
    # the one group of two models is split over the two task slots: 2 jobs x 2 epochs
    for name in ("ray", "ray-join"):
        assert re.search(rf"{name} tasks: 4 \(one per job and epoch\), \d+\.\d s inside them; "
                         r"overhead per task \d+\.\d{3} s median, \d+\.\d{3} s mean", out)  # fmt: skip
    assert re.search(r"ray start and stop on this machine: \d+\.\d s", out)
    assert re.search(r"ray / local-1 speed: \d+\.\d\dx", out)
    assert re.search(r"ray / tune speed: \d+\.\d\dx \(goal >= 5x\)", out)
    # the joined pair ran on a Ray this script started for them, and stopped
    assert re.search(r"ray start --head on this machine: \d+\.\d s", out)
    assert re.search(r"ray-join / tune-join speed: \d+\.\d\dx \(goal >= 5x\)", out)


def _measure_module(monkeypatch):
    """benchmarks/measure.py, imported as the scripts import it."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    return importlib.import_module("measure")


def _pss_mb(pid: int) -> float:
    """One process's own PSS in MB, read straight from /proc."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Pss line")


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_tree_memory_counts_the_descendants(monkeypatch):
    """A process whose child holds 100 MB of written pages: the tree's PSS has them, its own
    does not (each read from /proc at a moment when both processes are waiting)."""
    measure = _measure_module(monkeypatch)
    child = "b = bytearray(b'x') * (100 * 2**20); print('ready', flush=True); input()"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    proc = subprocess.Popen([sys.executable, "-c", parent], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline() == "ready\n"  # the child holds its memory and waits
        (grandchild,) = [pid for pid in measure.tree(proc.pid) if pid != proc.pid]
        tree = measure.tree_pss_mb(proc.pid)
        assert tree == pytest.approx(_pss_mb(proc.pid) + _pss_mb(grandchild), abs=1.0)
        assert tree - _pss_mb(proc.pid) >= 100
    finally:
        proc.communicate("\n", timeout=HANG)


def test_measure_returns_the_whole_output_and_stops_on_a_failure():
    """A process that writes more than a pipe holds, on both streams, while its memory is
    sampled: all of it comes back (nothing blocks); a failing one ends the benchmark with its
    name and the end of its standard error."""
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from measure import measure\n"
        'chatty = \'import sys; print("o" * 2**20); print("e" * 2**20, file=sys.stderr)\'\n'
        "done = measure('chatty', [sys.executable, '-c', chatty], sample_every=0.01)\n"
        "print(len(done.stdout), len(done.stderr), done.seconds > 0, done.peak_mb >= 0)\n"
        "measure('broken', [sys.executable, '-c', 'import sys; sys.exit(\"it broke\")'])\n"
    )
    command = [sys.executable, "-c", code, str(SCRIPT.parent)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG)
    assert done.stdout == f"{2**20 + 1} {2**20 + 1} True True\n"
    assert done.returncode == 1
    assert done.stderr == "broken failed:\nit broke\n\n"
