"""The consoles the command line prints to: prose is never cut inside a word.

A message (errors, notes, summaries) is printed with `soft_wrap=True`, as one line. Left to
itself a terminal would then fold it at its last column, in the middle of a word or a number;
`Terminal` breaks such a line at its spaces instead, to the terminal's width. Written to a
file or a pipe, a message stays one line, whole, for grep and for copying.
"""

from __future__ import annotations

import re
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

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
    """

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap and self.is_terminal and objects and all(isinstance(o, str) for o in objects):
            options = {k: kwargs.pop(k) for k in ("markup", "emoji", "highlight") if k in kwargs}
            sep = kwargs.pop("sep", " ")
            text = self.render_str(sep.join(objects), **options)
            objects = (wrap(text, self.width),)
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)
