"""The machine side of a run: choosing the device, the CPU thread policy, and package versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import torch

from actbench.errors import UsageError
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
