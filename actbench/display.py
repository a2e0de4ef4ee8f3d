"""The live progress display of `actbench run`: how far the run is in model-epochs, with
its ETA, and how far each group of models in training is."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from actbench.progress import Group
from actbench.terminal import line_breaks

BAR = 12  # columns of each bar
ETA = 12  # columns of the ETA ('ETA 0:01:05'; one more from ten hours on)
INDENT = "  "  # a group's row, under the run's

# How a bar names a study's settings where their full names do not fit: a short name, or
# None where the value names itself (a data set, an optimiser)
SHORT = {"dataset": None, "depth": "d", "hidden": "h", "lr": "lr", "optimizer": None,
         "momentum": "m", "batch_size": "b", "init": "init"}  # fmt: skip
SPELLED = {"d": "depth", "h": "hidden units", "m": "momentum", "b": "batch size"}


def _group(task: Task) -> Group | None:
    return task.fields.get("group")


class _Count(ProgressColumn):
    """'37/120 model-epochs' on the run's row; 'epoch 4/10' (the epoch in training) on a
    group's."""

    def render(self, task: Task) -> Text:
        group = _group(task)
        if group is None:
            total = int(task.total or 0)
            return Text(f"{int(task.completed):>{len(str(total))}}/{total} model-epochs")
        epoch = group.start_epoch + int(task.completed) // group.steps_per_epoch + 1
        return Text(f"epoch {min(epoch, group.epochs)}/{group.epochs}")


class _Remaining(ProgressColumn):
    """'ETA 0:01:05' on the run's row, from its recent pace; nothing on a group's."""

    max_refresh = 1.0  # seconds: a steadier estimate than at every redraw

    def render(self, task: Task) -> Text:
        if _group(task) is not None:
            return Text("")
        seconds = task.time_remaining
        if seconds is None:
            return Text("ETA -:--:--", style="progress.remaining")
        minutes, second = divmod(int(seconds), 60)
        hours, minute = divmod(minutes, 60)
        return Text(f"ETA {hours}:{minute:02d}:{second:02d}", style="progress.remaining")


def short_setting(setting: str) -> str:
    """'depth=8 hidden=32 lr=0.01' (`study.describe`) as 'd=8 h=32 lr=0.01': each setting by
    its short name (`SHORT`), a data set or optimiser by its value alone; values as they are."""
    parts = []
    for item in setting.split():
        key, _, value = item.partition("=")
        short = SHORT.get(key, key)
        parts.append(value if short is None else f"{short}={value}")
    return " ".join(parts)


# The ways a group's bar can name it, most complete first: settings spelled out or short
# (`short_setting`), and its activations listed ('list'), left out where it trains all of the
# run's and listed otherwise ('all'), or counted where it trains only some ('count').
_FORMS = ((False, "list"), (False, "all"), (True, "list"), (True, "all"), (True, "count"))


def _group_name(group: Group, short: bool, models: str, everything: int) -> list[str]:
    """The group's name in one of `_FORMS`, as the phrases a line may break between:
    ['d=8', 'lr=0.01,', 'seed 0:', 'relu,', 'tanh'] reads 'd=8 lr=0.01, seed 0: relu, tanh'."""
    where = short_setting(group.setting) if short else group.setting
    phrases = where.split()
    if phrases:
        phrases[-1] += ","
    phrases.append(f"seed {group.seed}")
    partial = len(group.labels) < everything
    if models == "list" or (models == "all" and partial):
        phrases[-1] += ":"
        phrases += [f"{label}," for label in group.labels[:-1]] + [group.labels[-1]]
    elif partial:  # counted
        phrases[-1] += ":"
        phrases.append(f"{len(group.labels)} of {everything} activations")
    return phrases


def _lines(phrases: list[str], width: int) -> str:
    """The phrases over lines of at most `width` columns, broken between phrases only (a
    phrase wider than that stands alone), later lines indented by two more columns."""
    glued = " ".join(phrase.replace(" ", "\u00a0") for phrase in phrases)
    parts = [glued[a:b].replace("\u00a0", " ") for a, b in line_breaks(glued, max(1, width - 2))]
    return f"\n{INDENT}  ".join(parts)


def group_names(groups: list[Group], room: int) -> tuple[dict[Group, str], list[str]]:
    """Each group's name for its bar, indented, in at most `room` columns, and the short
    names of settings it uses (`SPELLED`'s keys, to spell out once).

    The same form for every group: the first of `_FORMS` in which all fit. Where none does,
    the last form over lines that fit, broken between its phrases (a row of two lines or
    more): nothing is ever cut off.
    """
    everything = len({label for group in groups for label in group.labels})
    width = room - len(INDENT)
    for short, models in _FORMS:
        phrases = {g: _group_name(g, short, models, everything) for g in groups}
        names = {g: " ".join(p) for g, p in phrases.items()}
        if all(cell_len(name) <= width for name in names.values()):
            break
    else:  # over lines, broken between phrases ('seed 0:', '2 of 4 activations')
        names = {g: _lines(p, width) for g, p in phrases.items()}
    used = []
    if short:
        keys = {item.partition("=")[0] for g in groups for item in g.setting.split()}
        used = [SHORT[key] for key in SHORT if key in keys and SHORT[key] in SPELLED]
    return {g: INDENT + name for g, name in names.items()}, used


class RunProgress:
    """The display: one bar over every model-epoch this session trains, and, where models
    train in more than one group (several seeds, or several workers), one bar per group in
    training, named by its seed and activations.

    A model-epoch is one model trained for one epoch; a group trains all its models on each
    batch, so the run's bar moves by the group's models over its batches per epoch at each
    batch. Lines printed with `print` appear above the bars.
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True)),
            BarColumn(bar_width=BAR),
            _Count(table_column=Column(no_wrap=True)),
            _Remaining(table_column=Column(no_wrap=True, min_width=ETA)),
            console=console,
            transient=True,
            expand=True,
            refresh_per_second=4,  # the bars share the CPU with training: redraw sparingly
        )
        self.total: TaskID | None = None
        self.rows: dict[Group, TaskID] = {}
        self.finished: set[Group] = set()
        self.each = False
        self.shown = False
        self.groups = 0
        self.taken: dict[Group, int] = {}
        self.done_lines = 0
        self.names: dict[Group, str] = {}

    def start(self, groups: list[Group]) -> None:
        """Show the run's bar over `groups`' model-epochs (and start the display)."""
        total = sum(g.model_epochs for g in groups)
        self.groups = len(groups)
        self.total = self.progress.add_task(self._heading(), total=total)
        self.each = len(groups) > 1
        count = cell_len(f"{total}/{total} model-epochs")  # the widest count
        room = self.progress.console.width - BAR - count - ETA - 3  # columns 1 apart
        self.names, short = group_names(groups, room)
        if short and self.each and self.progress.console.is_terminal:  # bars will show them
            spelled = ", ".join(f"{name} = {SPELLED[name]}" for name in short)
            self.print(f"In the bars: {spelled}")
        self.shown = True
        self.progress.start()

    def steps(self, group: Group, steps: int) -> None:
        """`group` took `steps` more batches."""
        if self.total is None:
            return
        self.progress.advance(self.total, steps * len(group.labels) / group.steps_per_epoch)
        if group.setting and not self.progress.console.is_terminal:
            # no bars without a terminal (a log file): a line as each group of a study ends
            self.taken[group] = self.taken.get(group, 0) + steps
            if self.taken[group] == group.steps:
                self.done_lines += 1
                self.print(f"done {self.done_lines}/{self.groups}: {group.setting}, seed "
                           f"{group.seed}: {', '.join(group.labels)}")  # fmt: skip
        if not self.each or group in self.finished:
            return
        if group not in self.rows:
            name = self.names[group]
            self.rows[group] = self.progress.add_task(name, total=group.steps, group=group)
        row = self.rows[group]
        self.progress.advance(row, steps)
        if next(t for t in self.progress.tasks if t.id == row).finished:
            self.progress.remove_task(row)  # its models are done: make room for the next
            del self.rows[group]
            self.finished.add(group)
            self.progress.update(self.total, description=self._heading())

    def _heading(self) -> str:
        """'training', and where models train in several groups how many have finished."""
        if len(self.finished) and self.groups > 1:
            return f"[bold]training[/] ({len(self.finished)}/{self.groups} groups done)"
        return "[bold]training"

    def print(self, line: str) -> None:
        """A line above the bars."""
        self.progress.console.print(line, soft_wrap=True)

    def stop(self) -> None:
        """Remove the display, once, and only if it was shown (stopping one that never
        started would still write an empty line before a one-line error)."""
        if self.shown:
            self.shown = False
            self.progress.stop()
