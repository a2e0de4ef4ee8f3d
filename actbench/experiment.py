"""One `actbench run` as a library call: settings in, a run folder with CSV and manifest out."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from actbench.activations import resolve_all
from actbench.config import RunConfig
from actbench.data import load_mnist, prepare
from actbench.results import RunWriter, create_run_dir
from actbench.runtime import apply_threads, choose_device, versions
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
    on_epoch: Callable[[list[EpochResult]], None] | None = None  # rows of a finished epoch


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
    threads = apply_threads(config.threads)
    mnist = load_mnist(config.data_dir, download=config.download)
    data = prepare(mnist, config.subset, config.seed, device)

    run_dir = create_run_dir(Path(config.results_dir))
    writer = RunWriter(
        run_dir,
        {
            "status": "running",
            "config": config.to_dict(),
            "activations": [a.label for a in activations],
            "device": str(device),
            "threads": threads,
            "data": {
                "train_samples": len(data.train_x),
                "test_samples": len(data.test_x),
                "md5": mnist.md5,
            },
            "versions": versions(),
            "command": ["actbench", *sys.argv[1:]],
            "started": _now(),
            "finished": None,
        },
    )
    if hooks.on_start is not None:
        total = config.epochs * steps_per_epoch(len(data.train_x), config.batch_size)
        hooks.on_start(run_dir, total)

    def on_epoch(rows: list[EpochResult]) -> None:
        writer.add(rows)
        if hooks.on_epoch is not None:
            hooks.on_epoch(rows)

    try:
        train_lockstep(activations, data, config, config.seed, on_epoch, hooks.on_steps)
    except KeyboardInterrupt:
        writer.update(status="interrupted", finished=_now())
        raise
    except BaseException as err:
        writer.update(status="failed", error=f"{type(err).__name__}: {err}", finished=_now())
        raise
    writer.update(status="completed", finished=_now())
    return RunResult(run_dir, pd.DataFrame(writer.rows), writer.manifest)
