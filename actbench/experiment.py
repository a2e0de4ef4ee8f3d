"""One `actbench run` as a library call: settings in, a run folder with CSV and manifest out.

A run can also be resumed: `resume_experiment` continues an interrupted run (or extends a
finished one with more epochs) from the per-model checkpoints in its folder.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from actbench.activations import check_trainable, resolve_all
from actbench.checkpoint import CheckpointStore
from actbench.config import RunConfig, make_config
from actbench.cost import COST, measure_config_cost, measure_run_cost, write_cost
from actbench.data import SUBSET_SEED, load_dataset, prepare
from actbench.datasets import MNIST1D, title
from actbench.errors import ActbenchError, OutputClosed, UsageError
from actbench.jobs import Unit, plan_jobs, run_jobs
from actbench.model import parameter_count
from actbench.names import keys_only, setting
from actbench.parallel import time_worker_start, train_in_workers
from actbench.progress import EpochLines, Group, StepRouter, plan_groups
from actbench.results import (
    COLUMNS,
    MANIFEST,
    METRICS,
    SETTINGS,
    RunLock,
    RunWriter,
    create_run_dir,
    is_run_manifest,
    read_manifest,
    read_metrics,
    setting_key,
    settings_of,
)
from actbench.runtime import (
    check_disk,
    check_fits,
    checkpoint_bytes,
    choose_device,
    cpu_cores,
    plan_workers,
    versions,
)
from actbench.signals import signals_held
from actbench.study import StudyPlan, describe, job_weight, plan_study
from actbench.train import EpochResult, deeper_columns, health_columns, steps_per_epoch

# Settings that change what the models learn: a resumed run must keep every one of them.
RESULT_KEYS = (
    "activations",
    "hidden",
    "depth",
    "init",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "seed",
    "subset",
    "val",
    "dataset",
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
    # a group's epoch run again on Ray, its worker or node lost: the manifest's retry record
    on_retry: Callable[[dict[str, Any]], None] | None = None


def _runs_inside(folder: Path) -> list[Path]:
    """The run folders directly inside `folder`, by name (for a hint: unreadable ones are
    passed over)."""
    found = []
    with contextlib.suppress(OSError):
        for child in folder.iterdir():
            with contextlib.suppress(OSError, ActbenchError):
                if child.is_dir() and is_run_manifest(read_manifest(child)):
                    found.append(child)
    return sorted(found)


def _recorded(config: RunConfig) -> dict[str, Any]:
    """The settings as the manifest keeps them: the data folder as an absolute path, so that
    `--resume` finds the data from any working directory."""
    return {**config.to_dict(), "data_dir": os.path.abspath(config.data_dir)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _diverged(rows: list[dict[str, Any]], grid: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The manifest's list of diverged models (with the settings a study varies)."""
    return [
        {"activation": r["activation"], **{k: r[k] for k in grid}, "seed": r["seed"],
         "epoch": r["epoch"]}
        for r in rows
        if r["status"] == "diverged"
    ]  # fmt: skip


def _record_end(writer: RunWriter, ending: Callable[[], dict[str, Any]]) -> BaseException | None:
    """Write how the run ended: the CSV in the run's order, then the manifest's `ending()`
    (its status and what goes with it), whatever interrupts arrive meanwhile.

    An interrupt held or cut in while this is written is returned (the first; None: none
    came), for the caller to act on once the ending is recorded. The manifest is written even
    where the CSV cannot be rewritten: every row is in the file already, appended as its
    epoch ended; the error is raised after it.
    """
    interrupt: BaseException | None = None
    recorded = False
    while not recorded:
        try:
            with signals_held():
                try:
                    writer.finish()
                finally:
                    writer.update(**ending())
                recorded = True
        except KeyboardInterrupt as err:  # the run is ending already: record how first
            interrupt = interrupt or err
    return interrupt


def _trained(writer: RunWriter, units: list[Unit], epochs: int) -> bool:
    """Whether every model of the run has its last epoch (or the epoch it diverged at) in
    `writer`'s rows: nothing is left to train."""
    ended = {
        (writer.point_of(row), row["seed"], row["activation"])
        for row in writer.rows
        if row["epoch"] >= epochs or row["status"] == "diverged"
    }
    return all((u.point, u.seed, u.label) in ended for u in units)


def _execute(
    config: RunConfig,
    run_dir: Path,
    new_writer: Callable[[], RunWriter],
    units: list[Unit],
    finished: dict[Unit, int],
    done: set[Unit],
    data: list[Any],
    workers: int,
    threads: int,
    hooks: Hooks,
    device: torch.device | None = None,
    cluster: Any = None,
) -> RunResult:
    """Train what is left of the run and keep the folder's CSV and manifest up to date.

    `new_writer()` makes the run's `RunWriter`, whose manifest says "running"; from then on
    every ending is recorded in it: "completed", "interrupted" (with a `reason` where the
    interrupt gave one: `OutputClosed`) or "failed" (with the `error`).

    A run is "completed" once every model has trained its epochs and their rows are written,
    and it stays so when an interrupt (Ctrl-C, SIGTERM, a closed output) comes after that:
    while its final CSV and manifest are written (recorded first, then the interrupt acts),
    or while the activations' cost is measured (no `cost.csv`). Calling it "interrupted"
    would offer a resume with nothing to train, which `resume_experiment` refuses; what was
    cut short is the cost measurement, and the missing `cost.csv` says so.

    `data[p]` is configuration p's data set (one object per data set, shared); `cluster`,
    where given, is the Ray cluster that trains it (`ray_cluster.Cluster`), on `device`.
    """
    points = config.points()
    grid = config.varying
    collector: EpochLines | None = None
    writer: RunWriter | None = None
    jobs: list[Any] = []

    def on_epoch(number: int, rows: list[EpochResult]) -> None:
        assert writer is not None
        writer.add(rows, jobs[number].point)  # at once: workers report their models separately
        if any(r.status == "diverged" for r in rows):
            writer.update(diverged=_diverged(writer.rows, grid))
        if collector is not None:
            collector.add(rows)
        elif hooks.on_epoch is not None:
            hooks.on_epoch(rows)

    def on_retry(retry: dict[str, Any]) -> None:  # a group lost with its Ray worker or node
        assert writer is not None
        point = points[retry["point"]]
        record = {"at": _now(), "activations": retry["activations"],
                  **{k: getattr(point, k) for k in grid},
                  **{k: retry[k] for k in ("seed", "epoch", "attempt", "cause")}}  # fmt: skip
        writer.update(retries=[*writer.manifest.get("retries", []), record])
        if hooks.on_retry is not None:
            hooks.on_retry(record)

    def on_tasks(tasks: dict[str, Any]) -> None:  # this session's Ray tasks, in its record
        assert writer is not None
        sessions = writer.manifest.get("resumed") or []
        session = sessions[-1] if sessions else writer.manifest
        session["backend"] = {**session.get("backend", {}), **tasks}
        writer.write_manifest()

    def interrupted(err: BaseException) -> dict[str, Any]:
        assert writer is not None
        if _trained(writer, units, config.epochs):  # every epoch was in: see the docstring
            return {"status": "completed", "finished": _now()}
        reason = {"reason": err.reason} if isinstance(err, OutputClosed) else {}
        return {"status": "interrupted", "finished": _now(), **reason,
                "resume": f"actbench run --resume {Path(run_dir).resolve()}"}  # fmt: skip

    ending: BaseException | None = None
    try:
        with signals_held():  # the writer is made whole, or not at all
            writer = new_writer()
        store = CheckpointStore(run_dir)
        per_epoch = [
            steps_per_epoch(len(d.train_x), p.batch_size) for d, p in zip(data, points, strict=True)
        ]
        weight = lambda job: job_weight(job, points[job.point], data[job.point])  # noqa: E731
        jobs = plan_jobs(units, finished, done, workers, weight)
        settings = [describe(p, grid) for p in points] if grid else []
        groups = plan_groups(jobs, config.epochs, per_epoch, settings)
        if hooks.on_start is not None:
            hooks.on_start(run_dir, groups, config)
        steps = StepRouter(groups, hooks.on_steps)
        if not grid:  # a study's rows go to the CSV only: lines per epoch would flood
            known = {f.name for f in fields(EpochResult)}
            earlier = [
                EpochResult(**{k: v for k, v in r.items() if k in known}) for r in writer.rows
            ]
            collector = EpochLines(units, config.epochs, hooks.on_epoch, finished, earlier, done)
        if cluster is not None:  # left by the caller (`_leaving`), after the cost is measured
            from actbench.ray_backend import train_on_ray

            tasks = train_on_ray(jobs, data, points, store, config.workers, threads,
                                 on_epoch, steps.add, cluster=cluster, device=device,
                                 on_retry=on_retry)  # fmt: skip
            on_tasks(tasks)
        elif workers == 1 or len(jobs) == 1:
            run_jobs(jobs, data, points, store, on_epoch, steps.add)
        elif jobs:
            train_in_workers(jobs, data, points, store, workers, threads, on_epoch, steps.add)
        ending = _record_end(writer, lambda: {"status": "completed", "finished": _now()})
    except KeyboardInterrupt as err:
        cause = err
        if writer is not None:
            _record_end(writer, lambda: interrupted(cause))
        if collector is not None:
            collector.flush()  # the epochs finished so far, shown even where a seed is incomplete
        raise
    except BaseException as err:
        if writer is not None:
            failed = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            # the disk that failed the run may refuse this too; the error says so already
            with contextlib.suppress(ActbenchError):
                _record_end(writer, lambda: {**failed, "finished": _now()})
        if collector is not None:
            collector.flush()
        raise
    if ending is not None:  # recorded complete; the cost measurement below is what it stops
        raise ending
    if cluster is None:
        measure_run_cost(run_dir, points[0])  # on quiet cores, now that training is over
    elif not (run_dir / COST).exists():  # where the models trained, on its device
        from actbench.ray_backend import measure_cost_on_ray

        write_cost(run_dir, measure_cost_on_ray(points[0], cluster, device, threads,
                                                meanwhile=_import_summaries))  # fmt: skip
    return RunResult(run_dir, pd.DataFrame(writer.rows), writer.manifest)


def _import_summaries() -> None:
    """Import what the tables printed at a run's end need (scipy, statsmodels): a second or
    so, spent while the cluster measures the activations' cost rather than after it."""
    import actbench.summary  # noqa: F401


@contextlib.contextmanager
def _leaving(cluster: Any) -> Iterator[None]:
    """Leave the Ray cluster `cluster` (None: none) when the block ends, however it ends."""
    try:
        yield
    finally:
        if cluster is not None:
            from actbench.ray_cluster import disconnect

            disconnect(cluster)


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
        f"{setting('baseline')} {config.baseline!r} is not one of the activations "
        f"({', '.join(labels)}); name one of them with --baseline"
    )


def _setup(
    config: RunConfig, subset_seed: int = SUBSET_SEED
) -> tuple[list[Unit], list[Any], Any, int, int, torch.device, Any]:
    """Everything a user can get wrong, checked before any file is written.

    Returns the run's models, each configuration's data set (one object per data set), the
    data files' checksums, the worker processes and threads, the device, and the Ray cluster
    (`ray_cluster.Cluster`; None on the local backend), connected.
    """
    activations = resolve_all(config.activations)
    points = config.points()
    for shape in dict.fromkeys((p.batch_size, p.hidden) for p in points):
        for activation in activations:  # a user's own: does it train at all?
            check_trainable(activation, *shape)
    baseline_label(config)
    models = len(activations) * len(config.seed_list) * len(points)
    cluster = None
    if config.backend == "ray":  # the data stays on the CPU here: each task moves its own
        device = here = torch.device("cpu")
        workers, threads = 0, config.threads or 1
    else:
        device = here = choose_device(config.device)
        workers, threads = plan_workers(models, device, config.workers, config.threads)
        torch.set_num_threads(threads if workers == 1 else cpu_cores())
    most = max(p.batch_size for p in points)  # the split must leave a batch of each
    loaded: dict[str, Any] = {}
    for name in dict.fromkeys(p.dataset for p in points):  # each data set once, shared
        raw = load_dataset(name, config.data_dir, download=config.download)
        loaded[name] = (prepare(raw, config.subset, subset_seed, here, config.val, most),
                        raw.md5)  # fmt: skip
    data = [loaded[p.dataset][0] for p in points]
    for p, d in zip(points, data, strict=True):
        weights = parameter_count(d.inputs, p.hidden, p.depth, d.classes, biases=False)
        check_fits(weights, f"{setting('hidden')} {p.hidden} at {setting('depth')} {p.depth}")
    md5 = {name: sums for name, (_, sums) in loaded.items()}
    md5 = next(iter(md5.values())) if len(md5) == 1 else md5
    if config.backend == "ray":  # last: starting a Ray takes a while, and the rest is quick
        from actbench import ray_cluster

        cluster = ray_cluster.connect(config.address)
        device = ray_cluster.choose_device(config.device, cluster)
        workers, threads = ray_cluster.plan_workers(
            cluster, models, device, config.workers, config.threads
        )
    n = len(activations)
    units = [
        Unit(seed, p * n + i, a.label, a.given, p)
        for seed in config.seed_list
        for p in range(len(points))
        for i, a in enumerate(activations)
    ]
    return units, data, md5, workers, threads, device, cluster


def _backend(config: RunConfig, cluster: Any) -> dict[str, Any]:
    """The manifest's record of where the run trains: local, or the Ray cluster."""
    return cluster.record() if cluster is not None else {"name": config.backend}


def dry_run(
    config: RunConfig, started: float | None = None, clock: Callable[[], float] = time.perf_counter
) -> StudyPlan:
    """What `run_experiment(config)` would train and an estimate of how long, writing nothing.

    Every check of a real run is made first (the same errors), and its data loaded. The
    estimate adds what a run spends besides training, measured here as it happens: the
    start-up, from `started` (a `clock()` reading; the command's own start, so that its
    imports count; default: now) until the data is loaded and checked; the measurement of
    the activations' cost a run makes once training is over (`cost.measure_config_cost`),
    run here; and the start of the worker processes a local run would train in
    (`parallel.time_worker_start`), started here and ended. Training is estimated from a few
    steps of each shape of model on this machine (`study.plan_study`). Left out: the
    interpreter's own start before `started` and its exit, writing the run's files to disk,
    and on Ray, its tasks' start on the cluster.
    """
    started = clock() if started is None else started
    units, data, _, workers, threads, _, cluster = _setup(config)
    _check_disk(config, config.points(), data, len(units) // len(config.points()))
    if cluster is not None:
        from actbench.ray_cluster import disconnect

        disconnect(cluster)
    ready = clock()
    measure_config_cost(config.points()[0])  # as a run does after training
    cost = clock() - ready
    processes = 0
    if config.backend == "local" and workers > 1:  # as `_execute` trains them
        processes = min(workers, len(plan_jobs(units, {}, set(), workers)))
        processes = processes if processes > 1 else 0
    torch.set_num_threads(threads)  # as each worker will train
    process_start = time_worker_start(data, processes, threads, clock) if processes else 0.0
    activations = resolve_all(config.activations)
    return plan_study(config, activations, data, workers, startup=ready - started, cost=cost,
                      processes=processes, process_start=process_start)  # fmt: skip


def _validation(data: list[Any]) -> dict[str, Any] | None:
    """The manifest's record of the validation split (None without one)."""
    return data[0].val_split.record() if data[0].val_split is not None else None


def _study(config: RunConfig) -> dict[str, Any]:
    """The manifest's record of a study's grid: the lists and every configuration."""
    if not config.is_grid:
        return {}
    return {"grid": {k: list(v) for k, v in config.grid.items()},
            "configurations": [settings_of(p) for p in config.points()]}  # fmt: skip


def _check_disk(config: RunConfig, points: list[RunConfig], data: list[Any], each: int) -> None:
    """Refuse a run whose checkpoints cannot fit on its results folder's disk (`each` models
    per configuration)."""
    need = 0
    for p, d in zip(points, data, strict=True):
        params = parameter_count(d.inputs, p.hidden, p.depth, d.classes)
        tensors = 2 if p.optimizer == "adam" else 1 if p.momentum else 0
        need += each * checkpoint_bytes(params, tensors)
    check_disk(Path(config.results_dir), need, each * len(points))


def run_experiment(config: RunConfig, hooks: Hooks | None = None) -> RunResult:
    """Train one model per activation on MNIST and record every epoch in a new run folder.

    Everything a user can get wrong is checked before the run folder is created. Rows are
    written as each epoch finishes, and every model is checkpointed, so an interrupted run
    keeps its finished epochs and can be resumed; the manifest says how the run ended.
    """
    units, data, md5, workers, threads, device, cluster = _setup(config)
    with _leaving(cluster):
        return _start(config, hooks, units, data, md5, workers, threads, device, cluster)


def _start(
    config: RunConfig,
    hooks: Hooks | None,
    units: list[Unit],
    data: list[Any],
    md5: dict[str, str],
    workers: int,
    threads: int,
    device: torch.device,
    cluster: Any,
) -> RunResult:
    """`run_experiment` once the run is set up: its folder, manifest and training."""
    points = config.points()
    _check_disk(config, points, data, len(units) // len(points))
    run_dir = create_run_dir(Path(config.results_dir))
    with RunLock(run_dir):
        manifest = {
            "status": "running",
            "config": _recorded(config),
            "activations": _labels(units),
            "device": str(device),
            "workers": workers,
            "threads_per_worker": threads,
            "backend": _backend(config, cluster),
            **_study(config),
            "data": {**data[0].record(), "train_samples": len(data[0].train_x),
                     "val_samples": config.val, "test_samples": len(data[0].test_x), "md5": md5,
                     "subset_seed": SUBSET_SEED},
            "datasets": {d.dataset: {**d.record(), "train_samples": len(d.train_x),
                         "test_samples": len(d.test_x)} for d in {id(d): d for d in data}.values()},
            "validation": _validation(data),
            "versions": versions(),
            "command": ["actbench", *sys.argv[1:]],
            "started": _now(),
            "finished": None,
            "diverged": [],
            "retries": [],
            "resumed": [],
        }  # fmt: skip
        writer = lambda: RunWriter(run_dir, _labels(units), manifest,  # noqa: E731
                                   settings=[settings_of(p) for p in points],
                                   columns=_columns(points))  # fmt: skip
        return _execute(config, run_dir, writer, units, {}, set(), data, workers, threads,
                        hooks or Hooks(), device, cluster)  # fmt: skip


def _resumed_config(run_dir: Path, saved: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    """The run's own settings with `overrides` applied; refuses any that change the results."""
    saved = dict(saved)
    if isinstance(saved.get("seed"), list):  # earlier versions also wrote the unused count
        saved.pop("seeds", None)
    if saved.get("optimizer") == "adam":  # earlier versions accepted a momentum Adam ignored
        saved["momentum"] = 0.0
    try:
        with keys_only():  # the run's own settings, named by their keys
            original = make_config(saved)
    except UsageError as err:  # the run folder's file is at fault, not the options
        raise ActbenchError(f"{run_dir / MANIFEST}: {err}") from None
    given = {key: value for key, value in overrides.items() if value is not None}
    if str(given.get("backend", "")).lower() == "local":  # the run's Ray address stays behind
        given.setdefault("address", None)
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
            changed.append(f"{setting(key)} {_show(mine)} ({_the_run(key, theirs)})")
    if changed:
        raise UsageError(
            f"cannot resume {run_dir} with different settings: {'; '.join(changed)}; "
            "drop those options or start a new run"
        )
    return config


def _columns(points: list[RunConfig]) -> list[str]:
    """The CSV's columns: every row's, and the unit health of the deepest network's layers."""
    return [*COLUMNS, *deeper_columns(health_columns(max(p.depth for p in points)))]


def _labels(units: list[Unit]) -> list[str]:
    """The run's activation labels, each once, in the run's order."""
    return list(dict.fromkeys(u.label for u in units))


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _the_run(key: str, value: Any) -> str:
    """What a run's setting was, in words: 'the run used 0.001', 'the run used the full
    data set' (no subset), 'the run had no validation split' (val 0)."""
    if key == "subset" and value is None:
        return "the run used the full data set"
    if key == "val" and value == 0:
        return "the run had no validation split"
    return f"the run used {_show(value)}"


def _align(
    units: tuple[Unit, ...], states: dict[Unit, Any], store: CheckpointStore, csv: dict[Unit, int]
) -> None:
    """Put models that trained in lockstep back at one epoch, in place in `states`.

    A group's checkpoints are saved one file after another, and its rows written after all
    of them; a run killed outright half-way through leaves some models one epoch ahead of
    the others and of the CSV (`csv`: each model's last epoch there). Those go back to their
    previous generation, so the group trains on together and the resumed numbers stay
    exactly those of an uninterrupted run (the epoch they lose is computed again,
    identically). A model whose epoch is in the CSV is never sent back.
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
        if epochs[unit] != latest or csv.get(unit, 0) >= latest:
            continue
        if latest == 1:
            states[unit] = None  # back to the start, with the others
            continue
        previous = store.load(unit.index, unit.label, unit.seed, previous=True)
        if previous is not None and previous.epoch == latest - 1:
            states[unit] = previous


def _csv_groups(
    frame: pd.DataFrame, units: list[Unit], points: list[RunConfig]
) -> Iterator[tuple[str, int, Unit | None, pd.DataFrame]]:
    """The CSV's rows model by model: activation, seed, the run's model (None if not one).

    A row belongs to the configuration its settings columns name; rows of runs made before
    rows named their settings belong to the only configuration.
    """
    by_model = {(u.label, u.seed, u.point): u for u in units}
    if frame[list(SETTINGS)].isna().all().all():
        frame = frame.assign(**settings_of(points[0]))
    keys = {setting_key(settings_of(p)): i for i, p in enumerate(points)}
    for values, rows in frame.groupby(["activation", "seed", *SETTINGS], sort=False):
        label, seed, *rest = values
        point = keys.get(setting_key(dict(zip(SETTINGS, rest, strict=True))), -1)
        yield label, int(seed), by_model.get((label, seed, point)), rows


def _csv_epochs(run_dir: Path, units: list[Unit], points: list[RunConfig]) -> dict[Unit, int]:
    """Each model's last epoch in the run's CSV."""
    path = run_dir / METRICS
    if not path.exists():
        return {}
    frame = read_metrics(path)
    return {
        unit: int(rows["epoch"].max())
        for _, _, unit, rows in _csv_groups(frame, units, points)
        if unit is not None
    }


_KEEP = "start a new run (the rows stay as they are)"


def _same(mine: Any, theirs: Any) -> bool:
    """One CSV value against the checkpoint's: equal, both NaN, or equal as printed floats."""
    if isinstance(mine, float) or isinstance(theirs, float):
        a, b = float(mine), float(theirs)
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    return bool(mine == theirs)


def _check_rows(
    run_dir: Path, units: list[Unit], states: dict[Unit, Any], points: list[RunConfig]
) -> None:
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
    behind: list[tuple[Unit, int, int]] = []
    for label, seed, unit, rows in _csv_groups(frame, units, points):
        if unit is None:
            raise ActbenchError(
                f"{path} has rows of {label} (seed {seed}), which {run_dir} does not train; {_KEEP}"
            )
        state = states[unit]
        saved = {r.epoch: r.as_row() for r in state.rows} if state is not None else {}
        last = int(rows["epoch"].max())
        if last > (state.epoch if state is not None else 0):
            behind.append((unit, last, state.epoch if state is not None else 0))
            continue
        for row in rows.to_dict("records"):
            theirs = saved.get(row["epoch"])
            if theirs is None or not all(
                _same(v, theirs[k]) for k, v in row.items() if k in theirs
            ):
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
            f"{run_dir} is complete with {most} epoch{'s' * (most != 1)}; to extend it, give --epochs {least} or more"
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
        inside = _runs_inside(run_dir)
        hint = "give a folder made by actbench run"
        if len(inside) == 1:
            hint = f"did you mean the run inside it, {inside[0]}?"
        elif inside:
            hint = f"give one of the {len(inside)} runs inside it, such as {inside[-1]}"
        raise UsageError(
            f"{run_dir} is not an actbench run folder (it has no {MANIFEST} with its "
            f"settings); {hint}"
        )
    config = _resumed_config(run_dir, manifest["config"], overrides or {})
    with RunLock(run_dir):
        # runs made before the subset had a seed of its own drew it with their first seed
        subset_seed = manifest.get("data", {}).get("subset_seed", config.seed_list[0])
        units, data, md5, workers, threads, device, cluster = _setup(config, subset_seed)
        with _leaving(cluster):
            if md5 != manifest.get("data", {}).get("md5", md5):
                what = f"{title(config.dataset)} files in {config.data_dir}"
                fix = "point --data-dir at the original files"
                if config.dataset == MNIST1D.key:  # generated: only other versions make other data
                    what = "MNIST-1D arrays generated now"
                    fix = "resume with the mnist1d and numpy versions its manifest names"
                raise UsageError(f"the {what} differ from those {run_dir} was trained on; {fix}")
            split = _validation(data)
            if split != manifest.get("validation", split):
                torch_version = manifest.get("versions", {}).get("torch", "its manifest names")
                raise UsageError(
                    f"the validation split drawn now differs from the one {run_dir} was trained "
                    f"with (see 'validation' in its manifest); resume with torch {torch_version}"
                )
            store = CheckpointStore(run_dir)
            states = {u: store.load(u.index, u.label, u.seed) for u in units}
            points = config.points()
            _check_rows(run_dir, units, states, points)
            csv = _csv_epochs(run_dir, units, points)
            for job in plan_jobs(units, {}, set()):  # each configuration and seed trains together
                _align(job.units, states, store, csv)
            # aligning never goes behind the CSV's rows; checked again all the same
            _check_rows(run_dir, units, states, points)
            finished = {u: s.epoch for u, s in states.items() if s is not None}
            _check_epochs(run_dir, states, manifest, config.epochs)
            done = {
                u
                for u, s in states.items()
                if s is not None and (s.diverged or s.epoch >= config.epochs)
            }
            settings = [settings_of(p) for p in points]
            rows = [
                {**r.as_row(), **settings[u.point]}
                for u, s in states.items()
                if s is not None
                for r in s.rows
            ]
            resumed = [*manifest.get("resumed", []), {"at": _now(), "epochs": config.epochs,
                       "device": str(device), "workers": workers,
                       "backend": _backend(config, cluster)}]  # fmt: skip
            manifest.update(
                status="running", config=_recorded(config), finished=None, resumed=resumed,
                diverged=_diverged(rows, config.varying), versions=versions(),
            )  # fmt: skip
            manifest.pop("error", None)
            manifest.pop("reason", None)
            manifest.pop("resume", None)
            writer = lambda: RunWriter(  # noqa: E731
                run_dir, _labels(units), manifest, rows, settings, _columns(points)
            )
            return _execute(config, run_dir, writer, units, finished, done, data, workers, threads,
                            hooks or Hooks(), device, cluster)  # fmt: skip
