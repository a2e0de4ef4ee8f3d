"""What `actbench plot` wrote, so that the next plot into the same folder removes what it
did not remake.

A plot folder gets a small record, `RECORD` (`.actbench-plot.json`): every file the last plot
wrote under it, as a path relative to the folder with the SHA-256 of the bytes written, and
the paths that plot was given. Once a later plot has written every one of its own files, it
removes each recorded file that it did not write again, provided the file still holds the
bytes actbench wrote; folders that this leaves empty (a per-setting report's) go too.

Why a record rather than names matching actbench's output patterns: only a record knows that
actbench wrote a file. A name says nothing of who wrote it (your own `notes.md` or
`test_accuracy.png` beside the figures look the same), a per-setting subfolder
(`lr-0.01/`) has no fixed name to match, and a file you edited after the plot wrote it has
become yours: its checksum no longer matches, and it is kept and named. What the record lists
is only ever what a plot wrote, so run data (`metrics.csv`, `manifest.json`, `cost.csv`,
checkpoints) can never be in it; those names are refused all the same, in case a record was
edited by hand. A folder plotted by a version of actbench that kept no record has nothing
removed: its record starts with the next plot.

The record also keeps a plot from overwriting what is not its own: a file where the plot
writes one of its outputs is replaced only if an earlier plot wrote it there and it has not
changed since (or it holds the very bytes the plot writes). Any other file, yours or one you
edited, stops the plot with one line naming it, and stays as it was.

A plot writes nothing until every output is drawn and none is in the way: the outputs are
held in memory until then, so that a plot refused (or failing) while drawing leaves every
folder as it was. Nothing is removed unless every output was written: a plot whose writing
fails part-way (a full disk) removes nothing, and adds what it did write to the record
(keeping the earlier entries), so that the next successful plot still knows those files are
actbench's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actbench.errors import ActbenchError
from actbench.results import MANIFEST, METRICS, atomic_write, write_or_explain

RECORD = ".actbench-plot.json"
# Run data and locks: never removed, whatever a record says.
PROTECTED = frozenset({METRICS, MANIFEST, "cost.csv", ".lock", RECORD})
PROTECTED_FOLDERS = frozenset({"checkpoints"})
_FIX = "choose another folder with --out"

# the `PlotOutputs` in force (None: no plot is recording)
_active: ContextVar[PlotOutputs | None] = ContextVar("plot_outputs", default=None)


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write_output(path: Path, content: str | bytes) -> Path:
    """Write one plot output (a figure's PNG bytes or a report's text) to `path`, atomically
    (`results.write_or_explain`: a failing disk is a one-line ActbenchError). Returns `path`.

    Under a `PlotOutputs`, the output is held until the plot's end (`PlotOutputs`), and a
    file already at `path` is to be replaced only where an earlier plot wrote it there (its
    record says so, and it has not changed since) or it holds these very bytes; any other file
    is yours, and the plot stops with an ActbenchError at once, before anything is written.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    outputs = _active.get()
    if outputs is None:
        write_or_explain(path, data, _FIX)
        return path
    full = Path(os.path.abspath(path))
    outputs.check_replace(full, path, _digest(data))
    outputs.pending[full] = (path, data)
    return path


@dataclass
class Cleared:
    """What one plot folder lost: `removed`, files of an earlier plot that this one did not
    remake; `kept`, such files left in place because they changed since actbench wrote them;
    `failed`, such files that could not be removed (with the reason). Paths relative to
    `folder` (written as the plot was given it), in the record's order."""

    folder: Path
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the terminal says: one line each for the removed, kept and failed files."""

        def line(start: str, n: int, files: list[str], end: str = "") -> list[str]:
            if not n:
                return []
            return [
                f"{start} {n} file{'s' * (n != 1)} of an earlier plot in {self.folder} that no "
                f"longer appl{'ies' if n == 1 else 'y'}{end}: {', '.join(files)}"
            ]

        it, them = ("it", "it") if len(self.kept) == 1 else ("they", "them")
        changed = f", as {it} changed after that plot wrote {them}"
        return [
            *line("Removed", len(self.removed), self._shown()),
            *line("Kept", len(self.kept), self.kept, changed),
            *line("Could not remove", len(self.failed), self.failed),
        ]

    def _shown(self) -> list[str]:
        """The removed files by name, those of a subfolder that went with them as one entry:
        'lr-0.01/ (10 files)'."""
        gone: dict[str, int] = {}
        for name in self.removed:
            top = name.split("/", 1)[0]
            if "/" in name and not (self.folder / top).exists():
                gone[top] = gone.get(top, 0) + 1
        shown = []
        for name in self.removed:
            top = name.split("/", 1)[0]
            if top not in gone or "/" not in name:
                shown.append(name)
            elif (entry := f"{top}/ ({gone[top]} file{'s' * (gone[top] != 1)})") not in shown:
                shown.append(entry)
        return shown


class PlotOutputs:
    """Records the files a plot writes (`write_output`) under its `folders`, and afterwards
    removes what an earlier plot wrote there that this one did not (see the module's doc).

    `folders`: the folders the plot writes into (its plots folder, each study's); a folder
    inside another counts as part of it. `inputs`: the paths the plot was given. A folder this
    plot writes nothing into is cleared only when its record names the same `inputs` (the
    same results now plotted to other folders, e.g. runs that became a study): a folder last
    written by a plot of other paths is left as it is.

    Use: `with PlotOutputs(folders, inputs) as outputs: <write>`, then `outputs.cleared`. The
    outputs are held until the block ends: on success, leaving it writes them all, then
    removes the stale files and rewrites each record; on an error in the block nothing is
    written or removed, and where writing the outputs fails part-way, nothing is removed and
    the records gain what was written.
    """

    def __init__(self, folders: Sequence[Path], inputs: Sequence[Path]) -> None:
        given = {Path(os.path.abspath(f)): Path(f) for f in reversed(folders)}  # as typed
        roots: list[Path] = []
        for folder in sorted(given, key=lambda p: p.parts):
            if not any(folder.is_relative_to(root) for root in roots):
                roots.append(folder)
        self.roots = roots
        self._shown = given
        self.inputs = sorted({os.path.abspath(p) for p in inputs})
        self.pending: dict[Path, tuple[Path, bytes]] = {}  # absolute -> (as given, bytes)
        self.written: dict[Path, str] = {}  # absolute -> digest of what was written
        self.cleared: list[Cleared] = []
        self._token: Any = None
        self._earlier: dict[Path, dict[str, str]] = {}  # each root's record before this plot

    def __enter__(self) -> PlotOutputs:
        self._token = _active.set(self)
        return self

    def check_replace(self, full: Path, shown: Path, digest: str) -> None:
        """Raise ActbenchError where writing `digest`'s bytes to `full` (absolute; `shown` as
        the plot names it) would replace a file no plot wrote there (see `write_output`)."""
        if full in self.pending or not (full.is_file() or full.is_symlink()):
            return
        root = next((r for r in self.roots if full.is_relative_to(r)), None)
        if root is None:
            return
        if root not in self._earlier:
            self._earlier[root] = (read_record(root) or {}).get("files", {})
        try:
            now = _digest(full.read_bytes())
        except OSError:
            now = None  # unreadable: not known to be a plot's
        if now is not None and (now == digest or self._earlier[root].get(
            full.relative_to(root).as_posix()) == now):  # fmt: skip
            return
        raise ActbenchError(
            f"{shown} is in the way: actbench plot did not write it there, or it changed "
            f"since; move it elsewhere, or {_FIX}"
        )

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        _active.reset(self._token)
        if kind is not None:  # refused or failed while drawing: nothing written
            return
        try:
            for full, (shown, data) in self.pending.items():
                write_or_explain(shown, data, _FIX)
                self.written[full] = _digest(data)
        except BaseException:
            for root in self.roots:  # the error goes on: recording is best effort
                with contextlib.suppress(Exception):
                    self._keep(root)
            raise
        self.cleared = [c for root in self.roots if (c := self._clear(root)) is not None]

    def _mine(self, root: Path) -> dict[str, str]:
        """The files written under `root` (relative path -> digest)."""
        return {
            path.relative_to(root).as_posix(): digest
            for path, digest in self.written.items()
            if path.is_relative_to(root)
        }

    def _clear(self, root: Path) -> Cleared | None:
        earlier = read_record(root)
        mine = self._mine(root)
        if not mine and (earlier is None or earlier.get("inputs") != self.inputs):
            return None  # not this plot's folder: left as it is
        cleared = Cleared(self._shown[root])
        retry: dict[str, str] = {}  # could not be removed: the next plot tries again
        for name, digest in (earlier or {}).get("files", {}).items():
            if name in mine:
                continue
            path = _inside(root, name)
            if path is None or not path.is_file() or path.is_symlink():
                continue  # gone already, or not a file a plot writes
            try:
                if _digest(path.read_bytes()) != digest:
                    cleared.kept.append(name)  # changed since: the user's now
                    continue
                path.unlink()
            except OSError as err:
                cleared.failed.append(f"{name} ({err.strerror or err})")
                retry[name] = digest
                continue
            cleared.removed.append(name)
            _remove_empty(path.parent, root)
        _write_record(root, {**retry, **mine}, self.inputs)
        return cleared if cleared.removed or cleared.kept or cleared.failed else None

    def _keep(self, root: Path) -> None:
        mine = self._mine(root)
        if not mine:
            return
        earlier = read_record(root) or {}
        files = {**earlier.get("files", {}), **mine}
        _write_record(root, files, earlier.get("inputs") or self.inputs)


def read_record(folder: Path) -> dict[str, Any] | None:
    """A plot folder's record: {"files": {relative path: sha256}, "inputs": [paths]}; None
    where there is none or it cannot be read (then nothing is removed)."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return None
    files = {str(k): str(v) for k, v in record["files"].items()}
    inputs = record.get("inputs")
    return {"files": files, "inputs": inputs if isinstance(inputs, list) else None}


def _write_record(root: Path, files: dict[str, str], inputs: list[str]) -> None:
    """Write the record of `files` into `root`, or remove it when there are none.

    Best effort: the outputs are written by then, and a record that cannot be written (in a
    folder the outputs could be written into) only means that the next plot removes less.
    """
    path = root / RECORD
    with contextlib.suppress(OSError):
        if files:
            atomic_write(path, json.dumps({"files": files, "inputs": inputs}, indent=1) + "\n")
        else:
            path.unlink(missing_ok=True)


def _inside(root: Path, name: str) -> Path | None:
    """`root/name` where `name` is a relative path that stays inside `root` and is not run
    data (`PROTECTED`); None otherwise."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    if relative.name in PROTECTED or PROTECTED_FOLDERS & set(relative.parts[:-1]):
        return None
    path = root / relative
    try:
        if not path.resolve().is_relative_to(root.resolve()):
            return None
    except OSError:
        return None
    return path


def _remove_empty(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents below `root` while they are empty."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
