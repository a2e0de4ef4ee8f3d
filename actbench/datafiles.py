"""Finding the four MNIST files and reading their bytes, without torch.

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

from actbench.errors import ActbenchError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(ActbenchError):
    """Missing, unreadable or corrupt data files."""


def _candidates(data_dir: Path, name: str) -> list[Path]:
    folders = (data_dir, data_dir / "MNIST" / "raw")
    return [folder / (name + suffix) for folder in folders for suffix in ("", ".gz")]


def find_files(data_dir: Path) -> dict[str, Path] | None:
    """The four IDX files under `data_dir`, or None when there are none at all."""
    found: dict[str, Path] = {}
    for key, name in FILES.items():
        for path in _candidates(data_dir, name):
            if path.is_file():
                found[key] = path
                break
    if not found:
        return None
    missing = [FILES[key] for key in FILES if key not in found]
    if missing:
        raise DataError(
            f"{data_dir} holds only part of MNIST: missing {', '.join(missing)} (plain or .gz); "
            "add the missing files"
        )
    return found


def _read(path: Path) -> tuple[bytes, str]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
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


def prefetch(data_dir: Path | str) -> threading.Thread | None:
    """Start reading the MNIST files under `data_dir` in the background, if they are there.

    Returns the reading thread (None when there is nothing to read). Nothing is reported
    here: whatever goes wrong is reported by `read_bytes` when the loader asks for the file,
    and a file that changed meanwhile is read again.
    """
    try:
        files = find_files(Path(data_dir))
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
    """The file's content (decompressed if it ends in .gz) and its md5, or a DataError."""
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
