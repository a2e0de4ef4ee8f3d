"""The machine side of a run: choosing the device, the CPU thread policy, and package versions."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from actbench.errors import ActbenchError, UsageError
from actbench.names import setting


def choose_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device must be available."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise UsageError("device cuda is not available on this machine; use --device cpu or auto")
    if name == "mps" and not mps:
        raise UsageError("device mps is not available on this machine; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_workers(models: int, device: torch.device, workers: int, threads: int) -> tuple[int, int]:
    """How many processes train the models, and with how many CPU threads each.

    The policy (0 = automatic): on a CPU, one process per core, up to one per model, each with
    one thread. One thread is what keeps a model's numbers independent of the models trained
    beside it: with more, torch splits a batched product's work by the number of models, and
    the rounding of some sums changes with it. On a GPU, one process trains every model.

    Raises UsageError for more threads than this machine's cores on the CPU (a process would
    share each core among several threads: slower, never faster).
    """
    cores = cpu_cores()
    if device.type == "cpu" and threads > cores:
        raise UsageError(
            f"{setting('threads')} {threads} is more than this machine's {cores} CPU cores; "
            f"use {setting('threads')} {cores} or fewer"
        )
    if device.type != "cpu":
        return 1, threads or min(cores, torch.get_num_threads())
    workers = min(workers or cores, models)
    return workers, threads or 1


def versions() -> dict[str, str]:
    """Versions of Python, the platform and every package that shapes a result."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    packages = ("actbench", "torch", "torchvision", "numpy", "pandas", "matplotlib", "typer")
    for package in (*packages, "mnist1d", "scipy"):  # mnist1d and scipy make MNIST-1D
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


# Bytes a model needs while it trains, per weight: the weight, its gradient and Adam's two
# moments, each a float32.
TRAINING_BYTES_PER_WEIGHT = 4 * 4


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(weights: int, what: str) -> None:
    """Refuse a network whose one model, of `weights` weights, cannot train in this machine's
    memory (`TRAINING_BYTES_PER_WEIGHT` bytes a weight, activations not counted: a lower
    bound). `what` names the settings that size it, for the message. Raises UsageError."""
    total = memory_bytes()
    need = weights * TRAINING_BYTES_PER_WEIGHT
    if total is not None and need > total:
        raise UsageError(
            f"{what} gives one model {weights:,} weights, which need at least "
            f"{need / 2**30:,.0f} GiB to train (weights, gradients, optimiser state); this "
            f"machine has {total / 2**30:,.0f} GiB: use a smaller --hidden or --depth"
        )


# Checkpoint generations kept per model: the latest and the one before (`CheckpointStore`).
GENERATIONS = 2


def checkpoint_bytes(params: int, optimizer_tensors: int) -> int:
    """A lower bound of the disk one model's checkpoints take: `GENERATIONS` copies of its
    `params` weights and biases and of the optimiser's `optimizer_tensors` tensors per
    parameter (Adam 2, SGD with momentum 1, plain SGD 0), float32. Bytes."""
    return GENERATIONS * params * (1 + optimizer_tensors) * 4


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the disk that holds `folder` (or would: its nearest existing parent);
    None where the system does not say."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_disk(folder: Path, need: int, models: int) -> None:
    """Refuse a run whose `models` models' checkpoints (`need` bytes, `checkpoint_bytes`
    summed) cannot fit on the disk of `folder`, before anything is written: a disk that
    fills mid-run stops it. Raises ActbenchError (exit 1: free space, or train elsewhere)."""
    free = free_bytes(folder)
    if free is not None and need > free:
        raise ActbenchError(
            f"the checkpoints of {models:,} models need at least {need / 1e9:,.1f} GB and the "
            f"disk of {folder} has {free / 1e9:,.1f} GB free; free some space, give "
            "--results-dir on a larger disk, or train fewer models (--seeds, grid values)"
        )
