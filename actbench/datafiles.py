"""Finding an IDX data set's files (by content: see `actbench.locate`) and reading them, without
torch.

Decompressing MNIST takes a quarter of a second; `prefetch` starts it in a background thread
(zlib and md5 release the interpreter lock), so the command line can overlap it with importing
torch. `read_bytes` then takes the prefetched bytes, or reads the file itself.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from actbench import datasets
from actbench.datasets import DataSet
from actbench.locate import GZIP_MAGIC, DataError, survey

__all__ = ["FILES", "DataError", "find_files", "prefetch", "read_bytes"]

FILES = {f.role: f.name for f in datasets.MNIST.files}  # role -> canonical name (no .gz)


def find_files(data_dir: Path, spec: DataSet | None = None) -> dict[str, Path] | None:
    """The data set's files under `data_dir` by role, or None when it holds nothing like them.

    Files are recognised by content (see `actbench.locate`); `spec` defaults to MNIST.
    Raises DataError, naming what was found and what is missing, when the set is incomplete
    or ambiguous, and OSError when the folder cannot be read.
    """
    found = survey(data_dir, spec or datasets.MNIST)
    if found.empty:
        return None
    if found.problems:
        raise DataError(found.refusal())
    return {role: file.path for role, file in found.files.items()}


def _read(path: Path) -> tuple[bytes, str]:
    raw = path.read_bytes()
    if raw.startswith(GZIP_MAGIC):  # compressed or not, whatever the name says
        raw = gzip.decompress(raw)
    return raw, hashlib.md5(raw).hexdigest()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass
class _Prefetched:
    stamp: tuple[int, int] | None  # the file's size and time when the read began
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[bytes, str] | BaseException | None = None


_prefetched: dict[Path, _Prefetched] = {}
_lock = threading.Lock()


def prefetch(data_dir: Path | str, dataset: str = "mnist") -> threading.Thread | None:
    """Start reading the files of `dataset` under `data_dir` in the background, if they are there.

    Only the IDX data sets (MNIST, Fashion-MNIST, KMNIST) are read ahead; for the others this
    does nothing. Returns the reading thread (None when there is nothing to read). Nothing is
    reported here: whatever goes wrong is reported by `read_bytes` when the loader asks for
    the file, and a file that changed meanwhile is read again.
    """
    spec = datasets.spec(dataset) if dataset in datasets.NAMES else None
    if not isinstance(spec, DataSet):
        return None
    try:
        files = find_files(Path(data_dir), spec)
    except (OSError, DataError):
        return None
    if files is None:
        return None
    slots = {path: _Prefetched(_stamp(path)) for path in files.values()}
    with _lock:
        _prefetched.update(slots)

    def work() -> None:
        for path, slot in slots.items():
            try:
                slot.result = _read(path)
            except BaseException as err:  # handed to the reader, which explains it
                slot.result = err
            slot.done.set()

    thread = threading.Thread(target=work, name="actbench-prefetch", daemon=True)
    thread.start()
    return thread


def read_bytes(path: Path) -> tuple[bytes, str]:
    """The file's content (decompressed if it is gzipped) and its md5, or a DataError."""
    with _lock:
        slot = _prefetched.pop(path, None)
    result: tuple[bytes, str] | BaseException | None = None
    if slot is not None:
        slot.done.wait()
        if slot.stamp is not None and slot.stamp == _stamp(path):
            result = slot.result
    try:
        if result is None:
            result = _read(path)
        elif isinstance(result, BaseException):
            raise result
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path} is corrupt ({err}); replace it with a fresh copy") from None
    except OSError as err:
        raise DataError(
            f"cannot read {path} ({err.strerror or err}); check the file and its permissions"
        ) from None
    return result
