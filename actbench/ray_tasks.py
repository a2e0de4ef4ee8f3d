"""The worker side of the Ray backend (`actbench.ray_backend`): one Ray task trains one
epoch of one group of models, and what it sends back.

Kept apart from the driver's module so that a Ray worker imports only what training needs
(torch and actbench's training code), not what the driver needs to save and report (pandas
among them): each worker process imports this once, before its first task.
"""

from __future__ import annotations

import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import torch

from actbench import __version__
from actbench.config import RunConfig
from actbench.data import Tensors
from actbench.train import EpochResult, ModelState, train_lockstep

if TYPE_CHECKING:
    from actbench.cost import CostRecord

REPORT_SECONDS = 0.5  # a task reports its steps (for progress bars) at most this often
KEEP_DATA_SETS = 4  # data sets a worker process keeps ready on its device


@dataclass(frozen=True)
class EpochOutput:
    """What a task sends back: the models' states and rows after one epoch, and about it."""

    states: list[ModelState]
    rows: list[EpochResult]
    node: str  # the host that trained it
    versions: dict[str, str]  # torch and actbench there
    seconds: float  # the task's own time, from its start to its return


_CACHE: dict[str, Tensors] = {}  # a worker process's data sets on its device, by object


def to_arrays(data: Tensors) -> Tensors:
    """The data set with NumPy arrays in place of tensors: read without a copy from Ray's
    object store by every worker of a node. The validation indices stay here."""
    arrays = {
        f.name: getattr(data, f.name).cpu().numpy()
        for f in fields(data)
        if isinstance(getattr(data, f.name), torch.Tensor)
    }
    return replace(data, **arrays, val_split=None)


def _from_arrays(data: Tensors, device: torch.device) -> Tensors:
    with warnings.catch_warnings():  # read-only shared memory; training never writes to it
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        tensors = {
            f.name: torch.from_numpy(getattr(data, f.name)).to(device)
            for f in fields(data)
            if getattr(data, f.name) is not None and hasattr(getattr(data, f.name), "dtype")
        }
    return replace(data, **tensors)


def _data_on(box: list[Any], device: torch.device) -> Tensors:
    """The task's data set (passed boxed, so that it is fetched here once per process)."""
    import ray

    (ref,) = box
    key = f"{ref.hex()}:{device}"
    if key not in _CACHE:
        while len(_CACHE) >= KEEP_DATA_SETS:
            del _CACHE[next(iter(_CACHE))]  # the oldest
        _CACHE[key] = _from_arrays(ray.get(ref), device)
    return _CACHE[key]


def train_epoch(
    specs: dict[str, str],
    config: RunConfig,
    seed: int,
    epoch: int,
    box: list[Any],
    start: list[ModelState] | EpochOutput | None,
    threads: int,
    device: str,
    report: Callable[[int, int], None] | None = None,
) -> EpochOutput:
    """Train one epoch, number `epoch`, of the models `specs` (label -> activation as given).

    `start` holds their states after epoch `epoch - 1` (a previous task's output, whose
    diverged models stop there; None for epoch 1). `report(epoch, steps)` is told the steps
    taken so far in this epoch.
    """
    from actbench.activations import resolve_all

    began = time.perf_counter()
    torch.set_num_threads(threads)
    if isinstance(start, EpochOutput):
        start = [s for s in start.states if not s.diverged]
    if start is not None and not start:
        raise ValueError("every model of the group has diverged: nothing left to train")
    labels = [s.activation for s in start] if start else list(specs)
    data = _data_on(box, torch.device(device))
    taken = {"steps": 0, "sent": time.monotonic()}

    def on_steps(steps: int) -> None:
        taken["steps"] += steps
        if report is not None and time.monotonic() - taken["sent"] >= REPORT_SECONDS:
            taken["sent"] = time.monotonic()
            report(epoch, taken["steps"])

    states: list[ModelState] = []
    rows: list[EpochResult] = []
    train_lockstep(
        resolve_all([specs[label] for label in labels]),
        data,
        replace(config, epochs=epoch),
        seed,
        on_epoch=rows.extend,
        on_steps=on_steps,
        start=start or None,
        on_checkpoint=states.extend,
    )
    versions = {"torch": torch.__version__, "actbench": __version__}
    return EpochOutput(states, rows, socket.gethostname(), versions,
                       time.perf_counter() - began)  # fmt: skip


def remote_epoch(
    specs: dict[str, str],
    config: RunConfig,
    seed: int,
    epoch: int,
    box: list[Any],
    start: list[ModelState] | EpochOutput | None,
    threads: int,
    device: str,
    job: int,
    board: Any,
) -> EpochOutput:
    report = None
    if board is not None:

        def report(epoch: int, steps: int) -> None:
            board.add.remote(job, epoch, steps)  # no reply awaited: progress only

    return train_epoch(specs, config, seed, epoch, box, start, threads, device, report)


def measure_cost(config: RunConfig, device: str) -> list[CostRecord]:
    """The activations' cost (`cost.measure_config_cost`), measured in this worker on
    `device`, the device the run trained on."""
    from actbench.cost import measure_config_cost

    return measure_config_cost(config, torch.device(device))
