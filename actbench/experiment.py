"""One `actbench run` as a library call: settings in, a run folder with CSV and manifest out."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

from actbench.activations import resolve_all
from actbench.config import RunConfig
from actbench.data import load_mnist, prepare
from actbench.parallel import train_in_workers
from actbench.results import RunWriter, create_run_dir
from actbench.runtime import choose_device, cpu_cores, plan_workers, versions
from actbench.train import EpochResult, steps_per_epoch, train_lockstep


@dataclass(frozen=True)
class RunResult:
    """What a finished run left behind."""

    run_dir: Path
    metrics: pd.DataFrame  # one row per (activation, seed, epoch)
    manifest: dict


@dataclass
class Hooks:
    """Optional callbacks a front end uses to show progress; the library never prints."""

    on_start: Callable[[Path, int], None] | None = None  # run folder, total optimiser steps
    on_steps: Callable[[int], None] | None = None  # steps just taken
    on_epoch: Callable[[list[EpochResult]], None] | None = None  # all rows of a finished epoch


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_experiment(config: RunConfig, hooks: Hooks | None = None) -> RunResult:
    """Train one model per activation on MNIST and record every epoch in a new run folder.

    Everything a user can get wrong is checked before the run folder is created. Rows are
    written as each epoch finishes; an interruption or failure marks the manifest and keeps them.
    """
    hooks = hooks or Hooks()
    activations = resolve_all(config.activations)
    device = choose_device(config.device)
    workers, threads = plan_workers(len(activations), device, config.workers, config.threads)
    torch.set_num_threads(threads if workers == 1 else cpu_cores())
    mnist = load_mnist(config.data_dir, download=config.download)
    data = prepare(mnist, config.subset, config.seed, device)
    md5 = mnist.md5
    del mnist  # training needs only the prepared tensors: hold the data set once

    labels = [a.label for a in activations]
    run_dir = create_run_dir(Path(config.results_dir))
    writer = RunWriter(
        run_dir,
        labels,
        {
            "status": "running",
            "config": config.to_dict(),
            "activations": labels,
            "device": str(device),
            "workers": workers,
            "threads_per_worker": threads,
            "data": {
                "train_samples": len(data.train_x),
                "test_samples": len(data.test_x),
                "md5": md5,
            },
            "versions": versions(),
            "command": ["actbench", *sys.argv[1:]],
            "started": _now(),
            "finished": None,
        },
    )
    if hooks.on_start is not None:
        total = workers * config.epochs * steps_per_epoch(len(data.train_x), config.batch_size)
        hooks.on_start(run_dir, total)

    pending: dict[tuple[int, int], list[EpochResult]] = {}

    def on_epoch(rows: list[EpochResult]) -> None:
        writer.add(rows)  # at once: workers report their groups separately
        key = (rows[0].seed, rows[0].epoch)
        pending.setdefault(key, []).extend(rows)
        if len(pending[key]) == len(labels):
            done = sorted(pending.pop(key), key=lambda r: labels.index(r.activation))
            if hooks.on_epoch is not None:
                hooks.on_epoch(done)

    try:
        if workers == 1:
            train_lockstep(activations, data, config, config.seed, on_epoch, hooks.on_steps)
        else:
            train_in_workers(
                activations, data, config, config.seed, workers, threads, on_epoch, hooks.on_steps
            )
    except KeyboardInterrupt:
        writer.update(status="interrupted", finished=_now())
        raise
    except BaseException as err:
        writer.update(status="failed", error=f"{type(err).__name__}: {err}", finished=_now())
        raise
    writer.update(status="completed", finished=_now())
    return RunResult(run_dir, pd.DataFrame(writer.rows), writer.manifest)
