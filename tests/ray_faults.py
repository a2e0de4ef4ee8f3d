"""Faults for the Ray tests, installed in every Ray worker process as it starts.

A test names one task by writing a JSON file at the path in `FAULTS` (an environment
variable of the test's Ray): {"seed": 1, "epoch": 2, "hidden": 12, "lr": 0.01, "times": 1,
"marker": "/some/folder/fired"}. The worker that takes that task ends its own process at once
(`os._exit`), as a process killed or a node lost would, the first `times` times the task is
tried; a marker file per crash, created atomically, counts them, so which worker takes the
task, and when, makes no difference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FAULTS = "ACTBENCH_TEST_RAY_FAULTS"


def _crash_now(fault: dict) -> bool:
    for attempt in range(fault.get("times", 1)):
        try:
            os.close(os.open(f"{fault['marker']}.{attempt}", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        return True
    return False


def install() -> None:
    """Wrap the backend's epoch so that the task the fault file names kills its worker."""
    import actbench.ray_tasks as backend

    original = backend.train_epoch

    def train_epoch(specs, config, seed, epoch, box, start, threads, device, report=None):
        path = os.environ.get(FAULTS)
        if path and Path(path).exists():
            fault = json.loads(Path(path).read_text())
            task = {"seed": seed, "epoch": epoch, "hidden": config.hidden, "lr": config.lr}
            if all(fault[k] == v for k, v in task.items()) and _crash_now(fault):
                os._exit(1)
        return original(specs, config, seed, epoch, box, start, threads, device, report)

    backend.train_epoch = train_epoch
