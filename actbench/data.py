"""The data sets in memory: read (or generated) once, then flattened and normalised into the
tensors training uses (see `prepare`).

Where each comes from (`load_dataset`):
- MNIST, Fashion-MNIST, KMNIST: their four IDX files, found by content (`actbench.locate`);
- CIFAR-10: its pickled batches or published archive (`actbench.cifar`);
- MNIST-1D: made by the `mnist1d` package's generator (`actbench.mnist1d_data`).

How each is normalised (inputs on a 0-1 scale first, pixel value / 255, for the image sets):
- MNIST: (x - 0.1307) / 0.3081, the mean and standard deviation of the pixels of its 60,000
  training images (the constants of PyTorch's MNIST example, kept as they are so that MNIST
  runs stay comparable with earlier ones);
- Fashion-MNIST, KMNIST (one channel) and CIFAR-10 (red, green and blue separately): minus the
  mean, over the standard deviation (population), of the training images' pixels of each
  channel, computed exactly from the files read (all their training images, before --subset
  and --val; see `channel_stats`);
- MNIST-1D: as generated: its generator centres the whole set (training and test together)
  and scales it to unit standard deviation (`mnist1d.data.make_dataset`), nothing more.
The manifest records the constants used (`Tensors.record`).
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from actbench import datasets
from actbench.datafiles import FILES, DataError, read_bytes
from actbench.datasets import UBYTE, DataSet
from actbench.download import download as fetch
from actbench.errors import UsageError
from actbench.locate import Survey, survey
from actbench.names import flag, setting

__all__ = [
    "FILES",
    "MNIST",
    "DataError",
    "RawData",
    "Tensors",
    "ValSplit",
    "channel_stats",
    "load_dataset",
    "load_idx",
    "load_mnist",
    "prepare",
    "read_idx",
]

MEAN, STD = 0.1307, 0.3081  # MNIST training-pixel mean and std on a 0-1 scale
# The validation split's own generator seed: never a model seed, so the split is the same for
# every seed of a run and of any other run on the same training data.
VAL_SEED = 1_000_003
# Where a data set's normalisation comes from, as the manifest says it.
FIXED = "fixed constants: the MNIST training pixels' mean and std"
COMPUTED = "computed: the training images' pixel mean and std, per channel"
GENERATED = "the mnist1d generator: the whole set centred and scaled to unit std"


@dataclass(frozen=True)
class RawData:
    """A data set as read, before flattening and normalising.

    `train_images`, `test_images`: uint8 images (N, 28, 28) or (N, channels, 32, 32), or, for
    MNIST-1D, float64 samples (N, 40) already normalised; `train_labels`, `test_labels`: int64
    (N,) in 0..classes-1. `md5` fingerprints the content (file name -> md5), for the manifest
    and for resuming on the same data. `mean`, `std`: per channel, on the 0-1 scale (None:
    inputs used as they are); `normalised_by` says where they come from.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    md5: dict[str, str]  # md5 of each file's uncompressed content, for the manifest
    dataset: str = "mnist"  # its --dataset name
    classes: int = 10
    mean: tuple[float, ...] | None = (MEAN,)
    std: tuple[float, ...] | None = (STD,)
    normalised_by: str = FIXED

    @property
    def name(self) -> str:
        """The data set's name as messages write it ('Fashion-MNIST')."""
        return datasets.title(self.dataset)


MNIST = RawData  # the name of the class before other data sets joined


@dataclass(frozen=True)
class ValSplit:
    """Which training samples a run holds out for validation, and how they were drawn."""

    indices: torch.Tensor  # (N,) int64, sorted: rows of the data set's training files
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
    """Model-ready data on one device: normalised float inputs (N, inputs) and labels (N,).

    `val_x`, `val_y` hold the validation split (taken out of the training data), None without.
    `inputs` (784 for the 28x28 sets, 3,072 for CIFAR-10, 40 for MNIST-1D) and `classes` size
    the network; `dataset`, `mean`, `std` and `normalised_by` say what the inputs are.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    val_split: ValSplit | None = None
    dataset: str = "mnist"
    classes: int = 10
    mean: tuple[float, ...] | None = (MEAN,)
    std: tuple[float, ...] | None = (STD,)
    normalised_by: str = FIXED

    @property
    def inputs(self) -> int:
        """Inputs per sample (the first layer's width)."""
        return self.train_x.shape[1]

    def record(self) -> dict[str, Any]:
        """The manifest's description of the data: name, sizes and normalisation."""
        return {
            "dataset": self.dataset,
            "inputs": self.inputs,
            "classes": self.classes,
            "normalisation": {
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None,
                "by": self.normalised_by,
            },
        }


def read_idx(path: Path) -> tuple[torch.Tensor, str]:
    """Decode one IDX file of unsigned bytes; return the tensor and the md5 of its content."""
    raw, md5 = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE or not 1 <= raw[3] <= 3:
        raise DataError(f"{path} is not an IDX file (bad header); replace it with a fresh copy")
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


def channel_stats(images: torch.Tensor, channels: int) -> tuple[tuple[float, ...], ...]:
    """Per-channel mean and population std of uint8 `images` (N, channels, ...) on a 0-1 scale.

    Exact: from each channel's histogram of the 256 pixel values, summed in float64.
    Returns (means, stds), one value per channel.
    """
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in images.reshape(len(images), channels, -1).unbind(1):
        counts = torch.bincount(channel.reshape(-1), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = (counts * levels).sum() / n
        var = (counts * (levels - mean) ** 2).sum() / n
        means.append(float(mean))
        stds.append(math.sqrt(float(var)))
    return tuple(means), tuple(stds)


def _checked(
    spec_name: str,
    where: dict[str, str],
    images: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    classes: int,
) -> None:
    """Refuse splits whose images and labels disagree, or labels outside 0..classes-1."""
    for split in ("train", "test"):
        if len(images[split]) != len(labels[split]):
            raise DataError(
                f"{where[split + '_images']} has {len(images[split])} images but "
                f"{where[split + '_labels']} has {len(labels[split])} labels; "
                "replace the mismatched file"
            )
        if len(labels[split]) and int(labels[split].max()) > classes - 1:
            raise DataError(
                f"{where[split + '_labels']} holds labels above {classes - 1}; "
                f"it is not {spec_name}'s"
            )


def load_idx(spec: DataSet, data_dir: Path | str, download: bool = True) -> RawData:
    """Read an IDX data set (MNIST, Fashion-MNIST, KMNIST) from `data_dir`.

    Downloads it first into `data_dir/<torchvision's folder>/raw` when the folder holds none
    of it. The four files are recognised by content wherever they lie in the folder's accepted
    layouts (flat, torchvision's `MNIST/raw`, or one folder deeper), and files that are
    another of these data sets' are never used (see `actbench.locate`).
    Raises UsageError when `data_dir` is a file, DataError (one line: what was found, what is
    missing, the fix) when the files are missing, ambiguous, corrupt or cannot be downloaded.
    A failed attempt writes nothing into `data_dir`.
    """
    data_dir = Path(data_dir)
    found = _survey(data_dir, spec)
    if found.empty:
        seen = f" (found {found.listing()})" if found.seen else ""
        # the IDX sets share file names: another's go in torchvision's folder for them
        place = data_dir if spec.folder == "MNIST" else data_dir / spec.folder / "raw"
        if not download:
            raise DataError(
                f"{spec.name} is not in {data_dir}{seen}; put the four files "
                f"({_expected(spec)}) in {place} or point --data-dir at them"
            )
        try:
            fetch(spec, data_dir)
        except DataError as err:
            raise DataError(
                f"{spec.name} is not in {data_dir}{seen} and {err}; nothing was written there; "
                f"put the four files ({_expected(spec)}) in {place}, "
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
    _checked(
        spec.name,
        {role: str(path) for role, path in files.items()},
        {s: tensors[f"{s}_images"] for s in ("train", "test")},
        {s: tensors[f"{s}_labels"] for s in ("train", "test")},
        spec.classes,
    )
    if spec.key == datasets.MNIST.key:
        mean, std, by = (MEAN,), (STD,), FIXED
    else:
        (mean, std), by = channel_stats(tensors["train_images"], 1), COMPUTED
    return RawData(
        tensors["train_images"],
        tensors["train_labels"].long(),
        tensors["test_images"],
        tensors["test_labels"].long(),
        md5,
        spec.key,
        spec.classes,
        mean,
        std,
        by,
    )


def load_mnist(data_dir: Path | str, download: bool = True) -> RawData:
    """Read MNIST from `data_dir` (see `load_idx`)."""
    return load_idx(datasets.MNIST, data_dir, download)


def load_dataset(name: str, data_dir: Path | str, download: bool = True) -> RawData:
    """Read (or generate) the data set `name`, one of `datasets.NAMES`, into memory.

    `data_dir` and `download` apply to the data sets read from files; MNIST-1D is generated
    (nothing is read, downloaded or written). Raises UsageError for an unknown name, else as
    the data set's own loader: `load_idx`, `actbench.cifar.load_cifar10`,
    `actbench.mnist1d_data.generate`.
    """
    if name not in datasets.NAMES:
        raise UsageError(f"dataset must be one of {', '.join(datasets.NAMES)}, got {name!r}")
    spec = datasets.spec(name)
    if isinstance(spec, DataSet):
        return load_idx(spec, data_dir, download)
    if isinstance(spec, datasets.ArchiveSet):
        from actbench.cifar import load_cifar10

        train_x, train_y, test_x, test_y, md5 = load_cifar10(Path(data_dir), download)
        mean, std = channel_stats(train_x, spec.channels)
        return RawData(
            train_x, train_y, test_x, test_y, md5, spec.key, spec.classes, mean, std, COMPUTED
        )
    from actbench.mnist1d_data import generate

    made = generate()
    return RawData(
        made.train_x,
        made.train_y,
        made.test_x,
        made.test_y,
        made.md5,
        spec.key,
        spec.classes,
        None,
        None,
        GENERATED,
    )


# The seed of the `--subset` draw: fixed, so the subset depends only on its size, never on the
# seeds of the models trained on it (a model's numbers depend only on its own settings and seed).
SUBSET_SEED = 0


def subset_indices(
    total: int, size: int | None, seed: int, name: str | None = None
) -> torch.Tensor | None:
    """A seeded random choice of `size` of `total` samples (None = all, kept in order).

    Raises UsageError when `size` exceeds `total` (`name`, the data set, is named then).
    """
    if size is None or size == total:
        return None
    if size > total:
        of = f" of {name}" if name else ""
        raise UsageError(
            f"{setting('subset')} {size} is larger than the {total} training samples{of}; "
            f"use {flag('subset')} {total} or less"
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
        left = total - size
        if most > 0:
            fix = f"use {flag('val')} {most} or less"
        elif left > 0:  # no --val leaves a batch: a smaller batch fits what is left
            fix = f"use {flag('batch_size')} {left} or less"
        else:
            fix = (
                f"hold out fewer than {total} samples ({flag('val')}) and lower "
                f"{flag('batch_size')} to what that leaves"
            )
        raise UsageError(
            f"{setting('val')} {size} leaves {max(left, 0)} of the {total} training samples, "
            f"fewer than one batch ({setting('batch_size')} {batch_size}); {fix}"
        )
    generator = torch.Generator().manual_seed(VAL_SEED)
    return torch.randperm(total, generator=generator)[:size].sort().values


def split_indices(
    train_n: int,
    subset: int | None,
    seed: int,
    val: int = 0,
    batch_size: int = 1,
    name: str | None = None,
) -> tuple[torch.Tensor | None, ValSplit | None]:
    """The training rows (None = all, in order) and the validation split (None without).

    The subset is drawn first (seeded with `seed`); `val` of its samples are then held out
    (see `validation_positions`) and the rest, in their order, are the training data.
    """
    train_idx = subset_indices(train_n, subset, seed, name)
    if not val:
        return train_idx, None
    rows = torch.arange(train_n) if train_idx is None else train_idx
    held = validation_positions(len(rows), val, batch_size)
    keep = torch.ones(len(rows), dtype=torch.bool)
    keep[held] = False
    return rows[keep], ValSplit(rows[held].sort().values, VAL_SEED)


def prepare(
    raw: RawData,
    subset: int | None,
    seed: int,
    device: torch.device,
    val: int = 0,
    batch_size: int = 1,
) -> Tensors:
    """Flatten and normalise once; take the seeded subset (and the same fraction of the test set).

    With `val`, that many of the training samples become the validation split and the models
    train on the rest; `batch_size` is the least the rest may hold (UsageError otherwise, and
    when `subset` exceeds the training samples there are).
    """
    train_n, test_n = len(raw.train_labels), len(raw.test_labels)
    train_idx, split = split_indices(train_n, subset, seed, val, batch_size, raw.name)
    test_idx = None
    if subset is not None:
        test_size = max(1, round(test_n * subset / train_n))
        test_idx = subset_indices(test_n, min(test_size, test_n), seed + 1)

    def to_device(inputs: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor | None):
        if idx is not None:
            inputs, labels = inputs[idx], labels[idx]
        x = inputs.reshape(len(inputs), -1).to(device=device, dtype=torch.float32)
        if raw.mean is not None and raw.std is not None:
            x = x.div_(255.0)
            if len(raw.mean) == 1:
                x = x.sub_(raw.mean[0]).div_(raw.std[0])
            else:  # channel after channel, as the images store them
                for c, part in enumerate(x.view(len(x), len(raw.mean), -1).unbind(1)):
                    part.sub_(raw.mean[c]).div_(raw.std[c])
        return x, labels.to(device)

    train_x, train_y = to_device(raw.train_images, raw.train_labels, train_idx)
    test_x, test_y = to_device(raw.test_images, raw.test_labels, test_idx)
    about = {
        "dataset": raw.dataset,
        "classes": raw.classes,
        "mean": raw.mean,
        "std": raw.std,
        "normalised_by": raw.normalised_by,
    }
    if split is None:
        return Tensors(train_x, train_y, test_x, test_y, **about)
    val_x, val_y = to_device(raw.train_images, raw.train_labels, split.indices)
    return Tensors(train_x, train_y, test_x, test_y, val_x, val_y, split, **about)
