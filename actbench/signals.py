"""Deferring SIGINT and SIGTERM while something must not be cut short."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

HELD = (signal.SIGINT, signal.SIGTERM)


def _set(signum: int, handler: Any) -> BaseException | None:
    """Set `handler` for `signum`; return what a handler raised meanwhile (None: nothing).

    `signal.signal` first runs the Python handlers of signals that have just arrived, and
    when one raises (KeyboardInterrupt from Ctrl-C or from actbench's SIGTERM handler, or
    SystemExit) it sets nothing: set it all the same, and hand the exception back to be raised
    once every handler is in place.
    """
    raised = None
    while True:
        try:
            signal.signal(signum, handler)
            return raised
        except (KeyboardInterrupt, SystemExit) as err:  # from a handler, not from setting it
            raised = raised or err


@contextmanager
def signals_held() -> Iterator[list[int]]:
    """Delay SIGINT and SIGTERM until the block ends, so that what it writes is never cut short.

    A signal that arrives meanwhile is handed to its previous handler on the way out (Python
    runs signal handlers in the main thread only, so only there can a write be cut short); of
    several, the first. The block receives the list of signals held so far (their numbers, in
    the order they came), so that a long one can act on them itself: stop early, or hurry. An ignored signal stays ignored, so it can never stand in for one that
    is handled (a background job of a script ignores SIGINT, and must still act on SIGTERM).
    Every handler is back in place however the block ends, even where a signal arrives while
    they are being swapped.
    """
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    caught: list[int] = []
    previous: dict[int, Callable[..., Any] | int] = {}
    raised: list[BaseException] = []
    try:
        for signum in HELD:
            handler = signal.getsignal(signum)
            if handler is None or handler == signal.SIG_IGN:
                continue  # None: set outside Python, and could not be put back
            previous[signum] = handler
            error = _set(signum, lambda n, _: caught.append(n))
            if error is not None:  # a signal from before the block: it acts at once
                raise error
        yield caught
    finally:
        for signum, handler in previous.items():
            error = _set(signum, handler)
            if error is not None:
                raised.append(error)
        for signum in caught[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
        if raised:
            raise raised[0]
