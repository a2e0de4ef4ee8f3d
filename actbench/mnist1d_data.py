"""MNIST-1D (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439), generated here.

The `mnist1d` package's generator (`mnist1d.data.make_dataset`) with its published default
arguments (`mnist1d.data.get_dataset_args()`: 5,000 samples of 40 values, 10 classes, 80%
for training, seed 42) makes 4,000 training and 1,000 test samples, already normalised (the
whole set centred and scaled to unit standard deviation). Nothing is downloaded or written:
the set is made again by each process that needs it (about 3 s), once, and kept in memory.
The generator seeds Python's and numpy's global random generators; their states are put
back afterwards, so nothing else that draws from them is changed.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass

import numpy as np
import torch

from actbench.datasets import MNIST1D
from actbench.locate import DataError

__all__ = ["Generated", "generate", "make_arrays"]


@dataclass(frozen=True)
class Generated:
    """MNIST-1D in memory: float64 samples (N, 40), int64 labels (N,), and md5s of the arrays."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    md5: dict[str, str]  # array name ('x', 'y', 'x_test', 'y_test') -> md5 of its bytes


def make_arrays() -> dict[str, np.ndarray]:
    """One fresh run of the generator with its defaults: arrays 'x', 'y', 'x_test', 'y_test'."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise DataError(
            f"MNIST-1D needs the mnist1d package ({err}); install it: pip install mnist1d"
        ) from None
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        made = make_dataset(get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return {key: np.asarray(made[key]) for key in ("x", "y", "x_test", "y_test")}


_made: list[Generated] = []
_lock = threading.Lock()


def generate() -> Generated:
    """MNIST-1D as tensors, generated on the first call and kept for the process's later ones.

    Raises DataError when the mnist1d package is missing or its defaults no longer make the
    published shapes (4,000 and 1,000 samples of 40 values, labels 0-9).
    """
    with _lock:
        if not _made:
            arrays = make_arrays()
            _check(arrays)
            md5 = {k: hashlib.md5(np.ascontiguousarray(v).tobytes()).hexdigest()
                   for k, v in arrays.items()}  # fmt: skip
            tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
            _made.append(
                Generated(
                    tensors["x"].to(torch.float64),
                    tensors["y"].to(torch.int64),
                    tensors["x_test"].to(torch.float64),
                    tensors["y_test"].to(torch.int64),
                    md5,
                )
            )
        return _made[0]


def _check(arrays: dict[str, np.ndarray]) -> None:
    expected = {
        "x": (MNIST1D.train, MNIST1D.inputs),
        "y": (MNIST1D.train,),
        "x_test": (MNIST1D.test, MNIST1D.inputs),
        "y_test": (MNIST1D.test,),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise DataError(
                f"the mnist1d generator made {key} of shape {arrays[key].shape}, not {shape}; "
                "install the mnist1d version whose defaults make the published set "
                "(pip install mnist1d==0.0.2.post1)"
            )
    for key in ("y", "y_test"):
        if arrays[key].min() < 0 or arrays[key].max() >= MNIST1D.classes:
            raise DataError(f"the mnist1d generator made labels outside 0-{MNIST1D.classes - 1}")
