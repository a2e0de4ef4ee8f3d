"""Errors a user can fix, each carrying a one-line message that names the fix."""


class ActbenchError(Exception):
    """A runtime failure the user can act on (missing data, unwritable folder...); exit code 1."""

    exit_code = 1


class UsageError(ActbenchError):
    """A mistake in what the user asked for (bad name, bad number, bad config); exit code 2."""

    exit_code = 2
