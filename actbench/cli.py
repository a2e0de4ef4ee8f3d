"""The command line: parses flags, calls the library, shows progress, tables and one-line errors."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from actbench import __version__
from actbench.config import RunConfig, load_config, read_toml
from actbench.datafiles import prefetch
from actbench.errors import ActbenchError, OutputClosed, UsageError
from actbench.names import given_by
from actbench.terminal import Terminal, to_devnull

if TYPE_CHECKING:
    from actbench.progress import Group
    from actbench.study import StudyPlan
    from actbench.train import EpochResult

# torch, pandas and matplotlib are imported by the commands that use them, so that --help and
# a mistyped flag answer at once.

# messages printed with soft_wrap=True: one line in a file, broken at spaces on a terminal
out = Terminal(highlight=False)
err = Terminal(stderr=True, highlight=False)
STARTED = time.perf_counter()  # a dry run's estimate counts the start-up from here
_state = {"debug": False}


class OneLineErrors(TyperGroup):
    """Every usage error and every ActbenchError ends as one line on stderr, never a traceback.

    A closed output (`actbench plot ... | head -3`) ends the command quietly with exit code 1,
    whatever it was printing: what it wrote stays written (the `run` command first records
    how the run ended).
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _quiet_when_closed():  # --version, and help, print while the flags are read
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _quiet_when_closed():
            return super().invoke(ctx)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = self._main(*args, **kwargs)
        except OutputClosed:  # stderr closed as an error line was printed
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def _main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command; its exit code, with every error printed as one line."""
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as error:  # bad flags, bad values: a usage error
            if type(error).__name__ == "NoArgsIsHelpError":  # no command (named as Typer does)
                error.show()  # the help as --help prints it, on stderr (click's way, exit 2)
            else:
                hint = (
                    f"; see '{error.ctx.command_path} --help'"
                    if getattr(error, "ctx", None)
                    else ""
                )
                message = " ".join(error.format_message().split())
                if hint:
                    message = message.rstrip(".")  # "Missing argument 'paths'; see ..."
                    if message.endswith("?"):  # "Did you mean 'run'? See ..."
                        hint = hint.replace("; see", " See", 1)
                err.print(f"Error: {message}{hint}", soft_wrap=True, markup=False)
            code = error.exit_code
        except typer.Abort:
            err.print("Aborted.")
            code = 130
        except ActbenchError as error:
            if _state["debug"]:
                traceback.print_exc()
            err.print(f"Error: {error}", soft_wrap=True, markup=False)  # 'actbench[ray]' as is
            code = error.exit_code
        except Exception as error:  # a fault of actbench itself: still one line, unless --debug
            if _state["debug"]:
                traceback.print_exc()
            message = " ".join(str(error).split())[:300]
            err.print(
                f"Error: unexpected {type(error).__name__}: {message}; "
                "rerun with --debug for the traceback and report it",
                soft_wrap=True,
                markup=False,  # the message's own brackets ('ray[client]') as they are
            )
            code = 1
        return code


@contextmanager
def _quiet_when_closed() -> Iterator[None]:
    """A closed output ends the command with exit code 1, silently: caught here, before click,
    which would take `OutputClosed` for Ctrl-C and print "Aborted!"."""
    try:
        yield
    except OutputClosed:
        raise typer.Exit(1) from None
    except BrokenPipeError:  # a write that went round the consoles
        to_devnull(sys.stdout)
        raise typer.Exit(1) from None


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's help: wraps every text whole at the terminal's width
    help="Compare neural-network activation functions on MNIST, fast and honestly.",
)


def _version(value: bool) -> None:
    if value:
        out.print(f"actbench {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
) -> None:
    """Compare neural-network activation functions on MNIST, fast and honestly."""
    _state["debug"] = debug


@app.command(short_help="Train one model per activation and seed; record every epoch.")
def run(
    activations: Annotated[
        str | None,
        typer.Option(
            "--activations",
            "-a",
            help="Comma-separated names, e.g. relu,tanh,leaky:0.1, or your own as "
            "package.module:attribute, with a short label as label=package.module:attribute "
            "(sin=torch:sin). See `actbench activations`.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A TOML preset; flags override it.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 10).")] = None,
    batch_size: Annotated[
        str | None, typer.Option(help="Training batch size (default 64); a list makes a study.")
    ] = None,
    lr: Annotated[
        str | None,
        typer.Option(help="Learning rate (default 0.001); a list such as 1e-3,3e-3 makes a study."),
    ] = None,
    optimizer: Annotated[
        str | None, typer.Option(help="adam (default) or sgd, or both: adam,sgd.")
    ] = None,
    momentum: Annotated[
        str | None, typer.Option(help="SGD momentum (default 0); a list makes a study.")
    ] = None,
    hidden: Annotated[
        str | None,
        typer.Option(help="Hidden units per layer (default 128); a list such as 64,128 too."),
    ] = None,
    depth: Annotated[
        str | None,
        typer.Option(help="Hidden layers, 1 to 32 (default 2: 784-H-H-10); a list: 2,8."),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="How the weights start: torch (default), kaiming, xavier, lecun, or auto "
            "(each activation's own, see `actbench activations`); or a list.",
        ),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(help="Random seed (default 0), or a list such as 0,1,2: one model each."),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(help="Train every activation with this many seeds: --seed, --seed+1, ..."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Compare the others with this activation (default: the first)."),
    ] = None,
    subset: Annotated[
        int | None, typer.Option(help="Train on this many samples (and test on the same share).")
    ] = None,
    val: Annotated[
        int | None,
        typer.Option(
            "--val",
            help="Hold out this many training samples (the same for every seed) as a "
            "validation split, evaluated every epoch (default 0: none).",
        ),
    ] = None,
    eval_batch_size: Annotated[
        int | None,
        typer.Option(help="Batch size of the test and validation passes (default 1000)."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="mnist (default), fashion-mnist, kmnist, cifar10 or mnist1d; or a list."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="ACTBENCH_DATA_DIR",
            help="Folder with the data sets' files (default data/); downloaded there when missing.",
        ),
    ] = None,
    download: Annotated[
        bool | None,
        typer.Option(
            "--download/--no-download",
            help="Download the data set's files where they are missing (default: download; "
            "MNIST-1D is generated here, never downloaded).",
        ),
    ] = None,
    results_dir: Annotated[
        Path | None, typer.Option(help="Where run folders are made (default results/).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto (default), cpu, cuda or mps.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes sharing the models on a CPU (default 0: one per core)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads per process (default 0: one). More than one can change a "
            "model's last digits with the models trained beside it."
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="local (default): processes on this machine; ray: tasks on a Ray cluster "
            "(pip install 'actbench[ray]'), results still written here.",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="With --backend ray: the cluster to join (auto, host:port or "
            "ray://host:port); default: a Ray on this machine.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print what would train (configurations, models, model-epochs) and an "
            "estimate of the time from a short measurement here, then exit.",
        ),
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue this run folder from its last finished epochs "
            "(or extend it with a larger --epochs).",
        ),
    ] = None,
) -> None:
    """Train the 784-H-H-10 network once per activation and record every epoch.

    Example: actbench run --activations relu,sigmoid,tanh,leaky --epochs 5
    """
    flags = dict(
        activations=activations,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        momentum=momentum,
        hidden=hidden,
        depth=depth,
        init=init,
        seed=seed,
        seeds=seeds,
        baseline=baseline,
        subset=subset,
        val=val,
        eval_batch_size=eval_batch_size,
        dataset=dataset,
        data_dir=data_dir,
        download=download,
        results_dir=results_dir,
        device=device,
        workers=workers,
        threads=threads,
        backend=backend,
        address=address,
    )
    task: dict[str, Any] = {}
    signals: list[int] = []

    def terminate(signum: int, frame: Any) -> None:  # SIGTERM ends a run the way Ctrl-C does
        signals.append(signum)
        raise KeyboardInterrupt

    # from the start, so that a SIGTERM at any moment ends the run as Ctrl-C would, whatever
    # the shell did with SIGINT (a background job of a script ignores it)
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        preset = read_toml(config) if config is not None else {}
        given = {key for key, value in flags.items() if value is not None}
        # messages name the flags typed, and the preset file for what only it gave
        with given_by(given, set(preset) - given, str(config) if config else None):
            result = _train(flags, config, resume, task, dry_run)
        if "display" in task:
            task["display"].stop()
        if result is not None:  # None: a dry run, printed already
            _print_results(result, task)
    except OutputClosed as closed:  # a reader of the output has gone: as if the user stopped
        _ignore_signals()
        if "display" in task:
            task["display"].stop()
        line = _closed(task.get("dir"), closed)
        if line:
            err.print(line, soft_wrap=True)
        raise typer.Exit(closed.exit_code) from None
    except KeyboardInterrupt:
        _ignore_signals()  # exiting: more signals change nothing
        if "display" in task:
            task["display"].stop()
        err.print(_interrupted(task.get("dir")), soft_wrap=True)
        raise typer.Exit(128 + (signals[0] if signals else signal.SIGINT)) from None
    finally:
        if "display" in task:
            task["display"].stop()
    signal.signal(signal.SIGTERM, previous)


def _print_results(result: Any, task: dict[str, Any]) -> None:
    """The tables of a finished run (`RunResult`) on stdout, and where its files are."""
    if task["grid"]:
        from actbench.study_table import study_table

        out.print(study_table(result.metrics, task["grid"]))
        out.print(f"Metrics: {result.run_dir / 'metrics.csv'}", soft_wrap=True)
        out.print(f"Plot them with: actbench plot {result.run_dir}", soft_wrap=True)
        return
    from actbench.tables import comparison_table, cost_table, summary_table

    out.print(summary_table(result.run_dir, result.metrics))
    comparison = comparison_table(result.metrics, task["baseline"])
    if comparison is not None:
        out.print(comparison)
    cost = cost_table(result.run_dir, result.metrics)
    if cost is not None:
        out.print(cost)
    out.print(f"Metrics: {result.run_dir / 'metrics.csv'}", soft_wrap=True)
    out.print(f"Plot them with: actbench plot {result.run_dir}", soft_wrap=True)


def _train(
    flags: dict[str, Any],
    config: Path | None,
    resume: Path | None,
    task: dict[str, Any],
    dry_run: bool = False,
) -> Any:
    """Load the settings, then run or resume the experiment with its progress on stderr.

    `task` receives the display ("display") and, once the run folder exists, its path
    ("dir") and what the tables need; returns the `RunResult`.
    """
    settings = overrides = None
    if resume is not None:
        if dry_run:
            raise UsageError(
                "--dry-run plans a new run and does not apply to --resume; drop one of them"
            )
        preset = read_toml(config) if config is not None else {}
        overrides = {**preset, **{k: v for k, v in flags.items() if v is not None}}
        folder = overrides.get("data_dir") or _data_dir_of(resume)
        if folder:
            prefetch(folder)  # as for a new run: decompress MNIST while torch is imported
    else:
        settings = load_config(config, **flags)
        # decompress the (first) data set while torch is imported
        prefetch(settings.data_dir, settings.points()[0].dataset)
        if dry_run:
            _print_plan(settings)
            return None
    if settings is not None and settings.backend == "ray":
        from actbench.ray_cluster import connecting

        # start Ray, and its workers' first imports, while torch is imported here too
        models = len(settings.points()) * len(settings.activations) * len(settings.seed_list)
        with connecting(settings.address, models):
            return _train_now(settings, resume, overrides, task)
    return _train_now(settings, resume, overrides, task)


def _subset_line(run_dir: Path, subset: int, val: int) -> str:
    """What `--subset` left to train and test on, per data set, from the run's manifest: the
    test set shrinks by the same share as the training set, which a reader should know."""
    from actbench.results import read_manifest

    try:
        datasets = read_manifest(run_dir)["datasets"]
    except (OSError, ActbenchError, KeyError):
        return f"--subset {subset}: the test set shrinks by the same share"
    held = f", {val:,} validation" if val else ""
    sizes = "; ".join(
        f"{name} {d['train_samples']:,} training{held} and {d['test_samples']:,} test samples"
        for name, d in datasets.items()
    )
    return f"--subset {subset}: {sizes} (the test set shrinks by the same share)"


def _train_now(
    settings: RunConfig | None,
    resume: Path | None,
    overrides: dict[str, Any] | None,
    task: dict[str, Any],
) -> Any:
    """Run (`settings`) or resume (`resume` with `overrides`) with the progress display."""
    from actbench.display import RunProgress
    from actbench.experiment import Hooks, baseline_label, resume_experiment, run_experiment
    from actbench.tables import EPOCH_HEADING, epoch_line

    display = task["display"] = RunProgress(err)

    def on_start(run_dir: Path, groups: list[Group], settings: RunConfig) -> None:
        task["dir"], task["epochs"] = run_dir, settings.epochs
        task["seeded"], task["baseline"] = len(settings.seed_list) > 1, baseline_label(settings)
        task["grid"] = list(settings.varying)
        err.print(f"{'Resuming run' if resume else 'Run folder'}: {run_dir}", soft_wrap=True)
        if settings.subset is not None:
            err.print(_subset_line(run_dir, settings.subset, settings.val), soft_wrap=True)
        if task["grid"]:
            points = len(settings.points())
            models = points * len(settings.activations) * len(settings.seed_list)
            err.print(
                f"Study: {points} configurations x {_count(len(settings.activations), 'activation')} x "
                f"{_count(len(settings.seed_list), 'seed')} = {models} models, "
                f"{_count(settings.epochs, 'epoch')} each; rows go to metrics.csv as each epoch ends",
                soft_wrap=True,
            )
        else:
            err.print(EPOCH_HEADING, soft_wrap=True)
        display.start(groups)

    def once(show: Callable[[], None]) -> None:
        """Show something; a closed output stops the run once (the epochs still reported
        while it stops go to the CSV as ever, and to whatever output is still open)."""
        try:
            show()
        except OutputClosed:
            if "closed" not in task:
                task["closed"] = True
                raise

    def checked(rows: list[EpochResult]) -> None:
        if not task["grid"]:  # a study shows its progress in the bars only
            display.print(epoch_line(rows, task["epochs"], task["seeded"]))
        if "closed" not in task:  # a reader gone stops the run after its epoch, as Ctrl-C
            out.check_open()
            err.check_open()

    def on_epoch(rows: list[EpochResult]) -> None:
        once(lambda: checked(rows))

    def on_steps(group: Group, steps: int) -> None:
        once(lambda: display.steps(group, steps))

    def on_retry(retry: dict[str, Any]) -> None:
        once(lambda: display.print(retry_line(retry)))

    hooks = Hooks(on_start=on_start, on_steps=on_steps, on_epoch=on_epoch, on_retry=on_retry)
    if resume is not None:
        return resume_experiment(resume, overrides, hooks)
    return run_experiment(settings, hooks)


def retry_line(retry: dict[str, Any]) -> str:
    """What the terminal says of a group's epoch run again on Ray (a manifest retry record)."""
    from actbench.names import config_name
    from actbench.ray_backend import MAX_TRIES

    known = {"at", "activations", "seed", "epoch", "attempt", "cause"}
    where = config_name({k: v for k, v in retry.items() if k not in known})
    group = (
        f"{', '.join(retry['activations'])} (seed {retry['seed']}{', ' + where if where else ''})"
    )
    return (
        f"Ray lost the worker training {group}: epoch {retry['epoch']} runs again from the "
        f"last saved one, attempt {retry['attempt']} of {MAX_TRIES} ({retry['cause']})"
    )


def _ignore_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (`signal.signal` first runs the handler of one
    that just arrived, which may raise: set them all the same)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        while True:
            try:
                signal.signal(signum, signal.SIG_IGN)
                break
            except KeyboardInterrupt:
                continue


def _status(run_dir: Path) -> str | None:
    """The status in `run_dir`'s manifest (None where it cannot be read)."""
    from actbench.results import read_manifest

    try:
        return read_manifest(run_dir).get("status")
    except Exception:  # an unreadable manifest: say what holds for any interrupted run
        return None


def _interrupted(run_dir: Path | None) -> str:
    """The line an interrupted run ends with: what is kept, and how to go on."""
    if run_dir is None:  # before training began
        return "Interrupted"
    if _status(run_dir) == "completed":  # training had ended
        from actbench.cost import COST

        if (run_dir / COST).exists():  # as its results were printed
            return f"Interrupted after the run completed; every result is in {run_dir}"
        return (
            f"Interrupted after training: every epoch is kept in {run_dir}; only the "
            "activations' cost (cost.csv) was not measured"
        )
    return (
        f"Interrupted; finished epochs are kept in {run_dir}; continue with: "
        f"actbench run --resume {run_dir}"
    )


def _closed(run_dir: Path | None, closed: OutputClosed) -> str | None:
    """The line a run ends with when a reader of its output has gone (on stderr, where it is
    still open): how to go on, or for a run that had completed, where its results are; None
    where nothing had started."""
    if run_dir is None:
        return None
    if _status(run_dir) == "completed":
        return (
            f"Completed, but {closed.reason} before the summary was shown: every result is in "
            f"{run_dir}; see them with: actbench plot {run_dir}"
        )
    return (
        f"Interrupted: {closed.reason}; finished epochs are kept in {run_dir}; continue "
        f"with: actbench run --resume {run_dir}"
    )


def _count(n: int, noun: str) -> str:
    """'1 seed', '3 seeds'."""
    return f"{n} {noun}{'s' * (n != 1)}"


def _print_plan(settings: RunConfig) -> None:
    """`actbench run --dry-run`: what would train, and about how long it would take."""
    from actbench.experiment import dry_run

    for line in plan_lines(dry_run(settings, started=STARTED), settings.backend):
        out.print(line, soft_wrap=True)


def _duration(seconds: float) -> str:
    """'9.5 s' under a minute, else 'h:mm:ss'."""
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


def plan_lines(plan: StudyPlan, backend: str = "local") -> list[str]:
    """What `--dry-run` prints of `plan`: the configurations, the count of models, and the
    estimated time with its parts (three, or four where worker processes start), then what
    that time leaves out (on `backend` "ray", also its tasks' start on the cluster)."""
    lines = [f"{number:>4}. {name}" for number, name in enumerate(plan.configurations, 1)]
    configurations = max(1, len(plan.configurations))
    lines.append(
        f"{_count(configurations, 'configuration')} x {_count(plan.activations, 'activation')} "
        f"x {_count(plan.seeds, 'seed')} = {_count(plan.models, 'model')}, "
        f"{_count(plan.model_epochs, 'model-epoch')}"
    )
    lines.append(
        f"Estimated time here, while nothing else runs: about {_duration(plan.total)} with "
        f"{_count(plan.workers, 'worker')}:"
    )
    parts = [("start-up", plan.startup, "imports and loading the data, timed in this dry run")]
    if plan.processes:  # two or more: a run with one trains in its own process
        starting = f"starting the {plan.processes} worker processes, timed here"
        parts.append(("workers", plan.process_start, starting))
    parts += [
        ("training", plan.seconds, "from a few timed batches of each shape of model"),
        ("cost", plan.cost, "measuring each activation's cost at the end, timed here"),
    ]
    width = max(len(_duration(seconds)) for _, seconds, _ in parts)
    lines += [f"  {name:<8}  {_duration(seconds):>{width}}  {how}" for name, seconds, how in parts]
    left_out = "Python's start and exit, and writing the run's files to disk"
    if backend == "ray":
        left_out = "Python's start and exit, writing the files, Ray starting its tasks"
    lines.append(f"Not counted: {left_out}.")
    lines.append("Nothing was written.")
    return lines


def _data_dir_of(run_dir: Path) -> str | None:
    """The data folder a run was trained on, from its manifest; None where that cannot be read.

    Only a guess for `prefetch`: the resume itself reads and checks the manifest.
    """
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        folder = manifest["config"]["data_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(folder) if folder else None


@app.command(short_help="Compare the runs under one or more paths: figures and a report.")
def plot(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders, or folders holding runs (every run under them).",
            metavar="PATH",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where the PNGs and the report go (default PATH/plots; for several paths, "
            "plots/ in the folder that holds them all).",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="The line the report compares the others with (default: the first)."),
    ] = None,
    together: Annotated[
        bool,
        typer.Option(
            "--together",
            help="Compare runs of different settings in one report, each line labelled with "
            "the settings it differs in, e.g. 'relu (lr=0.01)' (default: one report per "
            "setting, in a subfolder named after it, e.g. plots/lr-0.01/).",
        ),
    ] = False,
) -> None:
    """Draw the comparison figures of the runs under one or more paths, with a report.

    Each model counts once, from the newest run where it is complete; the report also shows
    each activation's measured cost.

    Runs of different settings (other than the number of epochs) get one report each, in a
    subfolder of the plots folder named after what sets them apart (e.g. plots/subset-1000/);
    --together compares them in one. Models are compared at the last epoch all of them reached.

    Once everything is written, the files an earlier plot wrote into the same folders and this
    one did not remake are removed (never other files, nor any the user changed since).

    Example: actbench plot results/run-A results/run-B --out comparison/
    """
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a folder, new or existing, with --out")
    target = out_dir or _plot_dir(paths)
    from actbench.outputs import PlotOutputs
    from actbench.report import choose_baseline, make_report, where
    from actbench.results import find_runs
    from actbench.selection import apart_notes, group_runs
    from actbench.study_report import is_study, make_study_report, repeated_rows

    found = find_runs(paths)
    studies = [run for run in found if is_study(run) and len(run.metrics)]
    runs = [run for run in found if not is_study(run)]
    groups = group_runs(runs, together) if any(len(run.metrics) for run in runs) else []
    bases = [  # a baseline that is not a line is refused before anything is written
        choose_baseline(g.selection, baseline, g.settings) if g.selection else "" for g in groups
    ]
    heres = _study_dirs(studies, out_dir, len(found) > 1)
    # models also in a study, which is reported on its own: said in both reports
    study_notes, group_notes = apart_notes(studies, runs, groups)
    # files an earlier plot wrote into these folders and this one does not remake are
    # removed once every new one is written (`outputs`)
    said: list[str] = []  # printed once every output is written
    say = said.append
    with PlotOutputs([target, *heres], paths) as outputs:
        for study, here, notes in zip(studies, heres, study_notes, strict=True):
            report, figures = make_study_report(study, here, baseline, notes)
            say(f"Study {study.name}: wrote {len(figures)} figures and {report.name} to {here}:")
            for path in [*figures, report]:
                say(f"  {path.name}")
            for note in [*repeated_rows(study)[1], *notes]:
                say(f"Note: {note.replace('`', '')}")
            status = study.manifest.get("status")
            if status != "completed":
                say(f"Note: the study is {status}, not complete; report.md says what is missing")
        if len(groups) == 1:
            if studies:
                say("The other runs, compared together:")
            selection = groups[0].reported(group_notes[0])
            report, figures = make_report(selection, target, baseline)
            used = ", ".join(run.name for run in selection.runs)
            say(f"Runs used: {used}")
            for note in selection.notes:
                say(f"Note: {note.replace('`', '')}")
            say(selection.epoch_sentence())
            say(f"Wrote {len(figures)} figures and {report.name} to {target}:")
            for path in [*figures, report]:
                say(f"  {path.name}")
        elif groups:
            differ = ", ".join(groups[0].differ)
            say(
                f"{'The other runs' if studies else 'The runs'} differ in {differ}: one "
                "report for each (--together compares them in one):"
            )
            for group, base, extra in zip(groups, bases, group_notes, strict=True):
                names = ", ".join(run.name for run in group.runs)
                if group.selection is None:
                    say(f"{group.settings}: {names}: no finished epoch, no report")
                    continue
                here = target / group.name
                report, figures = make_report(group.reported(extra), here, base)
                say(
                    f"{group.settings}: {names} compared {where(group.selection)} "
                    f"against {base}: {len(figures)} figures and {report.name} in {here}"
                )
                for note in [*group.selection.notes, *extra]:
                    say(f"  Note: {note.replace('`', '')}")
    for line in said:
        out.print(line, soft_wrap=True)
    for cleared in outputs.cleared:
        for line in cleared.lines():
            out.print(line, soft_wrap=True)


def _study_dirs(studies: list[Any], out_dir: Path | None, several: bool) -> list[Path]:
    """The folder each study's report goes into: its own `plots/`; with --out, that folder
    (a study plotted alone) or a subfolder named after the study, where two studies of one
    name (in different folders) get their parent folder's name too, so that neither
    overwrites the other."""
    if out_dir is None:
        return [study.path / "plots" for study in studies]
    if not several:
        return [out_dir for _ in studies]
    names: list[str] = []
    plain = [study.path.name for study in studies]
    for study in studies:
        name = study.path.name
        if plain.count(name) > 1:
            name = f"{study.path.parent.name}_{name}"
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return [out_dir / name for name in names]


def _plot_dir(paths: list[Path]) -> Path:
    """The default plot folder: PATH/plots, or plots/ in the folder that holds every path."""
    if len(paths) == 1:
        return paths[0] / "plots"
    try:
        common = Path(os.path.commonpath([os.path.normpath(p) for p in paths]))
    except ValueError:  # absolute and relative paths mixed
        common = None
    if common is None or (common.is_absolute() and common == Path(common.anchor)):
        raise typer.BadParameter(
            "these paths share no folder to put the plots in; choose one with --out FOLDER",
            param_hint="'--out'",
        )
    return common / "plots"


@app.command("activations", short_help="List the built-in activations with their formulas.")
def list_activations() -> None:
    """List the built-in activation functions with formula, output range and a note.

    Example: actbench activations
    """
    from actbench.catalog import catalog_table  # no torch: answers at once

    out.print(catalog_table())
    out.print(
        "Your own: package.module:attribute (an nn.Module class or a tensor function), "
        "or label=package.module:attribute to name it, e.g. sin=torch:sin."
    )


def main() -> None:
    """Console-script entry point."""
    try:
        try:
            app()
        finally:
            if sys.stdout is not None:  # a reader gone with the last lines: found out here
                sys.stdout.flush()
    except BrokenPipeError:  # Python's advice: no second failure as the interpreter exits
        to_devnull(sys.stdout)
        sys.exit(1)
    finally:
        # The command is over and everything it wrote is closed: spare the interpreter's exit
        # a last garbage collection over torch's many objects (half a second on a small CPU).
        gc.freeze()
