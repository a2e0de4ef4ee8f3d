"""Which models train together, where, and from which epoch; and running such a plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from actbench.activations import resolve_all
from actbench.checkpoint import CheckpointStore
from actbench.config import RunConfig
from actbench.data import Tensors
from actbench.train import EpochResult, ModelState, steps_per_epoch, train_lockstep


@dataclass(frozen=True)
class Unit:
    """One model of a run: activation number `index` (named `label`) trained from `seed`."""

    seed: int
    index: int
    label: str
    spec: str = ""  # the activation as the user gave it ('sin=torch:sin'); '' = the label


@dataclass(frozen=True)
class Job:
    """Models that train in lockstep: one seed, one starting epoch (0 = from scratch)."""

    seed: int
    start_epoch: int
    units: tuple[Unit, ...]


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """`items` in `parts` contiguous groups whose sizes differ by at most one (none empty)."""
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(items[start:end])
        start = end
    return [g for g in groups if g]


def plan_jobs(
    units: list[Unit], finished: dict[Unit, int], done: set[Unit], workers: int
) -> list[list[Job]]:
    """The jobs of each worker process.

    All units are split over the workers the same way whether a run starts or resumes, so a
    resumed run groups its models exactly as the uninterrupted run would; units in `done`
    (complete or diverged) are then left out, and the rest grouped by seed and finished epoch.
    """
    plans = []
    for share in split(units, workers):
        todo = [u for u in share if u not in done]
        key = lambda u: (u.seed, finished.get(u, 0))  # noqa: E731
        jobs = [Job(seed, epoch, tuple(group)) for (seed, epoch), group in groupby(todo, key)]
        if jobs:
            plans.append(jobs)
    return plans


def total_steps(plans: list[list[Job]], config: RunConfig, samples: int) -> int:
    """Optimiser steps the plan takes (one step trains every model of a job)."""
    per_epoch = steps_per_epoch(samples, config.batch_size)
    return sum((config.epochs - job.start_epoch) * per_epoch for jobs in plans for job in jobs)


def _saver(store: CheckpointStore, job: Job) -> Callable[[list[ModelState]], None]:
    index = {u.label: u.index for u in job.units}

    def save(states: list[ModelState]) -> None:
        # the training loop holds interrupts meanwhile: the group is saved whole
        for state in states:
            store.save(index[state.activation], state)

    return save


def run_jobs(
    jobs: list[Job],
    data: Tensors,
    config: RunConfig,
    store: CheckpointStore | None,
    on_epoch: Callable[[list[EpochResult]], None] | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> None:
    """Train the jobs one after the other, saving every model's checkpoint after each epoch."""
    for job in jobs:
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
