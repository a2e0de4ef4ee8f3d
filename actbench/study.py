"""A study's configurations as people read them, and how heavy each group of models is."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from actbench.config import RunConfig
from actbench.jobs import Job
from actbench.model import parameter_count
from actbench.names import config_name
from actbench.train import steps_per_epoch, train_lockstep


def describe(point: RunConfig, keys: tuple[str, ...]) -> str:
    """'depth=8 lr=0.01': a configuration's values of the settings a study varies (`keys`),
    named as its report names it (`names.config_name`)."""
    return config_name({key: getattr(point, key) for key in keys})


def job_weight(job: Job, point: RunConfig, data: Any) -> float:
    """A job's work in multiply-adds, for ordering jobs heaviest first.

    Models x epochs left x training samples x weights per model (every linear layer's
    inputs x outputs); the cost of evaluation and of the activation itself is left out.
    """
    weights = parameter_count(data.train_x.shape[1], point.hidden, getattr(point, "depth", 2),
                              int(getattr(data, "classes", 10)), biases=False)  # fmt: skip
    return len(job.units) * (point.epochs - job.start_epoch) * len(data.train_x) * weights


@dataclass(frozen=True)
class StudyPlan:
    """What a run or study would train, and about how long it would take here (seconds)."""

    configurations: list[str]  # each described by the settings the study varies
    activations: int
    seeds: int
    models: int  # configurations x activations x seeds
    model_epochs: int  # models x epochs
    workers: int
    seconds: float  # estimated training time, from a short measurement on this machine
    startup: float = 0.0  # before training: imports, loading the data, the checks (measured)
    cost: float = 0.0  # after training: measuring the activations' cost (measured)
    processes: int = 0  # worker processes the run starts; 0: it trains in its own process
    process_start: float = 0.0  # starting those processes and ending them (measured)

    @property
    def total(self) -> float:
        """The whole run's estimated time: start-up, the workers' start, training and the
        cost measurement."""
        return self.startup + self.process_start + self.seconds + self.cost


def measure_model_epoch(
    activations: list[Any],
    point: RunConfig,
    data: Any,
    steps: int = 32,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds one model takes for one epoch of `point` on this machine, training in lockstep
    with `activations`' other models as it would in the run.

    Trains the group for one epoch on the first 2 x `steps` batches of `data` (its whole test
    and validation sets kept): the time per optimiser step after the first report of steps
    (warm-up; where the sample holds no more steps than one report, from the start instead),
    scaled to the epoch's batches, plus what follows them (test and validation passes, unit
    health, serialising each model's checkpoint as a run saves it, in memory), divided by the
    group's models. Writing the checkpoint files is left out.
    """
    batch = point.batch_size
    count = min(len(data.train_x), 2 * steps * batch)
    sample = dataclasses.replace(data, train_x=data.train_x[:count], train_y=data.train_y[:count])
    marks: list[tuple[float, int]] = []  # (clock, optimiser steps taken so far) at each report
    ended: list[float] = []

    def on_steps(n: int) -> None:
        marks.append((clock(), (marks[-1][1] if marks else 0) + n))

    def on_checkpoint(states: list[Any]) -> None:  # as `CheckpointStore.save`, but no file
        for state in states:
            torch.save(state.to_dict(), io.BytesIO())

    begun = clock()
    train_lockstep(activations, sample, replace(point, epochs=1), 0, on_steps=on_steps,
                   on_epoch=lambda rows: ended.append(clock()),
                   on_checkpoint=on_checkpoint)  # fmt: skip
    per_step = 0.0
    if len(marks) > 1:
        (first, before), (last, taken) = marks[0], marks[-1]
        per_step = (last - first) / (taken - before)
    elif marks:
        per_step = (marks[0][0] - begun) / marks[0][1]
    after = ended[0] - marks[-1][0] if ended and marks else 0.0
    epoch = per_step * steps_per_epoch(len(data.train_x), batch) + after
    return epoch / len(activations)


def plan_study(
    config: RunConfig,
    activations: list[Any],
    data: list[Any],
    workers: int,
    *,
    startup: float = 0.0,
    cost: float = 0.0,
    processes: int = 0,
    process_start: float = 0.0,
    measure: Callable[[list[Any], RunConfig, Any], float] = measure_model_epoch,
) -> StudyPlan:
    """The study's size and an estimate of its time on `workers` processes.

    `data[p]` is configuration p's data set. Each distinct shape of model (data set, depth,
    width, batch size, optimiser) is measured once: `measure(activations, point, data)`, the
    seconds of one model-epoch (`measure_model_epoch`). Training takes the sum over models of
    their epochs' seconds, shared by min(`workers`, models) processes; `startup`, `cost` and
    `process_start` (of the run's `processes` workers), the seconds measured besides
    training, are added as they are (`StudyPlan.total`).
    """
    points = config.points()
    keys = config.varying
    seeds = len(config.seed_list)
    measured: dict[tuple[Any, ...], float] = {}
    total = 0.0
    for point, points_data in zip(points, data, strict=True):
        shape = (id(points_data), getattr(point, "depth", 2), point.hidden, point.batch_size,
                 point.optimizer)  # fmt: skip
        if shape not in measured:
            measured[shape] = measure(activations, point, points_data)
        total += measured[shape] * len(activations) * seeds * config.epochs
    models = len(points) * len(activations) * seeds
    return StudyPlan(
        [describe(p, keys) for p in points] if keys else [],
        len(activations),
        seeds,
        models,
        models * config.epochs,
        workers,
        total / max(1, min(workers, models)),
        startup,
        cost,
        processes,
        process_start,
    )
