"""The machine side of a run: choosing the device, the CPU thread policy, and package versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import torch

from actbench.errors import UsageError


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


def default_threads() -> int:
    """actbench's CPU thread policy (see the README's speed section)."""
    return max(1, min(os.cpu_count() or 1, torch.get_num_threads()))


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads (0 = the policy) and return the number in use."""
    torch.set_num_threads(threads or default_threads())
    return torch.get_num_threads()


def versions() -> dict[str, str]:
    """Versions of Python, the platform and every package that shapes a result."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("actbench", "torch", "torchvision", "numpy", "pandas", "matplotlib", "typer"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found
