"""Run folders: the tidy per-epoch CSV, the JSON manifest, written atomically; and reading them back."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from actbench.config import GRID_KEYS, RunConfig
from actbench.errors import ActbenchError, UsageError
from actbench.signals import signals_held
from actbench.train import DEEPER, EpochResult, deeper_columns

METRICS = "metrics.csv"
MANIFEST = "manifest.json"
# Every row names its model's settings: the ones a study may vary (`config.GRID_KEYS`). A
# network deeper than 2 hidden layers adds its further layers' unit health
# (`train.deeper_columns`) after these columns.
SETTINGS = GRID_KEYS
_RESULT = [f.name for f in fields(EpochResult) if f.name != DEEPER]
COLUMNS = [_RESULT[0], *SETTINGS, *_RESULT[1:]]


def _temporary(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty file for writing in `folder`, created with mode 0o666 less the umask.

    `tempfile.mkstemp` would make it 0o600 whatever the umask, and the file keeps its mode
    when it replaces the real one: a web server or a shared folder could not read the result.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        path = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(path, flags, 0o666), path  # the kernel applies the umask
        except FileExistsError:
            continue


def atomic_write(path: Path, content: str | bytes) -> None:
    """Write `content` to `path` so that a crash leaves the old file or the new one, never a mix.

    The new content goes to a temporary file in the same folder, reaches the disk, then
    replaces the old file in one step; an interrupt arriving meanwhile waits for the end. The
    file gets the mode a plain `open` would give it (0o666 less the umask).
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    with signals_held():
        fd, tmp = _temporary(path.parent, path.name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_or_explain(path: Path, content: str | bytes, fix: str) -> None:
    """`atomic_write` (making the folder if needed); a failing disk becomes a one-line error."""
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, content)
    except OSError as err:
        raise ActbenchError(f"cannot write {path} ({err.strerror or err}); {fix}") from None


def resume_hint(run_dir: Path) -> str:
    return f"free some space or fix the permissions, then: actbench run --resume {run_dir}"


def create_run_dir(results_dir: Path, now: datetime | None = None) -> Path:
    """A new, empty folder `results_dir/run-YYYYmmdd-HHMMSS[-N]`; never reuses an existing one."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"results folder {results_dir} is a file; choose a folder") from None
    except OSError as err:
        raise ActbenchError(
            f"cannot create results folder {results_dir} ({err.strerror}); "
            "choose a writable folder with --results-dir"
        ) from None
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        run_dir = results_dir / (f"run-{stamp}" if attempt == 0 else f"run-{stamp}-{attempt + 1}")
        try:
            run_dir.mkdir()  # atomic: two runs racing for one name get different folders
            return run_dir
        except FileExistsError:
            continue
        except OSError as err:
            raise ActbenchError(
                f"cannot write in results folder {results_dir} ({err.strerror}); "
                "choose a writable folder with --results-dir"
            ) from None
    raise ActbenchError(f"too many runs named run-{stamp} in {results_dir}")


class RunLock:
    """Holds a run folder for one process: a second run or resume of it is refused, not mixed in.

    The lock is the operating system's (`flock`) on the file `.lock` in the folder, so it ends
    with the process however the process ends. The holder deletes the file as it lets go, so
    a run that ended leaves none behind; a process that opened the file just before it was
    deleted notices, once it holds the lock, that the file it locked is no longer the folder's
    `.lock`, and tries again, so two processes never both hold one folder.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self.handle: Any = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not on a POSIX system: no lock
            return self
        while True:
            try:
                handle = open(self.path, "a")  # held until __exit__
            except OSError as err:
                raise ActbenchError(
                    f"cannot write in {self.path.parent} ({err.strerror}); check its permissions"
                ) from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise UsageError(
                    f"{self.path.parent} is in use by another actbench process; "
                    "wait for it to finish or stop it"
                ) from None
            if self._is_current(handle):
                self.handle = handle
                return self
            handle.close()  # its holder deleted it as it finished: lock the folder's new one

    def _is_current(self, handle: Any) -> bool:
        """Whether the locked file is still the folder's `.lock` (not deleted meanwhile)."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(handle.fileno())
        return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)

    def __exit__(self, *exc: object) -> None:
        if self.handle is None:
            return
        try:
            with contextlib.suppress(OSError):  # a folder made read-only meanwhile keeps it
                self.path.unlink()  # while still held: no other process can hold this file
        finally:
            self.handle.close()  # closing releases the lock
            self.handle = None


class RunWriter:
    """Keeps a run folder's CSV and manifest up to date.

    Each finished epoch's rows are appended to `metrics.csv` and reach the disk before the
    call returns, so recording an epoch costs the same in a study of 10,000 rows as in a run
    of 10, and a crash at any instant leaves every finished epoch readable (at worst a last
    line cut short, which `read_metrics` leaves out). `finish` rewrites the file once, in the
    run's order (configuration, seed, epoch, activation), which does not depend on which
    worker finished first. The manifest is rewritten atomically.
    """

    def __init__(
        self,
        run_dir: Path,
        activations: list[str],
        manifest: dict[str, Any],
        rows: list[dict[str, Any]] | None = None,
        settings: list[dict[str, Any]] | None = None,
        columns: list[str] | None = None,
    ) -> None:
        """`settings[p]`: configuration p's value of each of `SETTINGS`; `rows`: plain rows
        recorded before (a resume), each with its settings."""
        self.run_dir = run_dir
        self.path = run_dir / METRICS
        self.rank = {label: i for i, label in enumerate(activations)}
        self.settings = settings or [{}]
        self.point = {setting_key(s): p for p, s in enumerate(self.settings)}
        self.manifest = dict(manifest)
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows or []]
        # the columns of the deepest network, from the start: later rows are appended to them
        self.columns = columns or [
            *COLUMNS,
            *deeper_columns(key for row in self.rows for key in row),
        ]
        self.finish()
        self.write_manifest()  # last: the manifest says "running" once the CSV is in place

    def add(self, rows: list[EpochResult], point: int = 0) -> None:
        """Record finished epochs of configuration `point`: appended, on the disk on return."""
        if not rows:
            return
        new = [{**row.as_row(), **self.settings[point]} for row in rows]
        self.rows.extend(new)
        text = pd.DataFrame(new, columns=self.columns).to_csv(
            index=False, header=False, na_rep="nan"
        )
        try:
            with signals_held(), open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            raise ActbenchError(
                f"cannot write {self.path} ({err.strerror or err}); {resume_hint(self.run_dir)}"
            ) from None

    def finish(self) -> None:
        """Rewrite the CSV whole, in the run's order (once, as the run ends or starts)."""

        def order(row: dict[str, Any]) -> tuple[Any, ...]:
            rank = self.rank.get(row["activation"], 0)
            return (self.point_of(row), row["seed"], row["epoch"], rank)

        self.rows.sort(key=order)
        frame = pd.DataFrame(self.rows, columns=self.columns)
        text = frame.to_csv(index=False, na_rep="nan")
        write_or_explain(self.path, text, resume_hint(self.run_dir))

    def point_of(self, row: dict[str, Any]) -> int:
        """The configuration a recorded row belongs to (by its settings; 0 where none match)."""
        return self.point.get(setting_key({k: row.get(k) for k in self.settings[0]}), 0)

    def update(self, **fields_: Any) -> None:
        self.manifest.update(fields_)
        self.write_manifest()

    def write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2) + "\n"
        write_or_explain(self.run_dir / MANIFEST, text, resume_hint(self.run_dir))


def setting_key(settings: dict[str, Any]) -> tuple[Any, ...]:
    """A configuration's settings as a key that rows read back from the CSV match too."""
    return tuple(sorted((k, str(v)) for k, v in settings.items()))


def settings_of(config: RunConfig) -> dict[str, Any]:
    """One configuration's value of each of `SETTINGS`, as its rows carry them."""
    return {key: getattr(config, key) for key in SETTINGS}


class FileProblem(ActbenchError):
    """A run's file that is not as actbench writes it (exit code 1): `path`, and `problem` in
    words ("has missing columns [...]"), so that a caller can say what it means for its task."""

    def __init__(self, path: Path, problem: str, fix: str = "restore it from a copy") -> None:
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(f"{path} {problem}; {fix}")


_TEXT = ("activation", "status")
_INTEGERS = ("seed", "epoch")
# Settings columns: names, and whole numbers (read as numbers, NaN where a row lacks them)
_TEXT_SETTINGS = tuple(k for k in SETTINGS if k in ("dataset", "optimizer", "init"))
_INTEGER_SETTINGS = tuple(k for k in SETTINGS if k in ("depth", "hidden", "batch_size"))
# Columns earlier versions wrote and this one ignores: the in-loop activation timer, whose
# numbers depended on the order of the models (the cost benchmark replaces it).
RETIRED = ("activation_seconds",)
# Columns a run has only with a validation split (`--val N`); a CSV without them reads as NaN.
# Runs of earlier versions have no settings columns: `find_runs` fills them from the manifest.
OPTIONAL = ("val_loss", "val_accuracy", *SETTINGS)


def read_metrics(path: Path) -> pd.DataFrame:
    """One run's metrics CSV, checked for exactly the expected columns and their types.

    Labels are read as text whatever they look like ("0", "nan"); numbers read back exactly.
    The validation columns (`OPTIONAL`) may be absent (a run without a validation split), and
    so may the settings columns (runs of earlier versions: NaN here). A last line cut short
    (the machine stopped while it was appended) is left out: its epoch is not finished.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ActbenchError(f"{path} is not a readable metrics CSV ({err}); remove it") from None
    if text and not text.endswith("\n") and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    try:
        header = pd.read_csv(io.StringIO(text), nrows=0).columns.tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FileProblem(path, f"is not a readable metrics CSV ({err})") from None
    missing = [c for c in COLUMNS if c not in header and c not in OPTIONAL]
    deeper = deeper_columns(header)
    extra = [c for c in header if c not in COLUMNS and c not in RETIRED and c not in deeper]
    if missing or extra:
        problem = f"missing columns {missing}" if missing else f"unexpected columns {extra}"
        raise FileProblem(
            path,
            f"has {problem}",
            "this actbench version did not write it: use the version that did, or restore it "
            "from a copy",
        )
    floats = [c for c in header if c not in _TEXT + _INTEGERS + _TEXT_SETTINGS]
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype={**dict.fromkeys(_TEXT + _TEXT_SETTINGS, str),
                   **dict.fromkeys(_INTEGERS, "int64"), **dict.fromkeys(floats, "float64")},
            keep_default_na=False,
            na_values={key: ["nan", "NaN", ""] for key in [*floats, *_TEXT_SETTINGS]},
        )  # fmt: skip
        for key in _INTEGER_SETTINGS:  # whole numbers, unless some row lacks them
            if key in frame and frame[key].notna().all():
                frame[key] = frame[key].astype("int64")
    except (ValueError, pd.errors.ParserError) as err:
        reason = " ".join(str(err).split())[:100]
        raise FileProblem(path, f"has a malformed value ({reason})") from None
    # an older file's missing columns as NaN, retired gone
    return frame.reindex(columns=[*COLUMNS, *deeper])


def is_run_manifest(manifest: dict[str, Any]) -> bool:
    """Whether a manifest read by `read_manifest` is one `actbench run` wrote (it has the
    run's settings); {} (no manifest.json) is not."""
    return isinstance(manifest, dict) and isinstance(manifest.get("config"), dict)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileProblem(path, f"is not valid JSON ({err})") from None


@dataclass(frozen=True)
class RunFolder:
    """One run folder as read back: its name as reports show it, manifest and metrics.

    `manifest` is {} when the folder has none; `metrics` has no rows when no epoch finished.
    """

    name: str
    path: Path
    manifest: dict[str, Any]
    metrics: pd.DataFrame


def _check_root(root: Path) -> None:
    if not root.exists():
        raise UsageError(f"{root} does not exist; give the results folder or a run folder")
    if not root.is_dir():
        raise UsageError(f"{root} is a file; give the results folder or a run folder")


def find_runs(roots: Sequence[Path | str] | Path | str) -> list[RunFolder]:
    """Every run under each of `roots` (each a run folder or a folder of runs), in path order.

    Each path is checked before anything is read (UsageError if missing or a file); a run
    reached through two of the paths is read once. A run is named by its path under the folder
    given (a run folder given itself: by its own name); where two names clash, by the full
    path. Raises UsageError when no run under them has a finished epoch.
    """
    if isinstance(roots, str | Path):
        roots = [roots]
    roots = [Path(root) for root in roots]
    if not roots:
        raise UsageError("give at least one results folder or run folder")
    for root in roots:
        _check_root(root)
    found: dict[Path, tuple[Path, str, Path]] = {}
    for root in roots:
        for path in sorted(root.rglob(METRICS)):
            run_dir = path.parent
            name = str(run_dir.relative_to(root)) if run_dir != root else root.name
            found.setdefault(run_dir.resolve(), (run_dir, name, root))
    names = [name for _, name, _ in found.values()]
    runs = []
    for run_dir, name, root in found.values():
        shown = str(run_dir) if names.count(name) > 1 else name
        runs.append(_read_run(run_dir, shown, root))
    if not any(len(run.metrics) for run in runs):
        where = ", ".join(str(root) for root in roots)
        raise UsageError(f"no finished epochs under {where}; run `actbench run` first")
    return runs


def _fill_settings(frame: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """Settings columns a run of an earlier version lacks, from its manifest (or defaults)."""
    config = manifest.get("config", {})
    defaults = RunConfig()
    for key in SETTINGS:
        if frame[key].isna().all():
            value = config.get(key, getattr(defaults, key))
            if key == "momentum" and config.get("optimizer", defaults.optimizer) == "adam":
                value = 0.0  # earlier versions accepted a momentum Adam ignored
            frame[key] = [value] * len(frame)
    return frame


def _read_run(run_dir: Path, name: str, root: Path) -> RunFolder:
    """One run folder found under `root`; a folder that actbench did not make is a usage error
    (the path given leads to it), a damaged file of one it made a runtime error."""
    away = f", or move {run_dir} out of {root}" if run_dir != root else ""
    try:
        manifest = read_manifest(run_dir)
        metrics = read_metrics(run_dir / METRICS)
    except FileProblem as err:
        if err.path.name == METRICS and not is_run_manifest(manifest):
            raise UsageError(
                f"{run_dir} is not an actbench run folder (it has no {MANIFEST} with its "
                f"settings, and its {METRICS} {err.problem}); give folders made by "
                f"actbench run{away}"
            ) from None
        raise FileProblem(err.path, err.problem, err.fix + away) from None
    return RunFolder(name, run_dir, manifest, _fill_settings(metrics, manifest))


def run_frame(run: RunFolder) -> pd.DataFrame:
    """A run's metrics with a `run` column (its name) and one `cfg_<key>` column per setting."""
    frame = run.metrics.copy()
    frame.insert(0, "run", run.name)
    for key, value in run.manifest.get("config", {}).items():
        if key != "activations":
            frame[f"cfg_{key}"] = str(value)
    return frame


def load_runs(*roots: Path | str) -> pd.DataFrame:
    """Every run under `roots` (each a run folder or a folder of runs) as one frame.

    The frame has a `run` column and one `cfg_<key>` column per setting in each run's manifest,
    so runs that differ in their settings can be told apart. Every row of every run is kept,
    repeats of the same model included: `actbench.selection.select_models` chooses among them.
    """
    runs = find_runs(list(roots))
    return pd.concat([run_frame(run) for run in runs if len(run.metrics)], ignore_index=True)


def activation_specs(runs: Sequence[RunFolder]) -> dict[str, str | None]:
    """The activation each short label of `runs` stands for: {'sin': 'sin=torch:sin'}.

    Read from the runs' manifests, for the activations given a short label (`label=spec`);
    others are found from their label alone. A label that the runs give to different
    functions maps to None. Nothing is imported.
    """
    from actbench.activations import split_label

    specs: dict[str, str | None] = {}
    for run in runs:
        for given in run.manifest.get("config", {}).get("activations", []):
            label, inner = split_label(str(given))
            if label is None:
                continue
            if label not in specs:
                specs[label] = str(given)
            elif specs[label] is not None and split_label(str(specs[label]))[1] != inner:
                specs[label] = None
    return specs
