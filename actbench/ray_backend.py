"""Training a run's groups of models on a Ray cluster, with rows and checkpoints kept here.

`actbench run --backend ray` joins Ray (`ray_cluster.connect`), then `train_on_ray` trains the
same jobs `parallel.train_in_workers` would, with the same callbacks, on every CPU (and GPU)
the cluster has. Ray is imported only by these two modules, and only when this backend is
asked for; each task runs `ray_tasks.train_epoch` in a Ray worker, which imports only that
module's training code.

How the work is laid out, and why:

- Each epoch of a job is one Ray task: it takes the models' states after the previous epoch
  (none for the first), trains one epoch in lockstep and returns the new states with the
  epoch's rows. The next epoch's task takes that result by reference, so the states need
  not travel from this machine to continue (they come here once, to be saved). One task per
  epoch keeps nothing on a worker between epochs: a worker or node lost costs only the epoch it was training, the
  lost epoch simply runs again elsewhere from the checkpoint this machine saved, and nodes
  that join a running cluster take work at the next epoch. (A task per job would stream its
  epochs back with a Ray generator, which Ray Client, `ray://` addresses, does not support,
  and would need its own way to restart half-way.) Continuing from a state gives the very
  numbers an uninterrupted loop gives: it is how `--resume` continues a run, bit for bit.
- The driver submits at most one task per free task slot (the cluster's CPUs over the CPUs
  a task takes), continuing running jobs first and starting new ones in the plan's order,
  heaviest first: the same policy as the local workers' queue.
- Each task takes one CPU and runs one CPU thread (`--threads`), the condition of
  bit-identical numbers; with `--device cuda`, also a share of a GPU.
- Each data set is put in Ray's object store once (as NumPy arrays) and read by every task
  from its node's shared memory without a copy: the exact tensors this machine prepared and
  checked (files' checksums, subset, validation split), fetched once per node, with no data
  folder or download needed on the workers.
- Workers never write the run folder (it may be on another machine): every result comes
  back here, where each model's state is saved with the run's `CheckpointStore` and then
  the rows are reported, in that order, as the local backend does.
- The activations' cost (`cost.csv`) is measured once training has ended, as one more task
  (`measure_cost_on_ray`): on the cluster's device the models trained on, which this machine
  may not have (a GPU), not on this machine's.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from actbench import __version__
from actbench.checkpoint import CheckpointStore
from actbench.config import RunConfig
from actbench.cost import CostRecord
from actbench.data import Tensors
from actbench.errors import ActbenchError
from actbench.jobs import Job
from actbench.ray_board import Board
from actbench.ray_cluster import Cluster, gpu_share
from actbench.ray_tasks import EpochOutput, measure_cost, remote_epoch, to_arrays
from actbench.signals import signals_held
from actbench.train import EpochResult, ModelState, steps_per_epoch

MAX_TRIES = 3  # attempts at one epoch of one group before the run fails
RESOURCES_SECONDS = 5.0  # how often the driver looks for nodes that joined or left


@dataclass
class _Group:
    """One job as it trains: the epoch it has reached and its tries at the next."""

    job: Job
    epoch: int  # epochs finished and saved
    alive: list[str]  # labels still training (diverged ones stop)
    tries: int = 0  # failed attempts at epoch + 1
    shown: int = 0  # steps passed to on_steps in this session


@dataclass
class _Stats:
    """What the tasks cost: their own time, and the time around it (Ray's overhead)."""

    inside: list[float] = field(default_factory=list)  # seconds each task ran, by its clock
    # seconds from submitting each task to its result being here, beyond its own time
    overhead: list[float] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)

    def add(self, output: EpochOutput, observed: float) -> None:
        self.inside.append(output.seconds)
        self.overhead.append(observed - output.seconds)
        self.hosts.add(output.node)

    def record(self) -> dict[str, Any]:
        """The manifest's entry: tasks, their seconds, and the overhead per task: the median
        is the usual cost of a task; the mean adds the start of each worker process."""
        if not self.inside:
            return {"tasks": 0, "hosts": []}
        return {
            "tasks": len(self.inside),
            "task_seconds": round(sum(self.inside), 3),
            "overhead_seconds_median": round(statistics.median(self.overhead), 4),
            "overhead_seconds_mean": round(statistics.fmean(self.overhead), 4),
            "hosts": sorted(self.hosts),
        }


def _cause(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}"


def train_on_ray(
    jobs: list[Job],
    data: Sequence[Tensors],
    configs: Sequence[RunConfig],
    store: CheckpointStore | None,
    workers: int,
    threads: int,
    on_epoch: Callable[[int, list[EpochResult]], None] | None = None,
    on_steps: Callable[[int, int], None] | None = None,
    *,
    cluster: Cluster,
    device: torch.device | None = None,
    on_retry: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train `jobs` as Ray tasks; the callbacks are those of `parallel.train_in_workers`
    (jobs named by their position in `jobs`; `data[p]`, `configs[p]` of configuration p).

    `workers` groups train at a time at most (0: one per task slot of the cluster, following
    nodes that join or leave); each task takes `threads` CPUs and threads, on `device` (cpu
    where None; cuda: with a share of a GPU).

    Each epoch's states are saved in `store` (here, not on the workers), then its rows go to
    `on_epoch`. A task lost with its worker or node runs again from the states saved after
    the group's last finished epoch, up to `MAX_TRIES` tries in all, each retry reported to
    `on_retry` ({"job", "activations", "seed", "point", "epoch", "attempt", "cause"});
    after that the run stops with an ActbenchError. An error raised by the training code
    stops the run at once (an ActbenchError as it is). On any stop (an interrupt too) the
    epochs finished by then are saved and reported first, and the other tasks cancelled.
    Returns the tasks' statistics for the manifest (`_Stats.record`).
    """
    import ray

    driver = _Driver(ray, jobs, data, configs, store, workers, threads, cluster,
                     device or torch.device("cpu"), on_epoch, on_steps, on_retry)  # fmt: skip
    try:
        driver.run()
    except BaseException:  # interrupted, or failed: keep what has finished, stop the rest
        driver.stop()
        raise
    return driver.stats.record()


def _resources(cluster: Cluster, device: torch.device, threads: int) -> dict[str, float]:
    """What one task asks of the cluster: `threads` CPUs and, on cuda, a share of a GPU."""
    return {"num_cpus": threads,
            "num_gpus": gpu_share(cluster, threads) if device.type == "cuda" else 0}  # fmt: skip


def measure_cost_on_ray(
    config: RunConfig,
    cluster: Cluster,
    device: torch.device,
    threads: int,
    meanwhile: Callable[[], None] | None = None,
) -> list[CostRecord]:
    """The activations' cost (`cost.measure_config_cost`), measured as one Ray task where the
    run trained: on `device` (with the share of a GPU a training task takes), in a task that
    takes `threads` CPUs as a training task does, once every training task has ended.
    `meanwhile()` runs here while the task measures.

    A lost worker is retried by Ray; any other failure raises ActbenchError (one line).
    """
    import ray

    task = ray.remote(measure_cost).options(**_resources(cluster, device, threads),
                                            max_retries=MAX_TRIES - 1)  # fmt: skip
    try:
        measured = task.remote(config, device.type)
        if meanwhile is not None:
            meanwhile()
        return ray.get(measured)
    except ray.exceptions.RayError as err:
        cause = err.cause if isinstance(err, ray.exceptions.RayTaskError) else err
        raise ActbenchError(
            f"measuring the activations' cost on Ray failed ({_cause(cause)}); every epoch is "
            "kept, only the activations' cost (cost.csv) is missing"
        ) from None


class _Driver:
    """The loop on the machine that started the run: submits epochs, saves, reports."""

    def __init__(
        self,
        ray: Any,
        jobs: list[Job],
        data: Sequence[Tensors],
        configs: Sequence[RunConfig],
        store: CheckpointStore | None,
        workers: int,
        threads: int,
        cluster: Cluster,
        device: torch.device,
        on_epoch: Callable[[int, list[EpochResult]], None] | None,
        on_steps: Callable[[int, int], None] | None,
        on_retry: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.ray, self.jobs, self.data, self.configs, self.store = ray, jobs, data, configs, store
        self.workers, self.threads, self.device = workers, threads, device
        self.on_epoch, self.on_steps, self.on_retry = on_epoch, on_steps, on_retry
        self.own = {"torch": torch.__version__, "actbench": __version__}
        self.boxes: dict[int, list[Any]] = {}  # one object per data set, boxed (`_data_on`)
        for tensors in data:
            if id(tensors) not in self.boxes:
                self.boxes[id(tensors)] = [ray.put(to_arrays(tensors))]
        self.task = ray.remote(remote_epoch).options(
            **_resources(cluster, device, threads), max_retries=0, retry_exceptions=False
        )
        self.board = _start_board(ray) if jobs else None
        self.per_epoch = [steps_per_epoch(len(d.train_x), c.batch_size)
                          for d, c in zip(data, configs, strict=True)]  # fmt: skip
        self.groups = [_Group(job, job.start_epoch, [u.label for u in job.units]) for job in jobs]
        self.specs = [{u.label: u.spec or u.label for u in job.units} for job in jobs]
        self.waiting = deque(range(len(jobs)))  # not started yet, heaviest first
        self.running: dict[Any, tuple[int, float]] = {}  # task -> (job, when submitted)
        self.stats = _Stats()
        self.stopping = False
        self.slots = self.capacity() if jobs else 0
        self.checked = time.monotonic()
        self.polling: Any = None  # the board's answer being awaited
        self.polled = 0.0

    def capacity(self) -> int:
        """Groups at a time: one per task slot (`workers` at most, where given)."""
        slots = max(1, int(self.ray.cluster_resources().get("CPU", 0.0) // self.threads))
        return min(self.workers, slots) if self.workers else slots

    def run(self) -> None:
        ray = self.ray
        self.start_next()
        while self.running:
            now = time.monotonic()
            if now - self.checked > RESOURCES_SECONDS:  # nodes may have joined or left
                self.checked, self.slots = now, self.capacity()
                self.start_next()
            if self.board is not None and self.polling is None and now - self.polled > 0.25:
                self.polling, self.polled = self.board.take.remote(), now
            watched = [*self.running, *([self.polling] if self.polling is not None else [])]
            ready, _ = ray.wait(watched, num_returns=1, timeout=0.5)
            for ref in ready:
                with signals_held():  # an interrupt waits until the epoch is saved and reported
                    if ref is self.polling:
                        self.polling = None
                        try:
                            self.progress(ray.get(ref))
                        except ray.exceptions.RayError:  # progress only: carry on without
                            self.board = None
                    else:
                        self.finished(ref)

    def stop(self) -> None:
        """Record the epochs that finished before the stop, then cancel the other tasks."""
        self.stopping = True
        ray = self.ray
        with contextlib.suppress(Exception):
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            for ref in ready:
                with signals_held(), contextlib.suppress(Exception):  # one epoch at a time
                    self.finished(ref)
        for ref in list(self.running):
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def submit(self, number: int, start: Any) -> None:
        if self.stopping:
            return
        group, job = self.groups[number], self.jobs[number]
        ref = self.task.remote(self.specs[number], self.configs[job.point], job.seed,
                               group.epoch + 1, self.boxes[id(self.data[job.point])], start,
                               self.threads, self.device.type, number, self.board)  # fmt: skip
        self.running[ref] = (number, time.monotonic())

    def start_next(self) -> None:
        while self.waiting and len(self.running) < self.slots and not self.stopping:
            number = self.waiting.popleft()
            self.submit(number, self.saved_states(self.groups[number]))

    def saved_states(self, group: _Group) -> list[ModelState] | None:
        """The group's models after its last finished epoch, as saved here (None: epoch 0)."""
        if group.epoch == 0:
            return None
        if self.store is None:
            raise ActbenchError("continuing a group on Ray needs the run's checkpoints")
        index = {u.label: u.index for u in group.job.units}
        return [self.store.load_at(index[label], label, group.job.seed, group.epoch)
                for label in group.alive]  # fmt: skip

    def show(self, number: int, total: int) -> None:
        """Bring job `number`'s steps shown to `total` (never back, never twice)."""
        group = self.groups[number]
        if self.on_steps is not None and total > group.shown:
            self.on_steps(number, total - group.shown)
        group.shown = max(group.shown, total)

    def progress(self, taken: dict[int, tuple[int, int]]) -> None:
        for number, (epoch, steps) in taken.items():
            job = self.jobs[number]
            self.show(number, (epoch - 1 - job.start_epoch) * self.per_epoch[job.point] + steps)

    def lost(self, number: int, err: BaseException) -> None:
        """A task lost with its worker or node: again from the last saved epoch, or fail."""
        group, job = self.groups[number], self.jobs[number]
        group.tries += 1
        if group.tries >= MAX_TRIES:
            where = f"{','.join(group.alive)} (seed {job.seed}" + (
                f", configuration {job.point + 1} of {len(self.configs)})"
                if len(self.configs) > 1
                else ")"
            )
            kept = ""
            if self.store is not None:
                folder = self.store.folder.parent
                kept = (
                    f"; its finished epochs are kept: continue with actbench run --resume {folder}"
                )
            raise ActbenchError(
                f"training the group {where} on Ray failed {MAX_TRIES} times at epoch "
                f"{group.epoch + 1} ({_cause(err)}){kept}"
            )
        if self.on_retry is not None:
            self.on_retry({"job": number, "activations": list(group.alive), "seed": job.seed,
                           "point": job.point, "epoch": group.epoch + 1,
                           "attempt": group.tries + 1, "cause": _cause(err)})  # fmt: skip
        self.submit(number, self.saved_states(group))

    def finished(self, ref: Any) -> None:
        """A task's end: its epoch saved and reported, or the task run again."""
        ray = self.ray
        number, submitted = self.running.pop(ref)
        group, job = self.groups[number], self.jobs[number]
        try:
            output: EpochOutput = ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # raised in the task
            cause = err.cause if isinstance(err.cause, BaseException) else err
            if isinstance(cause, ActbenchError):  # by the training code: a fault as here
                raise cause from None
            if isinstance(cause, ImportError) or "failed to import on the worker" in str(cause):
                raise ActbenchError(
                    f"a Ray worker cannot import actbench or an activation's module "
                    f"({_cause(cause)[:120]}); install actbench[ray], the version this machine "
                    "runs, and any module of your own activations on every node"
                ) from None
            if not isinstance(cause, ray.exceptions.RayError):
                raise RuntimeError(f"training on Ray failed: {_cause(cause)}") from None
            self.lost(number, cause)  # by Ray, fetching what the task needs
            return
        except ray.exceptions.RayError as err:  # the worker, its node or an object was lost
            self.lost(number, err)
            return
        if output.versions != self.own:
            raise ActbenchError(
                f"node {output.node} runs torch {output.versions['torch']} and actbench "
                f"{output.versions['actbench']}, this machine torch {self.own['torch']} and "
                f"actbench {self.own['actbench']}: a model's numbers would depend on where "
                "it trained; install the same versions on every node"
            )
        self.stats.add(output, time.monotonic() - submitted)
        group.epoch += 1
        group.tries = 0
        group.alive = [s.activation for s in output.states if not s.diverged]
        config = self.configs[job.point]
        if group.alive and group.epoch < config.epochs:
            self.submit(number, ref)  # the next epoch starts before this one is written down
        else:
            self.start_next()
        if self.store is not None:
            index = {u.label: u.index for u in job.units}
            for state in output.states:
                self.store.save(index[state.activation], state)
        done = group.epoch if group.alive else config.epochs  # all diverged: no more steps
        self.show(number, (done - job.start_epoch) * self.per_epoch[job.point])
        if self.on_epoch is not None:
            self.on_epoch(number, output.rows)


def _start_board(ray: Any) -> Any:
    """The progress board, on this machine's node where Ray allows it."""
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        return ray.remote(Board).options(num_cpus=0, scheduling_strategy=here).remote()
    except Exception:  # progress is a convenience: train without it (bars move per epoch)
        return None
