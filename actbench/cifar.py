"""CIFAR-10 from its pickled batches: torchvision's `cifar-10-batches-py` folder, or the
published archive `cifar-10-python.tar.gz` read as it is (Krizhevsky 2009; the file layout of
https://www.cs.toronto.edu/~kriz/cifar.html).

Where the batches are looked for, first found wins:
1. `<data folder>/cifar-10-batches-py/` (where torchvision and a download put them), or the
   data folder itself when it holds the batch files (`--data-dir` at that folder);
2. `<data folder>/cifar-10-python.tar.gz`, read without unpacking (nothing is written).
Each batch is a pickled dict of `data` (N, 3,072 uint8: 1,024 red, then green, then blue
pixels, rows of 32) and `labels` (N ints, 0-9). The pickles are read by an unpickler that
builds nothing but numpy arrays, so a planted file cannot run code.
A download fetches the archive (md5 checked: torchvision's `CIFAR10.tgz_md5`) into a temporary
folder inside the data folder, unpacks the batches there and moves the folder into place;
a failed one leaves the data folder as it was.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import importlib
import io
import os
import pickle
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actbench import datasets
from actbench import download as _download
from actbench.datasets import DataSet, FileSpec
from actbench.locate import DataError

__all__ = ["download_cifar10", "load_cifar10", "read_batch"]


def _table() -> datasets.ArchiveSet:
    """CIFAR-10's table (looked up when used, so a test's replacement of it is the one used)."""
    return datasets.CIFAR10


def _member() -> str:
    """The folder the archive's members lie in, as their names spell it."""
    return _table().folder + "/"


def _numpy_core() -> Any:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        with contextlib.suppress(ImportError):
            return importlib.import_module(module)
    raise ImportError("numpy's multiarray module")  # pragma: no cover


_CORE = _numpy_core()
# The only things a CIFAR-10 batch pickle may build: numpy arrays, their dtypes, and bytes
# (which pickles of protocol 2 written by Python 3 spell as a call of codecs.encode).
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _CORE._reconstruct
    _ALLOWED[(_module, "scalar")] = _CORE.scalar


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"it asks for {module}.{name}")


def read_batch(raw: bytes, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one pickled batch: uint8 images (N, 3, 32, 32) and int64 labels (N,).

    Raises DataError naming `where` when the bytes are not a CIFAR-10 batch.
    """
    fix = "replace it with a fresh copy"
    try:
        batch = _ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    except Exception as err:  # garbage makes the unpickler fail in many ways: all mean one thing
        raise DataError(
            f"{where} is not a CIFAR-10 batch (unreadable pickle: {err}); {fix}"
        ) from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise DataError(f"{where} is not a CIFAR-10 batch (no data and labels in it); {fix}")
    data, labels = batch["data"], batch["labels"]
    inputs = _table().inputs
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
        raise DataError(f"{where} is not a CIFAR-10 batch (its data is no uint8 table); {fix}")
    if data.shape[1] != inputs:
        raise DataError(
            f"{where} holds images of {data.shape[1]} values, not CIFAR-10's {inputs}; {fix}"
        )
    try:
        label_tensor = torch.tensor(list(labels), dtype=torch.int64)
    except (TypeError, ValueError, RuntimeError):
        raise DataError(
            f"{where} is not a CIFAR-10 batch (its labels are not integers); {fix}"
        ) from None
    if label_tensor.ndim != 1 or len(label_tensor) != len(data):
        raise DataError(f"{where} has {len(data)} images but {label_tensor.numel()} labels; {fix}")
    if len(label_tensor) and not 0 <= int(label_tensor.min()) <= int(label_tensor.max()) <= 9:
        raise DataError(f"{where} holds labels outside 0-9; it is not CIFAR-10's; {fix}")
    images = torch.from_numpy(np.ascontiguousarray(data)).reshape(
        len(data), _table().channels, *_table().image
    )
    return images, label_tensor


def _batch_folder(data_dir: Path) -> Path | None:
    """The folder holding the batch files, if any holds one of them."""
    names = {b.name for b in _table().batches}
    for folder in (data_dir / _table().folder, data_dir):
        if folder.is_dir() and any((folder / name).is_file() for name in names):
            return folder
    return None


def _from_folder(folder: Path) -> dict[str, tuple[bytes, str]]:
    missing = [b.name for b in _table().batches if not (folder / b.name).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 in {folder} cannot be used: {', '.join(missing)} missing; "
            "put all six batch files (data_batch_1 to data_batch_5, test_batch) there, "
            f"or remove the folder to download {_table().archive} again"
        )
    out = {}
    for batch in _table().batches:
        try:
            out[batch.name] = ((folder / batch.name).read_bytes(), str(folder / batch.name))
        except OSError as err:
            raise DataError(
                f"cannot read {folder / batch.name} ({err.strerror or err}); "
                "check the file and its permissions"
            ) from None
    return out


def _from_archive(path: Path) -> dict[str, tuple[bytes, str]]:
    fix = "replace it with a fresh copy or unpack it there"
    out = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for batch in _table().batches:
                try:
                    member = archive.extractfile(_member() + batch.name)
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(
                        f"{path} holds no {_member()}{batch.name}: it is not CIFAR-10's archive; "
                        f"{fix}"
                    )
                out[batch.name] = (member.read(), f"{path} ({_member()}{batch.name})")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path} is not a readable tar.gz archive ({err}); {fix}") from None
    except OSError as err:
        raise DataError(
            f"cannot read {path} ({err.strerror or err}); check the file and its permissions"
        ) from None
    return out


def _files(data_dir: Path) -> dict[str, tuple[bytes, str]] | None:
    """Each batch file's bytes and where they were read, by name; None when there are none."""
    folder = _batch_folder(data_dir)
    if folder is not None:
        return _from_folder(folder)
    archive = data_dir / _table().archive
    if archive.is_file():
        return _from_archive(archive)
    return None


def _expected() -> str:
    return (
        f"the folder {_table().folder} (torchvision's layout: data_batch_1 to data_batch_5 "
        f"and test_batch) or the archive {_table().archive}"
    )


def load_cifar10(
    data_dir: Path, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, str]]:
    """CIFAR-10 from `data_dir`, downloaded first when it holds none of it.

    Returns uint8 training images (50000, 3, 32, 32), int64 labels (50000,), the test images
    and labels (10000 each) with the published files, and the md5 of each batch file.
    Raises DataError (one line: what is wrong, the fix) when the batches are missing,
    incomplete, corrupt, or cannot be downloaded; a failed download writes nothing.
    """
    if data_dir.exists() and not data_dir.is_dir():
        from actbench.errors import UsageError

        raise UsageError(f"data folder {data_dir} is a file; point --data-dir at a folder")
    files = _files(data_dir) if data_dir.is_dir() else None
    if files is None:
        if not download:
            raise DataError(
                f"CIFAR-10 is not in {data_dir}; put {_expected()} there "
                "or point --data-dir at them"
            )
        try:
            download_cifar10(data_dir)
        except DataError as err:
            raise DataError(
                f"CIFAR-10 is not in {data_dir} and {err}; nothing was written there; "
                f"put {_expected()} in {data_dir}, "
                "or point --data-dir / ACTBENCH_DATA_DIR at a folder that has them"
            ) from None
        files = _files(data_dir)
        if files is None:
            raise DataError(f"the download left no CIFAR-10 files in {data_dir}")
    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"train": [], "test": []}
    md5 = {}
    for batch in _table().batches:
        raw, where = files[batch.name]
        md5[batch.name] = hashlib.md5(raw).hexdigest()
        parts[batch.split].append(read_batch(raw, where))
    train_x = torch.cat([x for x, _ in parts["train"]])
    train_y = torch.cat([y for _, y in parts["train"]])
    test_x = torch.cat([x for x, _ in parts["test"]])
    test_y = torch.cat([y for _, y in parts["test"]])
    return train_x, train_y, test_x, test_y, md5


def _download_spec() -> tuple[DataSet, FileSpec]:
    """The archive as the downloader's tables describe a file: one mirror, one md5."""
    base, name = _table().url.rsplit("/", 1)
    archive = FileSpec("archive", "train", "archive", name.removesuffix(".gz"), (), 0,
                       _table().archive_md5)  # fmt: skip
    table = _table()
    spec = DataSet(table.key, table.name, table.folder, (base + "/",), (archive,))
    return spec, archive


def _unpack(archive: Path, into: Path) -> None:
    """Write the archive's batch folder's regular files into `into` (no other paths)."""
    into.mkdir()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if not (member.isfile() and name.startswith(_member())):
                    continue
                leaf = name.removeprefix(_member())
                if not leaf or "/" in leaf or leaf in (".", ".."):
                    continue
                source = tar.extractfile(member)
                if source is not None:
                    (into / leaf).write_bytes(source.read())
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"the downloaded {archive.name} cannot be unpacked ({err})") from None


def download_cifar10(data_dir: Path) -> Path:
    """Fetch the archive, check its md5 and unpack it into `data_dir/cifar-10-batches-py`.

    Raises DataError with one line naming the cause when it cannot be fetched intact, unpacked
    or written; nothing is left behind then. Returns the batch folder.
    """
    spec, archive = _download_spec()
    target = data_dir / _table().folder
    created: list[Path] = []
    moved = False
    try:
        created += _download._make_dirs(data_dir)
        with tempfile.TemporaryDirectory(prefix=".actbench-download-", dir=data_dir) as tmp:
            print(f"Downloading CIFAR-10 into {target} ...", file=sys.stderr, flush=True)
            path = Path(tmp) / archive.download_name
            _download._fetch(archive, path, spec)
            _unpack(path, Path(tmp) / _table().folder)
            if target.exists():  # looked for before downloading: only a concurrent writer
                raise DataError(f"{target} appeared during the download; run again")
            os.replace(Path(tmp) / _table().folder, target)
            moved = True
    except BaseException as err:
        if moved:
            for path in target.iterdir():
                path.unlink(missing_ok=True)
            target.rmdir()
        for folder in reversed(created):
            with contextlib.suppress(OSError):  # not empty: someone else wrote there meanwhile
                folder.rmdir()
        if isinstance(err, OSError):
            raise DataError(
                f"cannot write the download into {data_dir} "
                f"({err.strerror or err}); check the folder and the free disk space"
            ) from None
        raise
    return target
