"""Run folders as `actbench run` leaves them (metrics.csv and manifest.json), with made-up numbers.

The numbers follow simple rules, so a test can work out by hand what a report must say.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from actbench.config import RunConfig
from actbench.results import COLUMNS, MANIFEST, METRICS, OPTIONAL


def accuracy_rule(activation_index: int, seed: int, epoch: int) -> float:
    """0.80 + one point per epoch, 0.1 point per seed, 0.2 points per activation index."""
    return 0.80 + 0.01 * epoch + 0.001 * seed + 0.002 * activation_index


def write_run(
    folder: Path,
    activations: tuple[str, ...] = ("relu", "tanh"),
    seeds: tuple[int, ...] = (0,),
    epochs: int = 3,
    reached: dict[tuple[str, int], int] | None = None,
    diverged: dict[tuple[str, int], int] | None = None,
    status: str = "completed",
    started: str = "2026-01-01T00:00:00+00:00",
    settings: dict[str, Any] | None = None,
    accuracy: Callable[[int, int, int], float] = accuracy_rule,
    val_accuracy: Callable[[int, int, int], float] | None = None,
    seconds: float = 1.0,
    activation_seconds: float = 0.01,
    device: str = "cpu",
) -> Path:
    """Write a run folder and return it.

    `reached`: epochs finished by the models that stopped early (0: never started); the
    others reach `epochs`. `diverged`: the epoch each diverging model diverged in (its last).
    `val_accuracy`: with it, the CSV has validation columns (else it has none).
    """
    folder.mkdir(parents=True)
    reached = reached or {}
    diverged = diverged or {}
    config = RunConfig(
        activations=tuple(activations),
        epochs=epochs,
        seed=seeds[0] if len(seeds) == 1 else tuple(seeds),
    ).to_dict()
    config.update(settings or {})
    rows = []
    for seed in seeds:
        for epoch in range(1, epochs + 1):
            for i, activation in enumerate(activations):
                last = diverged.get((activation, seed), reached.get((activation, seed), epochs))
                if epoch > last:
                    continue
                row = dict.fromkeys(COLUMNS, math.nan)
                row.update(
                    activation=activation,
                    seed=seed,
                    epoch=epoch,
                    train_loss=1.0 / epoch,
                    train_accuracy=accuracy(i, seed, epoch) + 0.01,
                    test_loss=1.1 / epoch,
                    test_accuracy=accuracy(i, seed, epoch),
                    epoch_seconds=seconds,
                    status="diverged" if diverged.get((activation, seed)) == epoch else "ok",
                )
                if "activation_seconds" in row:
                    row["activation_seconds"] = activation_seconds
                if val_accuracy is not None:
                    row["val_loss"] = 1.05 / epoch
                    row["val_accuracy"] = val_accuracy(i, seed, epoch)
                rows.append(row)
    columns = [c for c in COLUMNS if val_accuracy is not None or c not in OPTIONAL]
    pd.DataFrame(rows, columns=columns).to_csv(folder / METRICS, index=False, na_rep="nan")
    manifest = {
        "status": status,
        "config": config,
        "activations": [a for _ in seeds for a in activations],
        "device": device,
        "workers": 1,
        "threads_per_worker": 1,
        "data": {"train_samples": config.get("subset") or 60000, "test_samples": 10000,
                 "md5": {}},
        "versions": {"python": "3.11.0", "actbench": "0.1.0", "torch": "2.5.1"},
        "command": ["actbench", "run"],
        "started": started,
        "finished": None if status == "running" else started,
        "diverged": [{"activation": a, "seed": s, "epoch": e} for (a, s), e in diverged.items()],
        "resumed": [],
    }  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def write_study(
    folder: Path,
    grid: dict[str, list[Any]] | None = None,
    activations: tuple[str, ...] = ("relu", "tanh"),
    seeds: tuple[int, ...] = (0, 1),
    epochs: int = 2,
    started: str = "2026-01-01T00:00:00+00:00",
) -> Path:
    """Write a completed study folder (`--lr 0.001,0.01` by default) and return it.

    Every configuration's rows follow `accuracy_rule`, one point higher per configuration.
    """
    from actbench.config import make_config
    from actbench.results import settings_of

    grid = grid or {"lr": [0.001, 0.01]}
    config = make_config(
        {"activations": ",".join(activations), "epochs": epochs,
         "seed": seeds[0] if len(seeds) == 1 else list(seeds),
         **{key: ",".join(map(str, values)) for key, values in grid.items()}}
    )  # fmt: skip
    rows = []
    for p, point in enumerate(config.points()):
        for seed in seeds:
            for epoch in range(1, epochs + 1):
                for i, activation in enumerate(activations):
                    row = dict.fromkeys(COLUMNS, math.nan)
                    row.update(settings_of(point))
                    row.update(activation=activation, seed=seed, epoch=epoch,
                               train_loss=1.0 / epoch, train_accuracy=0.9, test_loss=1.1 / epoch,
                               test_accuracy=accuracy_rule(i, seed, epoch) + 0.01 * p,
                               epoch_seconds=1.0, status="ok")  # fmt: skip
                    rows.append(row)
    folder.mkdir(parents=True)
    columns = [c for c in COLUMNS if c not in ("val_loss", "val_accuracy")]
    pd.DataFrame(rows, columns=columns).to_csv(folder / METRICS, index=False, na_rep="nan")
    manifest = {
        "status": "completed",
        "config": config.to_dict(),
        "grid": {k: list(v) for k, v in config.grid.items()},
        "configurations": [settings_of(p) for p in config.points()],
        "activations": list(activations),
        "device": "cpu",
        "data": {"train_samples": 60000, "test_samples": 10000, "md5": {}},
        "versions": {"python": "3.11.0", "actbench": "0.1.0", "torch": "2.5.1"},
        "started": started,
        "finished": started,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
