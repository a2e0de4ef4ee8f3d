"""MNIST from its IDX files (found by content: see `actbench.locate`) into memory as tensors."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from actbench import datasets
from actbench.datafiles import FILES, DataError, read_bytes
from actbench.datasets import UBYTE, DataSet
from actbench.download import download as fetch
from actbench.errors import UsageError
from actbench.locate import Survey, survey

__all__ = [
    "FILES",
    "MNIST",
    "DataError",
    "Tensors",
    "ValSplit",
    "load_mnist",
    "prepare",
    "read_idx",
]

MEAN, STD = 0.1307, 0.3081  # MNIST training-pixel mean and std on a 0-1 scale
# The validation split's own generator seed: never a model seed, so the split is the same for
# every seed of a run and of any other run on the same training data.
VAL_SEED = 1_000_003


@dataclass(frozen=True)
class MNIST:
    """The raw data set: uint8 images (N, 28, 28) and int64 labels (N,), plus file fingerprints."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    md5: dict[str, str]  # md5 of each file's uncompressed content, for the manifest


@dataclass(frozen=True)
class ValSplit:
    """Which training samples a run holds out for validation, and how they were drawn."""

    indices: torch.Tensor  # (N,) int64, sorted: rows of the MNIST training files
    seed: int  # the seed of the generator that drew them (VAL_SEED)

    @property
    def sha256(self) -> str:
        """sha256 of the sorted indices written as decimal numbers joined by commas."""
        text = ",".join(str(i) for i in self.indices.tolist())
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def record(self) -> dict[str, int | str]:
        """The manifest's entry: sample count, generator seed and the indices' checksum."""
        return {"samples": len(self.indices), "seed": self.seed, "indices_sha256": self.sha256}


@dataclass(frozen=True)
class Tensors:
    """Model-ready data on one device: normalised float images (N, 784) and labels (N,).

    `val_x`, `val_y` hold the validation split (taken out of the training data), None without.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    val_split: ValSplit | None = None


def read_idx(path: Path) -> tuple[torch.Tensor, str]:
    """Decode one IDX file of unsigned bytes; return the tensor and the md5 of its content."""
    raw, md5 = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE or not 1 <= raw[3] <= 3:
        raise DataError(
            f"{path} is not an MNIST IDX file (bad header); replace it with a fresh copy"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header cut short); replace it with a fresh copy")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(torch.tensor(shape).prod())
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "corrupt (extra bytes)"
        raise DataError(
            f"{path} is {state}: expected {expected} bytes for shape {tuple(shape)}, "
            f"found {len(raw)}; replace it with a fresh copy"
        )
    tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header).reshape(shape)
    return tensor, md5


def _expected(spec: DataSet) -> str:
    return ", ".join(f.name for f in spec.files) + ", plain or gzipped"


def _survey(data_dir: Path, spec: DataSet) -> Survey:
    """What `data_dir` holds of `spec`; UsageError or DataError when it cannot be looked at."""
    try:
        if data_dir.exists() and not data_dir.is_dir():
            raise UsageError(f"data folder {data_dir} is a file; point --data-dir at a folder")
        found = survey(data_dir, spec) if data_dir.is_dir() else Survey(data_dir, spec, {}, [], [])
    except PermissionError as err:
        where = err.filename or data_dir
        raise DataError(
            f"cannot read data folder {where} ({err.strerror}); check its permissions "
            "or point --data-dir at another folder"
        ) from None
    if found.problems:
        raise DataError(found.refusal())
    return found


def load_mnist(data_dir: Path | str, download: bool = True) -> MNIST:
    """Read MNIST from `data_dir`, downloading it first when the folder holds none of it.

    The four files are recognised by content wherever they lie in the folder's accepted
    layouts (flat, torchvision's MNIST/raw, or one folder deeper: see `actbench.locate`).
    Raises UsageError when `data_dir` is a file, DataError (one line: what was found, what is
    missing, the fix) when the files are missing, ambiguous, corrupt or cannot be downloaded.
    A failed attempt writes nothing into `data_dir`.
    """
    data_dir = Path(data_dir)
    spec = datasets.MNIST
    found = _survey(data_dir, spec)
    if found.empty:
        seen = f" (found {found.listing()})" if found.seen else ""
        if not download:
            raise DataError(
                f"{spec.name} is not in {data_dir}{seen}; put the four files "
                f"({_expected(spec)}) there or point --data-dir at them"
            )
        try:
            fetch(spec, data_dir)
        except DataError as err:
            raise DataError(
                f"{spec.name} is not in {data_dir}{seen} and {err}; nothing was written there; "
                f"put the four files ({_expected(spec)}) in {data_dir}, "
                "or point --data-dir / ACTBENCH_DATA_DIR at a folder that has them"
            ) from None
        found = _survey(data_dir, spec)
        if found.empty:
            raise DataError(f"the download left no {spec.name} files in {data_dir}")
    files = {role: file.path for role, file in found.files.items()}
    tensors: dict[str, torch.Tensor] = {}
    md5: dict[str, str] = {}
    for role, path in files.items():
        tensors[role], md5[spec.file(role).name] = read_idx(path)
    for split in ("train", "test"):
        images, labels = tensors[f"{split}_images"], tensors[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{files[f'{split}_images']} or its labels have the wrong shape")
        if len(images) != len(labels):
            raise DataError(
                f"{files[f'{split}_images']} has {len(images)} images but "
                f"{files[f'{split}_labels']} has {len(labels)} labels; replace the mismatched file"
            )
        if len(labels) and int(labels.max()) > 9:
            raise DataError(f"{files[f'{split}_labels']} holds labels above 9; it is not MNIST")
    return MNIST(
        tensors["train_images"],
        tensors["train_labels"].long(),
        tensors["test_images"],
        tensors["test_labels"].long(),
        md5,
    )


# The seed of the `--subset` draw: fixed, so the subset depends only on its size, never on the
# seeds of the models trained on it (a model's numbers depend only on its own settings and seed).
SUBSET_SEED = 0


def subset_indices(total: int, size: int | None, seed: int) -> torch.Tensor | None:
    """A seeded random choice of `size` of `total` samples (None = all, kept in order)."""
    if size is None or size == total:
        return None
    if size > total:
        raise UsageError(
            f"subset {size} is larger than the {total} training samples; lower --subset"
        )
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=generator)[:size]


def validation_positions(total: int, size: int, batch_size: int) -> torch.Tensor:
    """Sorted positions (size,) of the `total` training samples held out for validation.

    Drawn by a generator seeded with VAL_SEED, so they depend on `total` and `size` alone.
    Raises UsageError when fewer than one batch of `batch_size` samples would be left to train.
    """
    most = total - batch_size
    if size > most:
        fix = f"use --val {most} or less" if most > 0 else "raise --subset or lower --batch-size"
        raise UsageError(
            f"val {size} leaves {max(total - size, 0)} of the {total} training samples, "
            f"fewer than one batch of {batch_size}; {fix}"
        )
    generator = torch.Generator().manual_seed(VAL_SEED)
    return torch.randperm(total, generator=generator)[:size].sort().values


def split_indices(
    train_n: int, subset: int | None, seed: int, val: int = 0, batch_size: int = 1
) -> tuple[torch.Tensor | None, ValSplit | None]:
    """The training rows (None = all, in order) and the validation split (None without).

    The subset is drawn first (seeded with `seed`); `val` of its samples are then held out
    (see `validation_positions`) and the rest, in their order, are the training data.
    """
    train_idx = subset_indices(train_n, subset, seed)
    if not val:
        return train_idx, None
    rows = torch.arange(train_n) if train_idx is None else train_idx
    held = validation_positions(len(rows), val, batch_size)
    keep = torch.ones(len(rows), dtype=torch.bool)
    keep[held] = False
    return rows[keep], ValSplit(rows[held].sort().values, VAL_SEED)


def prepare(
    mnist: MNIST,
    subset: int | None,
    seed: int,
    device: torch.device,
    val: int = 0,
    batch_size: int = 1,
) -> Tensors:
    """Flatten and normalise once; take the seeded subset (and the same fraction of the test set).

    With `val`, that many of the training samples become the validation split and the models
    train on the rest; `batch_size` is the least the rest may hold (UsageError otherwise).
    """
    train_n, test_n = len(mnist.train_labels), len(mnist.test_labels)
    train_idx, split = split_indices(train_n, subset, seed, val, batch_size)
    test_idx = None
    if subset is not None:
        test_size = max(1, round(test_n * subset / train_n))
        test_idx = subset_indices(test_n, min(test_size, test_n), seed + 1)

    def to_device(images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor | None):
        if idx is not None:
            images, labels = images[idx], labels[idx]
        x = images.reshape(len(images), -1).to(device=device, dtype=torch.float32)
        x = x.div_(255.0).sub_(MEAN).div_(STD)
        return x, labels.to(device)

    train_x, train_y = to_device(mnist.train_images, mnist.train_labels, train_idx)
    test_x, test_y = to_device(mnist.test_images, mnist.test_labels, test_idx)
    if split is None:
        return Tensors(train_x, train_y, test_x, test_y)
    val_x, val_y = to_device(mnist.train_images, mnist.train_labels, split.indices)
    return Tensors(train_x, train_y, test_x, test_y, val_x, val_y, split)
