"""Compare ways of spending the CPU cores on one epoch of the classic run, side by side.

    python benchmarks/threads.py --data-dir /path/to/mnist [--repeats 5] [--subset 20000]

Each configuration trains the four classic activations for one epoch (actbench's lockstep
trainer, batch 64, hidden 128) through `actbench run` in a fresh process:

  1 process, 1 thread      all four models in one process, one thread
  1 process, N threads     all four models in one process, one thread per core
  N processes, 1 thread    the models split over one single-threaded process per core
                           (actbench's default on a CPU)

The configurations alternate within each repeat; the script prints the median seconds of
the training epochs (from the run's own CSV, so start-up is left out) and each one's ratio to
the default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd


def epoch_seconds(data_dir: Path, subset: int | None, workers: int, threads: int) -> float:
    with tempfile.TemporaryDirectory() as results:
        command = [sys.executable, "-m", "actbench", "run", "--epochs", "1"]
        command += ["--data-dir", str(data_dir), "--no-download", "--results-dir", results]
        command += ["--workers", str(workers), "--threads", str(threads)]
        if subset:
            command += ["--subset", str(subset)]
        subprocess.run(command, check=True, capture_output=True)
        (metrics,) = Path(results).glob("*/metrics.csv")
        return float(pd.read_csv(metrics)["epoch_seconds"].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("ACTBENCH_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--subset", type=int, default=None)
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("give --data-dir (or set ACTBENCH_DATA_DIR) to a folder holding MNIST")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    configurations = {
        "1 process, 1 thread": (1, 1),
        f"1 process, {cores} threads": (1, cores),
        f"{cores} processes, 1 thread": (min(cores, 4), 1),
    }
    times: dict[str, list[float]] = {name: [] for name in configurations}
    for repeat in range(args.repeats):
        for name, (workers, threads) in configurations.items():
            seconds = epoch_seconds(args.data_dir, args.subset, workers, threads)
            times[name].append(seconds)
            print(f"  repeat {repeat + 1}: {name:<24} {seconds:6.2f} s", flush=True)
    default = statistics.median(times[f"{cores} processes, 1 thread"])
    print(f"\n{'configuration':<26}{'median epoch s':>15}{'vs default':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<26}{median:>15.2f}{median / default:>11.2f}x")


if __name__ == "__main__":
    main()
