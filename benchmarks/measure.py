"""Running one benchmark command in a fresh process: its wall time and its peak memory.

Every benchmark times its approaches the same way: each in a process of its own, end to end
(start, imports, data, work), by the wall clock of the process that starts it. Peak memory is
the highest proportional set size (PSS) of the process tree, sampled at a fixed interval
(Linux /proc): pages that processes share count once in all. Reading it is not free (tens of
milliseconds of a core per sample for processes that map torch's libraries), so a benchmark
samples only where it says so.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Measured:
    """A finished command: its output, its wall time and its tree's peak PSS."""

    stdout: str
    stderr: str
    seconds: float  # wall time from starting the process to having all its output
    peak_mb: float  # highest PSS sampled, in MB (2**20 bytes); 0.0 when memory is not sampled


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in task.read_text().split())
    return pids


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process tree in MB: shared pages are counted once in all.

    A process that ends while it is read counts for nothing; 0.0 where /proc is missing.
    """
    total_kb = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def _read(stream: IO[str], into: list[str]) -> None:
    with stream:
        into.append(stream.read())


def measure(
    name: str,
    command: Sequence[str],
    sample_every: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Measured:
    """Run `command` to its end in a fresh process and time it; exit with its error if it fails.

    `sample_every` (seconds) samples the PSS of its process tree at that interval while it
    runs (None: not sampled, as for a timed run: sampling slows what it watches). Its output
    is read meanwhile, so a chatty process never blocks on a full pipe. On a non-zero exit
    code the benchmark stops with "`name` failed:" and the end of its standard error.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peak = 0.0
    if sample_every is None:
        stdout, stderr = proc.communicate()
    else:
        out: list[str] = []
        err: list[str] = []
        readers = [
            threading.Thread(target=_read, args=(proc.stdout, out), daemon=True),
            threading.Thread(target=_read, args=(proc.stderr, err), daemon=True),
        ]
        for reader in readers:
            reader.start()
        while proc.poll() is None:
            peak = max(peak, tree_pss_mb(proc.pid))
            time.sleep(sample_every)
        for reader in readers:
            reader.join()
        proc.wait()
        stdout, stderr = out[0], err[0]
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{stderr[-2000:]}")
    return Measured(stdout, stderr, seconds, peak)
