"""Tiny MNIST-shaped IDX files, written by hand, that go through the real loading code."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from actbench.data import FILES

TRAIN, TEST = 256, 64


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """Encode a uint8 tensor in the IDX format MNIST uses (big-endian dims, type 0x08)."""
    header = bytes([0, 0, 0x08, tensor.ndim]) + struct.pack(f">{tensor.ndim}I", *tensor.shape)
    return header + tensor.to(torch.uint8).contiguous().numpy().tobytes()


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable fake digits: class c lights up row block c of a 28x28 image, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = torch.randint(0, 60, (n, 28, 28), generator=generator)
    for i, label in enumerate(labels.tolist()):
        images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 250
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_mnist(folder: Path, gz: bool = False, raw_layout: bool = False) -> Path:
    """Write the four IDX files under `folder` (or folder/MNIST/raw); return `folder`."""
    target = folder / "MNIST" / "raw" if raw_layout else folder
    target.mkdir(parents=True, exist_ok=True)
    train_x, train_y = make_split(TRAIN, seed=1)
    test_x, test_y = make_split(TEST, seed=2)
    content = {
        "train_images": train_x,
        "train_labels": train_y,
        "test_images": test_x,
        "test_labels": test_y,
    }
    for key, tensor in content.items():
        data = idx_bytes(tensor)
        if gz:
            (target / (FILES[key] + ".gz")).write_bytes(gzip.compress(data))
        else:
            (target / FILES[key]).write_bytes(data)
    return folder


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A data folder with tiny, gzipped MNIST files in the flat layout."""
    return write_mnist(tmp_path / "data", gz=True)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a user's data folder from the environment."""
    monkeypatch.delenv("ACTBENCH_DATA_DIR", raising=False)
