"""Training groups of activations in worker processes, one CPU thread each, reporting to the parent.

On a small CPU, one single-threaded process per core is both faster and steadier than one
process with several threads: small matrix products gain little from a second thread and slow
down badly when anything else wants the core. Workers take jobs (groups of models in lockstep)
in turn, the heaviest first, so the cores stay busy until the last job; each trains on the
shared, read-only data and sends its rows back as each epoch ends.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

from actbench.checkpoint import CheckpointStore
from actbench.config import RunConfig
from actbench.data import Tensors
from actbench.errors import ActbenchError
from actbench.jobs import Job, run_job
from actbench.signals import signals_held
from actbench.train import EpochResult


class _Stopped(Exception):
    """Raised in a worker when the parent asks it to stop."""


def _take(taken: Any, count: int) -> int | None:
    """Claim the next of `count` jobs: its number, which no other worker gets; None once
    every job is taken. `taken` is the shared count of jobs taken so far (a
    `multiprocessing.Value` with its lock).

    A shared count, not a queue of job numbers: a queue sends what the parent puts through a
    pipe from a thread of the parent's, and a process waits at exit until that thread has
    sent everything; with more numbers than the pipe holds, a stopped run, whose workers
    take no more, would never end.
    """
    with taken.get_lock():
        number = taken.value
        if number >= count:
            return None
        taken.value = number + 1
    return number


def _worker(
    index: int,
    jobs: list[Job],
    data: Sequence[Tensors],
    configs: Sequence[RunConfig],
    store: CheckpointStore | None,
    threads: int,
    taken: Any,
    messages: Any,
    stop: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and ends a worker with SIGTERM
    torch.set_num_threads(threads)
    parent = os.getppid()

    try:
        while True:
            number = _take(taken, len(jobs))
            if number is None:  # every job is taken
                break
            if stop.is_set():
                raise _Stopped

            def on_steps(n: int, number: int = number) -> None:
                if os.getppid() != parent:  # the parent died without ending us: stop
                    os._exit(1)
                if stop.is_set():  # the parent was interrupted: drop the unfinished epoch
                    raise _Stopped
                messages.put(("steps", number, n))

            job = jobs[number]
            run_job(
                job,
                data[job.point],
                configs[job.point],
                store,
                on_epoch=lambda rows, number=number: messages.put(("epoch", number, rows)),
                on_steps=on_steps,
            )
        messages.put(("done", index, None))
    except _Stopped:
        messages.put(("stopped", index, None))
    except ActbenchError as err:  # a problem the user can fix: pass its message on as it is
        messages.put(("failed", index, str(err)))
    except BaseException as err:  # report anything, so the parent never waits forever
        messages.put(("error", index, (f"{type(err).__name__}: {err}", traceback.format_exc())))


def _check_alive(processes: list[Any], running: set[int]) -> None:
    dead = [i for i in running if not processes[i].is_alive()]
    if dead:
        code = processes[dead[0]].exitcode
        raise ActbenchError(
            f"a training worker stopped unexpectedly (exit code {code}); try again with --workers 1"
        )


# After a request to stop, how long the parent waits for the workers to end by themselves
# (seconds) before it ends them; one more interrupt ends the wait at once.
PATIENCE = 10.0


def _drain(
    messages: Any,
    running: set[int],
    record: Callable[[int, list[EpochResult]], None],
    processes: list[Any],
    interrupts: list[int],
    asked: int,
) -> None:
    """After a stop request: take the epochs the workers still report, until they have all
    ended, `PATIENCE` runs out, or an interrupt comes beyond the `asked` ones (it hurries)."""
    deadline = time.monotonic() + PATIENCE
    while running and len(interrupts) <= asked and time.monotonic() < deadline:
        try:
            kind, index, payload = messages.get(timeout=0.2)
        except (queue.Empty, OSError, EOFError):
            running.difference_update(i for i in list(running) if not processes[i].is_alive())
            continue
        except Exception:  # a message cut short earlier: the rest of the stream is unreadable
            return  # what it held is in the checkpoints: `_recover` reads it back
        if kind == "epoch":
            record(index, payload)
        elif kind in ("done", "stopped", "failed", "error"):
            running.discard(index)


def _end(processes: list[Any]) -> None:
    """End the workers and wait until they have: from then on no checkpoint changes.

    A worker holds SIGTERM while it saves an epoch, so it ends between epochs; one that has
    not ended after a few seconds is killed.
    """
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()


def _recover(
    jobs: list[Job],
    store: CheckpointStore,
    reported: dict[tuple[int, str], int],
    record: Callable[[int, list[EpochResult]], None],
) -> None:
    """Hand on the epochs the workers finished whose rows never reached the parent.

    A worker saves its models' checkpoints, then sends their rows; rows still on their way
    when the parent stopped taking them (a second interrupt, or a worker ended meanwhile) are
    read back from the checkpoints, once every worker has ended. `reported` holds each
    (job, activation)'s last epoch recorded; the missing ones go to `record` epoch by epoch.
    """
    for number, job in enumerate(jobs):
        missing: dict[int, list[EpochResult]] = {}
        for unit in job.units:
            state = store.load(unit.index, unit.label, unit.seed)
            if state is None:
                continue
            last = reported.get((number, unit.label), job.start_epoch)
            for row in state.rows:
                if row.epoch > last:
                    missing.setdefault(row.epoch, []).append(row)
        for epoch in sorted(missing):
            record(number, missing[epoch])


def _context() -> Any:
    # fork shares the data with the workers without a copy; elsewhere spawn pickles it through
    # shared memory (torch.multiprocessing's reductions).
    if sys.platform.startswith("linux"):
        return mp.get_context("fork")
    import torch.multiprocessing as tmp

    return tmp.get_context("spawn")


def _ready(index: int, data: Sequence[Tensors], threads: int, messages: Any) -> None:
    """A worker of `time_worker_start`: set up as `_worker` is, report ready, and end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    messages.put(index)


def time_worker_start(
    data: Sequence[Tensors],
    processes: int,
    threads: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds to start `processes` workers as `train_in_workers` does, handing each the
    data (`data[p]`, configuration p's), until every one is ready to train, and to end them.

    With fork (Linux) this is a few hundredths of a second; with spawn (macOS, Windows) each
    worker imports torch and receives the data first, often seconds. Raises ActbenchError when
    a worker ends without reporting ready.
    """
    context = _context()
    messages = context.Queue()
    begun = clock()
    workers = [
        context.Process(target=_ready, args=(i, data, threads, messages), daemon=True)
        for i in range(processes)
    ]
    try:
        for process in workers:
            process.start()
        waiting = set(range(processes))
        while waiting:
            try:
                waiting.discard(messages.get(timeout=0.2))
            except queue.Empty:
                _check_alive(workers, waiting)
        for process in workers:
            process.join()
    finally:
        _end([process for process in workers if process.pid is not None])  # those started
    return clock() - begun


def train_in_workers(
    jobs: list[Job],
    data: Sequence[Tensors],
    configs: Sequence[RunConfig],
    store: CheckpointStore | None,
    workers: int,
    threads: int,
    on_epoch: Callable[[int, list[EpochResult]], None] | None = None,
    on_steps: Callable[[int, int], None] | None = None,
) -> None:
    """Train `jobs` in `workers` processes of `threads` CPU threads, each taking the next job.

    `data[p]` and `configs[p]` belong to configuration p. `on_epoch(job, rows)` receives a
    job's rows of a finished epoch and `on_steps(job, steps)` the optimiser steps it just
    took, each job named by its position in `jobs`.

    SIGINT and SIGTERM are held throughout and acted on between messages, so no interrupt
    can cut the recording of an epoch or the stop short. The first (or a failing worker) asks
    the workers to stop, dropping their unfinished epochs, and the parent takes the epochs
    they still report; one more interrupt ends that wait, and the workers with it. Either way,
    every epoch a worker finished (its checkpoint saved in `store`) reaches `on_epoch` before
    this ends: those whose rows were still on their way are read back from the checkpoints.
    Then the first signal goes to its handler (KeyboardInterrupt, from Ctrl-C or actbench's
    SIGTERM handler); where that handler returns, KeyboardInterrupt all the same.
    """
    context = _context()
    messages = context.Queue()  # the parent only reads it: it never holds the parent at exit
    taken = context.Value("q", 0)  # jobs taken so far: `_take`
    stop = context.Event()
    count = max(1, min(workers, len(jobs)))
    processes = [
        context.Process(
            target=_worker,
            args=(i, jobs, data, configs, store, threads, taken, messages, stop),
            daemon=True,
        )
        for i in range(count)
    ]
    reported: dict[tuple[int, str], int] = {}  # each (job, activation)'s last epoch recorded

    def record(number: int, rows: list[EpochResult]) -> None:
        if on_epoch is not None:
            on_epoch(number, rows)
        for row in rows:
            reported[number, row.activation] = row.epoch

    running = set(range(len(processes)))
    completed = False
    with signals_held() as interrupts:
        try:
            for process in processes:
                process.start()
            while running and not interrupts:
                try:
                    kind, index, payload = messages.get(timeout=0.2)
                except queue.Empty:
                    _check_alive(processes, running)
                    continue
                if kind == "steps" and on_steps is not None:
                    on_steps(index, payload)
                elif kind == "epoch":
                    record(index, payload)
                elif kind in ("done", "failed", "error"):
                    running.discard(index)
                if kind == "failed":
                    raise ActbenchError(payload)
                if kind == "error":  # one line; the worker's traceback for --debug
                    summary, trace = payload
                    error = RuntimeError(f"training worker {index} failed: {summary}")
                    error.add_note(f"The worker's traceback:\n{trace}")
                    raise error
            completed = not running
        finally:
            if completed:
                _end(processes)  # every one has reported all it trained
            else:  # interrupted, or a worker failed: stop the others, keep what they finished
                stop.set()
                asked = min(len(interrupts), 1)  # an interrupt beyond this one hurries the stop
                try:
                    _drain(messages, running, record, processes, interrupts, asked)
                finally:
                    _end(processes)
                if store is not None:
                    _recover(jobs, store, reported, record)
    if not completed:  # stopped by a signal whose handler returned: the jobs are not done
        raise KeyboardInterrupt
