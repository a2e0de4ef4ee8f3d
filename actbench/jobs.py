"""Which models train together, from which epoch, in what order; and training one such group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from actbench.activations import resolve_all
from actbench.checkpoint import CheckpointStore
from actbench.config import RunConfig
from actbench.data import Tensors
from actbench.train import EpochResult, ModelState, steps_per_epoch, train_lockstep


@dataclass(frozen=True)
class Unit:
    """One model of a run: activation `label` trained from `seed` in configuration `point`.

    `index` numbers the models of one seed across the whole run (configuration by
    configuration, activations in the run's order); it names the model's checkpoint file.
    """

    seed: int
    index: int
    label: str
    spec: str = ""  # the activation as the user gave it ('sin=torch:sin'); '' = the label
    point: int = 0  # the configuration of a study (0 in a run of one configuration)


@dataclass(frozen=True)
class Job:
    """Models that train in lockstep: one configuration, one seed, one starting epoch."""

    seed: int
    start_epoch: int
    units: tuple[Unit, ...]
    point: int = 0


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """`items` in `parts` contiguous groups whose sizes differ by at most one (none empty)."""
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(items[start:end])
        start = end
    return [g for g in groups if g]


def parts_per_group(groups: int, workers: int) -> int:
    """Into how many jobs `plan_jobs` splits each of `groups` groups for `workers` workers.

    1 where the groups already share out evenly (the workers divide their number) or are
    many (eight or more per worker); else the fewest parts that make a number of jobs the
    workers divide, or eight per worker: e.g. 3 groups on 2 workers, 2 parts (6 jobs); 6
    groups on 4 workers, 2 parts (12 jobs); 10 groups on 16 workers, 8 parts (80 jobs).
    A group of fewer models makes fewer jobs (`split`).
    """
    parts = 1
    while (groups * parts) % workers and groups * parts < 8 * workers:
        parts += 1
    return parts


def plan_jobs(
    units: list[Unit],
    finished: dict[Unit, int],
    done: set[Unit],
    workers: int = 1,
    weight: Callable[[Job], float] | None = None,
) -> list[Job]:
    """The groups of models to train, heaviest first, for `workers` processes to take in turn.

    Models of one configuration and seed train in lockstep (they see the same batches, so
    the first layer's product takes one batch for all of them). Models of different seeds are
    not grouped: they see different batches, so they would share no product, and every other
    operation runs model by model already (what keeps each model's numbers its own). Where
    those groups are too few to share out evenly over the workers (fewer than eight per
    worker, in a number the workers do not divide), each is split into as few parts as make
    a number of jobs the workers divide (`parts_per_group`), so no core idles while another
    trains the last group, and no more jobs are made than that needs. Units in `done`
    (complete or diverged) are left out; the rest are grouped further by the epoch they had
    finished (a resume).
    `weight` orders the jobs, heaviest first (the order of the run where None); a model's
    numbers do not depend on its group, so neither does the CSV.
    """
    groups: dict[tuple[int, int], list[Unit]] = {}
    for unit in units:
        groups.setdefault((unit.point, unit.seed), []).append(unit)
    parts = parts_per_group(len(groups), workers)
    jobs = []
    for (point, seed), members in groups.items():
        for share in split(members, parts):
            by_epoch: dict[int, list[Unit]] = {}
            for unit in share:
                if unit not in done:
                    by_epoch.setdefault(finished.get(unit, 0), []).append(unit)
            jobs += [Job(seed, epoch, tuple(us), point) for epoch, us in by_epoch.items()]
    if weight is not None:
        jobs.sort(key=weight, reverse=True)  # stable: equal weights keep the run's order
    return jobs


def total_steps(jobs: list[Job], configs: Sequence[RunConfig], samples: Sequence[int]) -> int:
    """Optimiser steps the jobs take (one step trains every model of a job).

    `configs[p]` and `samples[p]` are configuration p's settings and training-set size.
    """
    return sum(
        (configs[j.point].epochs - j.start_epoch)
        * steps_per_epoch(samples[j.point], configs[j.point].batch_size)
        for j in jobs
    )


def _saver(store: CheckpointStore, job: Job) -> Callable[[list[ModelState]], None]:
    index = {u.label: u.index for u in job.units}

    def save(states: list[ModelState]) -> None:
        # the training loop holds interrupts meanwhile: the group is saved whole
        for state in states:
            store.save(index[state.activation], state)

    return save


def run_job(
    job: Job,
    data: Tensors,
    config: RunConfig,
    store: CheckpointStore | None,
    on_epoch: Callable[[list[EpochResult]], None] | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> None:
    """Train one job's models to `config.epochs`, saving each model's checkpoint every epoch.

    `config` and `data` are the job's configuration and its data set.
    """
    start: list[ModelState] | None = None
    if job.start_epoch:  # each model's checkpoint after that epoch
        if store is None:
            raise ValueError("resuming needs the run's checkpoints")
        start = [store.load_at(u.index, u.label, u.seed, job.start_epoch) for u in job.units]
    train_lockstep(
        resolve_all([u.spec or u.label for u in job.units]),
        data,
        config,
        job.seed,
        on_epoch=on_epoch,
        on_steps=on_steps,
        start=start,
        on_checkpoint=_saver(store, job) if store is not None else None,
    )


def run_jobs(
    jobs: list[Job],
    data: Sequence[Tensors],
    configs: Sequence[RunConfig],
    store: CheckpointStore | None,
    on_epoch: Callable[[int, list[EpochResult]], None] | None = None,
    on_steps: Callable[[int, int], None] | None = None,
) -> None:
    """Train `jobs` one after the other in this process.

    `data[p]` and `configs[p]` belong to configuration p; `on_epoch(job, rows)` and
    `on_steps(job, steps)` name the job by its position in `jobs`.
    """
    for number, job in enumerate(jobs):
        run_job(
            job,
            data[job.point],
            configs[job.point],
            store,
            on_epoch=None if on_epoch is None else lambda rows, n=number: on_epoch(n, rows),
            on_steps=None if on_steps is None else lambda s, n=number: on_steps(n, s),
        )
