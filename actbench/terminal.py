"""The consoles the command line prints to: prose is never cut inside a word, and a closed
pipe ends the command as an interrupt would.

A message (errors, notes, summaries) is printed with `soft_wrap=True`, as one line. Left to
itself a terminal would then fold it at its last column, in the middle of a word or a number;
`Terminal` breaks such a line at its spaces instead, to the terminal's width. Written to a
file or a pipe, a message stays one line, whole, for grep and for copying.

Where the reader of a pipe goes away (`actbench run | head -3`), the console follows Python's
advice on SIGPIPE (the `signal` module's documentation): its file descriptor is pointed at
the null device, so that nothing later written to it, nor the interpreter's last flush, fails;
and `OutputClosed` is raised once, in the main thread, for the command to end as an interrupt.
"""

from __future__ import annotations

import os
import re
import select
import stat
import threading
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from actbench.errors import OutputClosed

_TOKENS = re.compile(r" +|[^ ]+")


def line_breaks(line: str, width: int) -> list[tuple[int, int]]:
    """Where `line` (no newline) breaks to fit `width` columns: (start, end) of each part.

    Parts end before a run of spaces, which the break drops, so that each part but the first
    starts with a word; a part is as long as fits. A word wider than `width` (a long path) is
    never split: it makes a part of its own, wider than `width`. Widths are terminal cells
    (`rich.cells.cell_len`).
    """
    parts: list[tuple[int, int]] = []
    start = end = 0  # the part being built: line[start:end], ending with a word
    for match in _TOKENS.finditer(line):
        if match.group().startswith(" "):
            continue
        if end > start and cell_len(line[start : match.end()]) > width:
            parts.append((start, end))
            start = match.start()
        end = match.end()
    parts.append((start, max(end, start)))
    return parts


def wrap(text: Text, width: int) -> Text:
    """`text` broken at spaces into lines of at most `width` columns (see `line_breaks`), each
    later part of a line indented as the line is; its styles are kept."""
    lines: list[Text] = []
    offset = 0
    for line in text.plain.split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        room = max(1, width - indent)
        first = True
        for start, end in line_breaks(line[indent:], room):
            part = text[offset + indent + start : offset + indent + end]
            lines.append((text[offset : offset + indent] if first else Text(" " * indent)) + part)
            first = False
        offset += len(line) + 1
    return Text("\n").join(lines)


class Terminal(Console):
    """A `rich.console.Console` whose messages are broken at spaces, never inside a word.

    A string printed with `soft_wrap=True` (a message) is, on a terminal, wrapped to the
    console's width at its spaces (`wrap`); in a file or a pipe it is printed as given. Tables
    and other renderables print as Rich prints them.

    Once the reader of its pipe has gone (`closed`), it writes nothing more and raises
    `OutputClosed`, once (`check_open`, `on_broken_pipe`).
    """

    closed = False  # the reader of this console's file has gone
    _told = False  # OutputClosed has been raised for it

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap and self.is_terminal and objects and all(isinstance(o, str) for o in objects):
            options = {k: kwargs.pop(k) for k in ("markup", "emoji", "highlight") if k in kwargs}
            sep = kwargs.pop("sep", " ")
            text = self.render_str(sep.join(objects), **options)
            objects = (wrap(text, self.width),)
        try:
            super().print(*objects, soft_wrap=soft_wrap, **kwargs)
        except BrokenPipeError:  # where Rich does not catch it itself
            self.on_broken_pipe()

    @property
    def stream(self) -> str:
        """'standard output' or 'standard error': what this console writes to, in words."""
        return "standard error" if self.stderr else "standard output"

    def on_broken_pipe(self) -> None:
        """A write found the reader gone (Rich calls this on `BrokenPipeError`): write nothing
        more, and raise `OutputClosed` (in the main thread, once; Rich's own would exit)."""
        self._close()
        if threading.current_thread() is threading.main_thread():
            self.check_open()

    def check_open(self) -> None:
        """Raise `OutputClosed` if the reader of this console's pipe or socket has gone (or a
        write found it gone), once; afterwards the console writes nothing. Where the system
        cannot tell before a write (no `select.poll`), a write still finds out."""
        if not self.closed and reader_gone(self.file):
            self._close()
        if self.closed and not self._told:
            self._told = True
            raise OutputClosed(f"{self.stream} was closed")

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.quiet = True
        to_devnull(self.file)


def reader_gone(file: IO[str]) -> bool:
    """Whether `file` is a pipe or socket whose reading end has been closed.

    Asked of the system without writing (`poll`: an error or hang-up on the writing end);
    False for anything else (a terminal, a file, a stream without a descriptor), and where
    the system has no `poll`.
    """
    try:
        fd = file.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):  # no descriptor (a test's stream), closed
        return False
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) or not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def to_devnull(file: IO[str]) -> None:
    """Point `file`'s descriptor at the null device, as Python's documentation advises for a
    closed pipe: what is written to it later, and the flush at exit, then succeed unseen."""
    try:
        fd = file.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
