"""One `actbench run` as a library call: settings in, a run folder with CSV and manifest out.

A run can also be resumed: `resume_experiment` continues an interrupted run (or extends a
finished one with more epochs) from the per-model checkpoints in its folder.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from actbench.activations import check_trainable, resolve_all
from actbench.checkpoint import CheckpointStore
from actbench.config import RunConfig, make_config
from actbench.cost import measure_run_cost
from actbench.data import SUBSET_SEED, load_mnist, prepare
from actbench.errors import ActbenchError, UsageError
from actbench.jobs import Unit, plan_jobs, run_jobs
from actbench.parallel import train_in_workers
from actbench.progress import EpochLines, Group, StepRouter, plan_groups
from actbench.results import (
    MANIFEST,
    METRICS,
    RunLock,
    RunWriter,
    create_run_dir,
    is_run_manifest,
    read_manifest,
    read_metrics,
)
from actbench.runtime import choose_device, cpu_cores, plan_workers, versions
from actbench.signals import signals_held
from actbench.train import EpochResult, steps_per_epoch

# Settings that change what the models learn: a resumed run must keep every one of them.
RESULT_KEYS = (
    "activations",
    "hidden",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "seed",
    "subset",
    "val",
)


@dataclass(frozen=True)
class RunResult:
    """What a finished run left behind."""

    run_dir: Path
    metrics: pd.DataFrame  # one row per (activation, seed, epoch)
    manifest: dict


@dataclass
class Hooks:
    """Optional callbacks a front end uses to show progress; the library never prints."""

    # the run folder, the groups of models that will train (`progress.Group`), the settings
    on_start: Callable[[Path, list[Group], RunConfig], None] | None = None
    on_steps: Callable[[Group, int], None] | None = None  # steps (batches) a group just took
    # one (seed, epoch)'s rows, every model of the seed, in seed-then-epoch order
    on_epoch: Callable[[list[EpochResult]], None] | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _diverged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"activation": r["activation"], "seed": r["seed"], "epoch": r["epoch"]}
        for r in rows
        if r["status"] == "diverged"
    ]


def _record_interrupt(writer: RunWriter) -> None:
    """Mark the manifest interrupted, even if more interrupts arrive meanwhile."""
    while True:
        try:
            with signals_held():
                writer.update(status="interrupted", finished=_now())
            return
        except KeyboardInterrupt:  # the run is stopping already: record how it ended first
            continue


def _execute(
    config: RunConfig,
    run_dir: Path,
    writer: RunWriter,
    units: list[Unit],
    finished: dict[Unit, int],
    done: set[Unit],
    data: Any,
    workers: int,
    threads: int,
    hooks: Hooks,
) -> RunResult:
    """Train what is left of the run and keep the folder's CSV and manifest up to date."""
    try:  # the manifest says "running" already: an interrupt from here on is recorded
        store = CheckpointStore(run_dir)
        plans = plan_jobs(units, finished, done, workers)
        per_epoch = steps_per_epoch(len(data.train_x), config.batch_size)
        groups = plan_groups(plans, config.epochs, per_epoch)
        if hooks.on_start is not None:
            hooks.on_start(run_dir, groups, config)
        steps = StepRouter(groups, hooks.on_steps)
        known = {f.name for f in fields(EpochResult)}
        earlier = [EpochResult(**{k: v for k, v in r.items() if k in known}) for r in writer.rows]
        collector = EpochLines(units, config.epochs, hooks.on_epoch, finished, earlier, done)
    except KeyboardInterrupt:
        _record_interrupt(writer)
        raise

    def on_epoch(rows: list[EpochResult]) -> None:
        writer.add(rows)  # at once: workers report their models separately
        if any(r.status == "diverged" for r in rows):
            writer.update(diverged=_diverged(writer.rows))
        collector.add(rows)

    try:
        if len(plans) == 1:
            run_jobs(plans[0], data, config, store, on_epoch, lambda n: steps.add(0, n))
        elif plans:
            train_in_workers(plans, data, config, store, threads, on_epoch, steps.add)
    except KeyboardInterrupt:
        _record_interrupt(writer)
        collector.flush()  # the epochs finished so far, shown even where a seed is incomplete
        raise
    except BaseException as err:
        collector.flush()
        # the disk that failed the run may refuse this too; the error says so already
        with contextlib.suppress(ActbenchError):
            writer.update(status="failed", error=f"{type(err).__name__}: {err}", finished=_now())
        raise
    writer.update(status="completed", finished=_now())
    measure_run_cost(run_dir, config)  # on quiet cores, now that training is over
    return RunResult(run_dir, pd.DataFrame(writer.rows), writer.manifest)


def baseline_label(config: RunConfig) -> str:
    """The label of the activation the others are compared with (checked to be in the run).

    `config.baseline` may be a label of the run ('sin' for sin=torch:sin) or any spec of one of
    its functions ('ReLU', 'leaky_relu').
    """
    activations = resolve_all(config.activations)
    labels = [a.label for a in activations]
    if config.baseline is None:
        return labels[0]
    if config.baseline.strip() in labels:
        return config.baseline.strip()
    (baseline,) = resolve_all([config.baseline])
    for activation in activations:
        if baseline.key == activation.key:
            return activation.label
    raise UsageError(
        f"baseline {config.baseline!r} is not one of the activations ({', '.join(labels)}); "
        "name one of them with --baseline"
    )


def _setup(
    config: RunConfig, subset_seed: int = SUBSET_SEED
) -> tuple[list[Unit], Any, Any, int, int, torch.device]:
    """Everything a user can get wrong, checked before any file is written."""
    activations = resolve_all(config.activations)
    for activation in activations:  # a user's own: does it train at all?
        check_trainable(activation, config.batch_size, config.hidden)
    baseline_label(config)
    device = choose_device(config.device)
    models = len(activations) * len(config.seed_list)
    workers, threads = plan_workers(models, device, config.workers, config.threads)
    torch.set_num_threads(threads if workers == 1 else cpu_cores())
    mnist = load_mnist(config.data_dir, download=config.download)
    data = prepare(mnist, config.subset, subset_seed, device, config.val, config.batch_size)
    units = [
        Unit(seed, i, a.label, a.given)
        for seed in config.seed_list
        for i, a in enumerate(activations)
    ]
    return units, data, mnist.md5, workers, threads, device


def _validation(data: Any) -> dict[str, Any] | None:
    """The manifest's record of the validation split (None without one)."""
    return data.val_split.record() if data.val_split is not None else None


def run_experiment(config: RunConfig, hooks: Hooks | None = None) -> RunResult:
    """Train one model per activation on MNIST and record every epoch in a new run folder.

    Everything a user can get wrong is checked before the run folder is created. Rows are
    written as each epoch finishes, and every model is checkpointed, so an interrupted run
    keeps its finished epochs and can be resumed; the manifest says how the run ended.
    """
    units, data, md5, workers, threads, device = _setup(config)
    run_dir = create_run_dir(Path(config.results_dir))
    with RunLock(run_dir):
        manifest = {
            "status": "running",
            "config": config.to_dict(),
            "activations": [u.label for u in units],
            "device": str(device),
            "workers": workers,
            "threads_per_worker": threads,
            "data": {"train_samples": len(data.train_x), "val_samples": config.val,
                     "test_samples": len(data.test_x), "md5": md5, "subset_seed": SUBSET_SEED},
            "validation": _validation(data),
            "versions": versions(),
            "command": ["actbench", *sys.argv[1:]],
            "started": _now(),
            "finished": None,
            "diverged": [],
            "resumed": [],
        }  # fmt: skip
        writer = RunWriter(run_dir, [u.label for u in units], manifest)
        return _execute(config, run_dir, writer, units, {}, set(), data, workers, threads,
                        hooks or Hooks())  # fmt: skip


def _resumed_config(run_dir: Path, saved: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    """The run's own settings with `overrides` applied; refuses any that change the results."""
    saved = dict(saved)
    if isinstance(saved.get("seed"), list):  # earlier versions also wrote the unused count
        saved.pop("seeds", None)
    if saved.get("optimizer") == "adam":  # earlier versions accepted a momentum Adam ignored
        saved["momentum"] = 0.0
    try:
        original = make_config(saved)
    except UsageError as err:  # the run folder's file is at fault, not the options
        raise ActbenchError(f"{run_dir / MANIFEST}: {err}") from None
    given = {key: value for key, value in overrides.items() if value is not None}
    config = make_config(given, original)
    changed = []
    for key in RESULT_KEYS:
        mine, theirs = getattr(config, key), getattr(original, key)
        if key == "seed":
            mine, theirs = config.seed_list, original.seed_list
        if key == "activations":
            mine = [a.label for a in resolve_all(mine)]
            theirs = [a.label for a in resolve_all(theirs)]
        if mine != theirs:
            changed.append(f"{key} {_show(mine)} (the run has {_show(theirs)})")
    if changed:
        raise UsageError(
            f"cannot resume {run_dir} with different settings: {'; '.join(changed)}; "
            "drop those options or start a new run"
        )
    return config


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _align(units: tuple[Unit, ...], states: dict[Unit, Any], store: CheckpointStore) -> None:
    """Put models that trained in lockstep back at one epoch, in place in `states`.

    A group's checkpoints are saved one file after another; a run killed outright half-way
    through leaves some models one epoch ahead. Those go back to their previous generation,
    so the group trains on together and the resumed numbers stay exactly those of an
    uninterrupted run (the epoch they lose is computed again, identically).
    """
    epochs = {u: states[u].epoch if states[u] is not None else 0 for u in units}
    latest = max(epochs.values())
    # models the last save should have reached: one epoch behind, and not diverged before
    behind = [
        u
        for u in units
        if epochs[u] == latest - 1 and not (states[u] is not None and states[u].diverged)
    ]
    if not behind:
        return
    for unit in units:
        if epochs[unit] != latest:
            continue
        if latest == 1:
            states[unit] = None  # back to the start, with the others
            continue
        previous = store.load(unit.index, unit.label, unit.seed, previous=True)
        if previous is not None and previous.epoch == latest - 1:
            states[unit] = previous


_KEEP = "start a new run (the rows stay as they are)"


def _same(mine: Any, theirs: Any) -> bool:
    """One CSV value against the checkpoint's: equal, both NaN, or equal as printed floats."""
    if isinstance(mine, float) or isinstance(theirs, float):
        a, b = float(mine), float(theirs)
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    return bool(mine == theirs)


def _check_rows(run_dir: Path, units: list[Unit], states: dict[Unit, Any]) -> None:
    """Refuse to resume where metrics.csv holds finished epochs the checkpoints do not hold
    (ActbenchError, exit code 1: the run folder's files, not the options, are at fault).

    A resume rewrites the CSV from the checkpoints, which hold every row of their model up to
    their epoch. So every model's rows in the CSV must be in its checkpoint, and be the same
    rows; otherwise resuming would throw finished epochs away (checkpoints deleted, one
    model's missing, only an older generation left) or mix two runs (checkpoints copied from
    another run). A checkpoint ahead of the CSV is fine: its extra rows are real epochs.
    """
    path = run_dir / METRICS
    if not path.exists():
        return
    frame = read_metrics(path)
    if frame.empty:
        return
    by_model = {(u.label, u.seed): u for u in units}
    behind: list[tuple[Unit, int, int]] = []
    for (label, seed), rows in frame.groupby(["activation", "seed"], sort=False):
        unit = by_model.get((label, seed))
        if unit is None:
            raise ActbenchError(
                f"{path} has rows of {label} (seed {seed}), which {run_dir} does not train; {_KEEP}"
            )
        state = states[unit]
        saved = {r.epoch: asdict(r) for r in state.rows} if state is not None else {}
        last = int(rows["epoch"].max())
        if last > (state.epoch if state is not None else 0):
            behind.append((unit, last, state.epoch if state is not None else 0))
            continue
        for row in rows.to_dict("records"):
            theirs = saved.get(row["epoch"])
            if theirs is None or not all(_same(v, theirs[k]) for k, v in row.items()):
                raise ActbenchError(
                    f"the checkpoint of {label} (seed {seed}) in {run_dir} does not match its "
                    f"epoch {row['epoch']} in {METRICS}: it comes from another run; {_KEEP}"
                )
    if not behind:
        return
    if all(states[u] is None for u in units):
        raise ActbenchError(
            f"{run_dir} has {int(frame['epoch'].max())} finished epochs in {METRICS} but no "
            f"checkpoints to continue from; {_KEEP}"
        )
    unit, last, epoch = behind[0]
    where = "it has no checkpoint" if epoch == 0 else f"its checkpoint ends at epoch {epoch}"
    more = f" (and {len(behind) - 1} more models)" if len(behind) > 1 else ""
    raise ActbenchError(
        f"{run_dir} cannot be resumed: {METRICS} has {last} finished epochs of {unit.label} "
        f"(seed {unit.seed}) but {where}{more}; restore its checkpoints or {_KEEP}"
    )


def _check_epochs(
    run_dir: Path, states: dict[Unit, Any], manifest: dict[str, Any], epochs: int
) -> None:
    """Refuse an `epochs` that trains nothing or fewer epochs than a model has finished.

    One rule, one number: the fewest epochs that train something and cut no model short
    (the furthest model's epochs, and one more than the least trained model that has not
    diverged); a complete run is extended by any number above its epochs.
    """
    finished = [s.epoch if s is not None else 0 for s in states.values()]
    growing = [s.epoch for s in states.values() if s is not None and not s.diverged]
    growing += [0 for s in states.values() if s is None]  # never started
    if not growing:
        raise UsageError(
            f"every model of {run_dir} diverged, so none can train on; start a new run"
        )
    most = max(finished)
    least = max(most, min(growing) + 1)
    if epochs >= least:
        return
    planned = manifest["config"].get("epochs", RunConfig().epochs)
    if min(growing) >= planned:
        raise UsageError(
            f"{run_dir} is complete with {most} epochs; to extend it, give --epochs {least} or more"
        )
    raise UsageError(
        f"{run_dir} has finished {most} of its {planned} epochs; to continue it, give "
        f"--epochs {least} or more (or no --epochs, for all {planned})"
    )


def resume_experiment(
    run_dir: Path | str, overrides: dict[str, Any] | None = None, hooks: Hooks | None = None
) -> RunResult:
    """Continue the run in `run_dir` from each model's last finished epoch.

    `overrides` may change how the run is computed (device, workers, data folder) and raise
    `epochs` to extend a finished run; settings that change what the models learn must stay.
    On a CPU, the resumed CSV equals the CSV of the same run never interrupted.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a folder; give a run folder to --resume")
    manifest = read_manifest(run_dir)
    if not is_run_manifest(manifest):
        raise UsageError(
            f"{run_dir} is not an actbench run folder (it has no {MANIFEST} with its "
            "settings); give a folder made by actbench run"
        )
    config = _resumed_config(run_dir, manifest["config"], overrides or {})
    with RunLock(run_dir):
        # runs made before the subset had a seed of its own drew it with their first seed
        subset_seed = manifest.get("data", {}).get("subset_seed", config.seed_list[0])
        units, data, md5, workers, threads, device = _setup(config, subset_seed)
        if md5 != manifest.get("data", {}).get("md5", md5):
            raise UsageError(
                f"the MNIST files in {config.data_dir} differ from those {run_dir} was trained "
                "on; point --data-dir at the original files"
            )
        split = _validation(data)
        if split != manifest.get("validation", split):
            torch_version = manifest.get("versions", {}).get("torch", "its manifest names")
            raise UsageError(
                f"the validation split drawn now differs from the one {run_dir} was trained "
                f"with (see 'validation' in its manifest); resume with torch {torch_version}"
            )
        store = CheckpointStore(run_dir)
        states = {u: store.load(u.index, u.label, u.seed) for u in units}
        _check_rows(run_dir, units, states)
        for jobs in plan_jobs(units, {}, set(), workers):
            for job in jobs:
                _align(job.units, states, store)
        # a group's rows are written after all its checkpoints: aligning never goes behind
        # them, unless a checkpoint was lost (refused above); checked again all the same
        _check_rows(run_dir, units, states)
        finished = {u: s.epoch for u, s in states.items() if s is not None}
        _check_epochs(run_dir, states, manifest, config.epochs)
        done = {
            u
            for u, s in states.items()
            if s is not None and (s.diverged or s.epoch >= config.epochs)
        }
        rows = [asdict(r) for s in states.values() if s is not None for r in s.rows]
        resumed = [*manifest.get("resumed", []), {"at": _now(), "epochs": config.epochs,
                   "device": str(device), "workers": workers}]  # fmt: skip
        manifest.update(
            status="running", config=config.to_dict(), finished=None, resumed=resumed,
            diverged=_diverged(rows), versions=versions(),
        )  # fmt: skip
        manifest.pop("error", None)
        writer = RunWriter(run_dir, [u.label for u in units], manifest, rows)
        return _execute(config, run_dir, writer, units, finished, done, data, workers, threads,
                        hooks or Hooks())  # fmt: skip
