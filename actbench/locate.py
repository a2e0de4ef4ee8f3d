"""Finding a data set's files in a data folder by what they hold, without torch.

Where files are looked for, in tiers (the first tier holding anything data-like decides):
1. the folder itself and torchvision's layout in it (`MNIST/raw`);
2. one level deeper (what unpacking an archive leaves: `archive/`, `mnist/`), and each
   such folder's `MNIST/raw`.
Hidden files and folders are skipped. Every file there is recognised by its first bytes:
gzip by its magic bytes (1f 8b) whatever its name says, then the IDX header (type code and
dimensions) says whether it holds images or labels and how many. Names only say which split
a file belongs to (train or test) where they do; otherwise the larger file is the training
one, or a lone file goes with the file of the other kind holding as many samples.
Files with the same content (a plain and a gzipped copy, say) count once.

MNIST, Fashion-MNIST and KMNIST files have the same headers, so whose files they are is
decided apart from their shapes, first match wins:
1. a label file whose content has the md5 of one of the published label files is that data
   set's (`FileSpec.content_md5`), and so are the image files in the same folder;
2. a file in a folder named for one of them (its torchvision folder `FashionMNIST`, or
   `FashionMNIST/raw`; case, dashes and underscores aside, so `fashion-mnist/` too) is that
   data set's;
3. any other file may be any of them: it is taken for the data set asked for.
Files found to be another data set's are never used: they are named in messages only, and a
folder holding nothing else counts as holding nothing of the data set asked for.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from actbench import datasets
from actbench.datasets import DataSet, FileSpec
from actbench.errors import ActbenchError

GZIP_MAGIC = b"\x1f\x8b"
_HEAD = 512  # bytes read to recognise a file: IDX headers, HTML, zip and tar all show by then
_UNPACK = "archive: unpack it"


class DataError(ActbenchError):
    """Missing, unreadable, ambiguous or corrupt data files (exit code 1)."""


@dataclass(frozen=True)
class Found:
    """One file seen in a data folder and what its content says it holds."""

    path: Path
    gzipped: bool
    kind: str | None  # "images" or "labels" when its header matches the data set; else None
    count: int  # samples (the first IDX dimension) when `kind` is set; else 0
    what: str  # what it holds, in words that read after "the file is"
    owner: str | None = None  # the data set whose file it is, where that is known

    @property
    def archive(self) -> bool:
        """Whether it is an archive (zip or tar) that holds files still to unpack."""
        return self.what.endswith(_UNPACK)


def is_html(head: bytes) -> bool:
    """Whether these first bytes of a file look like an HTML page."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")) or (
        b"<html" in start
    )


def _describe_other(head: bytes, gzipped: bool, name: str) -> str:
    """What a file that is not an IDX file is, in words that read after 'the file is'."""
    if is_html(head):
        return "an HTML page, not data (a failed download?)"
    if head.startswith(b"PK\x03\x04"):
        return f"a zip {_UNPACK}"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return f"a tar {_UNPACK}"
    if gzipped:
        return "gzipped, but not an IDX file"
    return "corrupt: neither gzip nor IDX" if name.endswith(".gz") else "not an IDX file"


def sniff(path: Path, spec: DataSet) -> Found:
    """Recognise one file from its first bytes (decompressed when it is gzipped)."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    gzipped = head.startswith(GZIP_MAGIC)
    if gzipped:
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(_HEAD)
        except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
            return Found(path, True, None, 0, "a damaged gzip file")
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or not 1 <= head[3] <= 4:
        return Found(path, gzipped, None, 0, _describe_other(head, gzipped, path.name))
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        return Found(path, gzipped, None, 0, "an IDX file cut short in its header")
    dims = struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])
    for file in spec.files:
        if head[2] == file.idx_type and tuple(dims[1:]) == file.item_shape:
            shape = "x".join(str(d) for d in dims)
            owner = _label_owner(path, gzipped) if file.kind == "labels" else None
            return Found(path, gzipped, file.kind, dims[0], f"{file.kind}, {shape}", owner)
    shape = "x".join(str(d) for d in dims)
    return Found(path, gzipped, None, 0, f"an IDX file of shape {shape}, not {spec.name}")


def _content_md5(path: Path, gzipped: bool) -> str | None:
    """md5 of the file's (uncompressed) content; None when it cannot be read through."""
    digest = hashlib.md5()
    try:
        with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):  # damaged: the loader names it
        return None
    return digest.hexdigest()


def _label_owner(path: Path, gzipped: bool) -> str | None:
    """The data set whose published label file this is, by its content's md5; else None."""
    known = {f.content_md5: s.name for s in datasets.idx_sets() for f in s.files if f.content_md5}
    md5 = _content_md5(path, gzipped)
    return known.get(md5) if md5 else None


def _folder_key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _folder_owner(path: Path) -> str | None:
    """The data set whose folder (torchvision's, or named like it) holds this file; else None."""
    parent = path.parent
    names = [parent.name] + ([parent.parent.name] if parent.name.lower() == "raw" else [])
    for spec in datasets.idx_sets():
        if any(_folder_key(name) == _folder_key(spec.folder) for name in names):
            return spec.name
    return None


def _owned(seen: list[Found]) -> list[Found]:
    """The files with `owner` filled where it is known (see the module's docstring)."""
    by_labels: dict[Path, set[str]] = {}
    for found in seen:
        if found.kind == "labels" and found.owner:
            by_labels.setdefault(found.path.parent, set()).add(found.owner)
    out = []
    for found in seen:
        if found.kind is not None and found.owner is None:
            labels = by_labels.get(found.path.parent, set())
            owner = next(iter(labels)) if len(labels) == 1 else _folder_owner(found.path)
            if owner:
                found = dataclasses.replace(found, owner=owner)
        out.append(found)
    return out


def _foreign(found: Found, spec: DataSet) -> bool:
    """Whether the file is known to be another data set's."""
    return found.kind is not None and found.owner not in (None, spec.name)


_prints: dict[tuple[Path, int, int], tuple[int, int]] = {}  # (path, size, mtime) -> print


def fingerprint(found: Found) -> tuple[int, int]:
    """(size mod 2**32, CRC-32) of the file's uncompressed content.

    A gzip file states both in its last eight bytes; a plain file is read through once (and
    its fingerprint kept while its size and modification time stay the same).
    """
    path = found.path
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _prints:
        _prints[key] = _fingerprint(path, found.gzipped)
    return _prints[key]


def _fingerprint(path: Path, gzipped: bool) -> tuple[int, int]:
    if gzipped:
        with path.open("rb") as handle:
            handle.seek(-8, 2)
            crc, size = struct.unpack("<II", handle.read(8))
        return size, crc
    crc = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return path.stat().st_size % (1 << 32), crc


def _canonical(name: str) -> str:
    """A file name as the canonical names spell it: lower case, no .gz, dashes for . and _."""
    name = name.lower().removesuffix(".gz")
    return name.replace(".", "-").replace("_", "-")


def _named_like(name: str, spec: DataSet) -> bool:
    return _canonical(name) in {f.name for f in spec.files}


def _split_of(name: str, spec: DataSet) -> str | None:
    low = name.lower()
    splits = {split for split, words in spec.split_words if any(w in low for w in words)}
    return splits.pop() if len(splits) == 1 else None


def _tiers(data_dir: Path, spec: DataSet) -> Iterator[list[Path]]:
    """The folders to look in, tier by tier (a generator: deeper tiers are listed on demand)."""
    yield [data_dir, data_dir / spec.folder / "raw"]
    subs = []
    for entry in sorted(data_dir.iterdir()):
        try:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
        except OSError:  # an unreadable entry one level down is no candidate
            continue
        subs += [entry, entry / spec.folder / "raw"]
    yield subs


def _files(folder: Path, strict: bool) -> list[Path]:
    """The visible regular files of a folder, sorted (plain before .gz of the same name)."""
    try:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    except OSError:
        if strict:
            raise
        return []


@dataclass
class Survey:
    """What a data folder holds for one data set.

    `files` maps each role that was filled to its file; `problems` says, in words, what stops
    the set from being used (missing, ambiguous or duplicate files); `seen` is everything
    worth naming when refusing: recognised files, files named like the data set's and archives.
    """

    data_dir: Path
    spec: DataSet
    files: dict[str, Found]
    problems: list[str]
    seen: list[Found]

    @property
    def empty(self) -> bool:
        """Nothing data-like here: no recognised file and no file named like one."""
        return not self.files and not self.problems

    def rel(self, path: Path) -> str:
        """The path relative to the data folder, as messages show it."""
        try:
            return str(path.relative_to(self.data_dir))
        except ValueError:
            return str(path)

    def listing(self) -> str:
        """Each file seen and what it holds, e.g. 'a.gz (train images, 256x28x28)'."""
        role_of = {found.path: self.spec.file(role).split for role, found in self.files.items()}
        parts = []
        for found in self.seen:
            what = found.what
            if found.path in role_of:
                what = f"{role_of[found.path]} {what}"
            parts.append(f"{self.rel(found.path)} ({what})")
        return ", ".join(parts)

    def refusal(self) -> str:
        """The one-line error: what is wrong, what was found, what was expected, the fix."""
        expected = ", ".join(
            f"{f.label} ({f.name}[.gz], {f.count} {f.kind})" for f in self.spec.files
        )
        return (
            f"{self.spec.name} in {self.data_dir} cannot be used: {'; '.join(self.problems)}; "
            f"found {self.listing() or 'nothing'}; expected one file each of {expected}; "
            "add, remove or move files so that each is there once, "
            "or point --data-dir at a folder that holds them"
        )


def _distinct(found: list[Found]) -> list[Found]:
    """The files of different content (the first of each set of copies, in tier order)."""
    keep: list[Found] = []
    prints: dict[Path, tuple[int, int]] = {}
    for file in found:
        twins = [k for k in keep if (k.kind, k.count) == (file.kind, file.count)]
        if twins:
            for twin in twins:
                if twin.path not in prints:
                    prints[twin.path] = fingerprint(twin)
            mine = fingerprint(file)
            if any(prints[twin.path] == mine for twin in twins):
                continue
            prints[file.path] = mine
        keep.append(file)
    return keep


def _assign(
    found: list[Found], spec: DataSet, rel: Callable[[Path], str]
) -> tuple[dict[str, Found], list[str], list[FileSpec]]:
    """Give each recognised file a role: by the split its name says, else by its content."""
    roles: dict[str, Found] = {}
    problems: list[str] = []
    settled: set[str] = set()  # roles filled, or already explained as a problem
    pending: list[tuple[Found, list[FileSpec]]] = []  # files whose split is still unclear

    def names(files: list[Found]) -> str:
        return " and ".join(rel(f.path) for f in files)

    for kind in spec.kinds:
        specs = [f for f in spec.files if f.kind == kind]
        files = [f for f in found if f.kind == kind]
        unnamed = [f for f in files if _split_of(f.path.name, spec) is None]
        for file_spec in specs:
            named = [f for f in files if _split_of(f.path.name, spec) == file_spec.split]
            if len(named) == 1:
                roles[file_spec.role] = named[0]
            elif named:
                problems.append(
                    f"{len(named)} different files for {file_spec.label}: {names(named)}"
                )
            if named:
                settled.add(file_spec.role)
        free = [f for f in specs if f.role not in settled]
        if not unnamed:
            continue
        if len(unnamed) > len(free):
            problems.append(
                f"{len(files)} different {kind} files where {spec.name} has {len(specs)}: "
                f"{names(files)}"
            )
            settled.update(f.role for f in specs)
        elif len(unnamed) == len(free) and len({f.count for f in unnamed}) == len(unnamed):
            by_size = sorted(unnamed, key=lambda f: -f.count)  # the larger one is for training
            for file, file_spec in zip(by_size, sorted(free, key=lambda f: -f.count), strict=True):
                roles[file_spec.role] = file
            settled.update(f.role for f in free)
        elif len(unnamed) == len(free):
            problems.append(
                f"cannot tell {' from '.join(f.split for f in free)} {kind}: {names(unnamed)} "
                f"hold {unnamed[0].count} each; name them as {spec.name}'s files are named"
            )
            settled.update(f.role for f in free)
        else:
            pending += [(file, free) for file in unnamed]
    for file, free in pending:  # a lone file goes with the other kind's file of its size
        open_roles = [f for f in free if f.role not in roles]
        paired = {
            spec.file(role).split
            for role, other in roles.items()
            if other.kind != file.kind and other.count == file.count
        }
        choice = [f for f in open_roles if f.split in paired] or [
            f for f in open_roles if f.count == file.count
        ]
        if len(choice) == 1:
            roles[choice[0].role] = file
            settled.add(choice[0].role)
        else:
            problems.append(
                f"cannot tell whether {rel(file.path)} holds "
                f"{' or '.join(f.label for f in open_roles)}: name it "
                f"{' or '.join(f.name for f in open_roles)}"
            )
            settled.update(f.role for f in open_roles)
    return roles, problems, [f for f in spec.files if f.role not in settled]


def survey(data_dir: Path, spec: DataSet) -> Survey:
    """Look through `data_dir` for `spec`'s files (see the module's docstring).

    Raises OSError (PermissionError, say) when `data_dir` or a file in its first tier cannot
    be read; unreadable folders and files one level down are skipped.
    """
    archives: list[Found] = []
    others: list[Found] = []  # files known to be another data set's: named, never used
    for depth, folders in enumerate(_tiers(data_dir, spec)):
        strict = depth == 0
        seen: list[Found] = []
        for folder in folders:
            for path in _files(folder, strict):
                try:
                    seen.append(sniff(path, spec))
                except OSError:
                    if strict:
                        raise
        seen = [_described(f, spec) for f in _owned(seen)]
        archives += [f for f in seen if f.archive]
        others += [f for f in seen if _foreign(f, spec)]
        mine = [f for f in seen if f.kind is not None and not _foreign(f, spec)]
        relevant = mine + [f for f in seen if f.kind is None and _named_like(f.path.name, spec)]
        if not relevant:
            continue
        listed = [f for f in seen if f in relevant or f in archives or f in others]
        found = Survey(data_dir, spec, {}, [], listed)
        roles, problems, missing = _assign(_distinct(mine), spec, found.rel)
        for file_spec in missing:  # a file named for the role but holding something else
            named = [
                f for f in relevant if f.kind is None and _canonical(f.path.name) == file_spec.name
            ]
            if len(named) == 1:
                what = f"{found.rel(named[0].path)} is {named[0].what}"
                problems.append(f"{what}; replace it with a fresh copy")
            else:
                problems.append(f"no file holds the {file_spec.label}")
        found.files, found.problems = roles, problems
        return found
    return Survey(data_dir, spec, {}, [], archives + others)


def _described(found: Found, spec: DataSet) -> Found:
    """Another data set's file, described as such ('MNIST's labels, 60000')."""
    if not _foreign(found, spec):
        return found
    return dataclasses.replace(found, what=f"{found.owner}'s {found.what}")
