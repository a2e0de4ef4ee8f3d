"""What a run tells its front end while it trains: which models train together, how far each
group is, and every (seed, epoch)'s rows in seed-then-epoch order.

The library never prints; `actbench.experiment.Hooks` hands these to whoever shows progress.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from actbench.jobs import Job, Unit
from actbench.train import EpochResult


@dataclass(frozen=True)
class Group:
    """Models that train together, in lockstep: one job of the run.

    One optimiser step takes one batch and trains every model of the group on it, so the
    group takes `steps_per_epoch` steps per epoch, from epoch `start_epoch` + 1 (the epochs
    it had finished before) to `epochs`.
    """

    job: int  # its position in the run's list of jobs
    seed: int
    labels: tuple[str, ...]  # its activations, in the run's order
    start_epoch: int
    epochs: int
    steps_per_epoch: int
    setting: str = ""  # its configuration in a study ('depth=8 lr=0.01'); '' otherwise

    @property
    def steps(self) -> int:
        """The steps (batches) it takes in this session."""
        return (self.epochs - self.start_epoch) * self.steps_per_epoch

    @property
    def model_epochs(self) -> int:
        """Its models times the epochs each trains in this session."""
        return len(self.labels) * (self.epochs - self.start_epoch)


def plan_groups(
    jobs: list[Job], epochs: int, steps_per_epoch: Sequence[int], settings: Sequence[str] = ()
) -> list[Group]:
    """The jobs (`jobs.plan_jobs`) as groups, in the same order.

    `steps_per_epoch[p]` and `settings[p]` are configuration p's batches per epoch and its
    description (none in a run of one configuration).
    """
    return [
        Group(
            number,
            job.seed,
            tuple(u.label for u in job.units),
            job.start_epoch,
            epochs,
            steps_per_epoch[job.point],
            settings[job.point] if settings else "",
        )
        for number, job in enumerate(jobs)
    ]


@dataclass
class StepRouter:
    """Hands on each job's count of steps taken as steps of its group."""

    groups: list[Group]
    emit: Callable[[Group, int], None] | None

    def add(self, job: int, steps: int) -> None:
        """Record `steps` more steps of job number `job`."""
        if self.emit is not None:
            self.emit(self.groups[job], steps)


@dataclass
class EpochLines:
    """Hands on each (seed, epoch)'s rows, one list per key in seed-then-epoch order, once
    every model of that seed has its row for that epoch.

    Workers report their groups separately, and a seed's models may be split between two
    workers that reach an epoch far apart: a key waits for its last model, and the keys after
    it wait their turn. `first` holds the epochs each model had finished before this session
    (a resume); a list also holds the rows of `earlier` (the rows recorded before) for its
    key, so that it shows every model of the seed that reached the epoch, not only those
    that trained it now. A model that diverged reports no later epochs (`done` lists those
    that diverged or finished before this session).
    """

    units: list[Unit]
    epochs: int
    emit: Callable[[list[EpochResult]], None] | None
    first: dict[Unit, int] = field(default_factory=dict)
    earlier: Iterable[EpochResult] = ()
    done: Iterable[Unit] = ()
    _last: dict[Unit, int] = field(init=False)
    _rows: dict[tuple[int, int], dict[str, EpochResult]] = field(init=False)
    _keys: list[tuple[int, int]] = field(init=False)
    _order: dict[str, int] = field(init=False)
    _new: set[tuple[int, int]] = field(default_factory=set)  # keys with rows of this session

    def __post_init__(self) -> None:
        done = set(self.done)
        self._last = {u: self.first.get(u, 0) if u in done else self.epochs for u in self.units}
        self._order = {}
        for unit in self.units:
            self._order.setdefault(unit.label, unit.index)
        self._rows = {}
        for row in self.earlier:
            self._rows.setdefault((row.seed, row.epoch), {})[row.activation] = row
        self._keys = sorted(
            {
                (u.seed, e)
                for u in self.units
                for e in range(self.first.get(u, 0) + 1, self._last[u] + 1)
            }
        )

    def _expected(self, seed: int, epoch: int) -> set[str]:
        """The models of `seed` that train `epoch` in this session (and have not diverged)."""
        return {
            u.label
            for u in self.units
            if u.seed == seed and self.first.get(u, 0) < epoch <= self._last[u]
        }

    def add(self, rows: list[EpochResult]) -> None:
        """Record a group's rows of one epoch; hand on every key that is now complete and next."""
        for row in rows:
            self._rows.setdefault((row.seed, row.epoch), {})[row.activation] = row
            self._new.add((row.seed, row.epoch))
            if row.status == "diverged":
                for unit in self.units:
                    if (unit.seed, unit.label) == (row.seed, row.activation):
                        self._last[unit] = row.epoch
        while self._keys:
            key = self._keys[0]
            expected = self._expected(*key)
            if not expected:  # every model that would have trained it diverged earlier
                self._keys.pop(0)
                continue
            if not expected <= set(self._rows.get(key, {})):
                return
            self._keys.pop(0)
            ready = sorted(self._rows.pop(key).values(), key=lambda r: self._order[r.activation])
            if self.emit is not None:
                self.emit(ready)

    def flush(self) -> None:
        """Hand on every key some model finished in this session, in order, complete or not:
        the run is stopping, and every epoch a model finished should be shown."""
        for key in self._keys:
            rows = self._rows.pop(key, {})
            if key in self._new and self.emit is not None:
                self.emit(sorted(rows.values(), key=lambda r: self._order[r.activation]))
        self._keys = []
