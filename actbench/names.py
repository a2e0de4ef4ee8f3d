"""How a message names a setting: by the flag a user typed on the command line
(`--batch-size`), or by the key a TOML preset or a Python dict gave it with (`batch_size`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Given:
    """Which settings the command line's flags gave, and which only its preset gave."""

    flags: frozenset[str]
    preset: frozenset[str]


_GIVEN: ContextVar[Given | None] = ContextVar("actbench_given", default=None)


def flag(key: str) -> str:
    """The command line's flag of setting `key`: 'batch_size' -> '--batch-size'."""
    return "--" + key.replace("_", "-")


def setting(key: str) -> str:
    """How a message names setting `key` ('batch_size').

    Within `given_by` (the command line): the key where only the preset gave the setting, and
    the flag otherwise (a flag gave it, or nothing did and a flag is how to change it).
    Elsewhere (the Python API, whose settings are a dict's keys): the key.
    """
    given = _GIVEN.get()
    if given is None or (key in given.preset and key not in given.flags):
        return key
    return flag(key)


@contextmanager
def given_by(flags: Iterable[str], preset: Iterable[str] = ()) -> Iterator[None]:
    """Messages raised within name settings as the command line gave them (`setting`):
    `flags`, the keys of the settings given as flags; `preset`, those a preset gave."""
    token = _GIVEN.set(Given(frozenset(flags), frozenset(preset)))
    try:
        yield
    finally:
        _GIVEN.reset(token)


@contextmanager
def keys_only() -> Iterator[None]:
    """Messages raised within name every setting by its key, even on the command line: for a
    preset, or a run's recorded settings, checked on its own."""
    token = _GIVEN.set(None)
    try:
        yield
    finally:
        _GIVEN.reset(token)
