"""The live progress display of `actbench run`: how far the run is in model-epochs, with
its ETA, and how far each group of models in training is."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from actbench.progress import Group


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
            BarColumn(bar_width=12),
            _Count(table_column=Column(no_wrap=True)),
            _Remaining(table_column=Column(no_wrap=True)),
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

    def start(self, groups: list[Group]) -> None:
        """Show the run's bar over `groups`' model-epochs (and start the display)."""
        total = sum(g.model_epochs for g in groups)
        self.groups = len(groups)
        self.total = self.progress.add_task(self._heading(), total=total)
        self.each = len(groups) > 1
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
            where = f"{group.setting}, " if group.setting else ""
            name = f"  {where}seed {group.seed}: {', '.join(group.labels)}"
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
