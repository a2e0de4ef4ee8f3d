"""Errors a user can fix, each carrying a one-line message that names the fix."""


class ActbenchError(Exception):
    """A runtime failure the user can act on (missing data, unwritable folder...); exit code 1."""

    exit_code = 1


class UsageError(ActbenchError):
    """A mistake in what the user asked for (bad name, bad number, bad config); exit code 2."""

    exit_code = 2


class OutputClosed(KeyboardInterrupt):
    """The reader of the command's output went away: a pipe closed (`actbench run | head`).

    It ends a command as the user stopping it would: an interrupt (a run keeps its finished
    epochs and can be resumed; its manifest records `reason`), exit code 1. `reason` says which
    output: "standard output was closed".
    """

    exit_code = 1

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
