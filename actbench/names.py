"""How a message names a setting: by the flag a user typed on the command line
(`--batch-size`), by the preset file that gave it (`p.toml's batch_size`), or by the key a
Python dict gave it with (`batch_size`); and how a study names a configuration by its
settings' values (`config_name`: 'depth=8 lr=0.01')."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Given:
    """Which settings the command line's flags gave, and which only its preset gave."""

    flags: frozenset[str]
    preset: frozenset[str]
    preset_name: str | None = None  # the preset's file, as given: names the settings it gave
    command_line: bool = True  # False: Python's overrides, named by their keys, not as flags


_GIVEN: ContextVar[Given | None] = ContextVar("actbench_given", default=None)


def flag(key: str) -> str:
    """The command line's flag of setting `key`: 'batch_size' -> '--batch-size'."""
    return "--" + key.replace("_", "-")


def setting(key: str) -> str:
    """How a message names setting `key` ('batch_size').

    Within `given_by` (the command line): where only the preset gave the setting, the key
    after the preset's file ("p.toml's batch_size"; the bare key where the file is not named),
    and the flag otherwise (a flag gave it, or nothing did and a flag is how to change it).
    Within `from_preset` (the Python API): the same for the preset's settings, the key for
    the others. Elsewhere (a dict's keys): the key.
    """
    given = _GIVEN.get()
    if given is None:
        return key
    if key in given.preset and key not in given.flags:
        return f"{given.preset_name}'s {key}" if given.preset_name else key
    return flag(key) if given.command_line else key


def from_a_preset(key: str) -> bool:
    """Whether a preset gave setting `key` (and no flag overrode it), within `given_by` or
    `from_preset`: its value is then quoted as TOML writes it."""
    given = _GIVEN.get()
    return given is not None and key in given.preset and key not in given.flags


@contextmanager
def given_by(
    flags: Iterable[str], preset: Iterable[str] = (), preset_name: str | None = None
) -> Iterator[None]:
    """Messages raised within name settings as the command line gave them (`setting`):
    `flags`, the keys of the settings given as flags; `preset`, those a preset gave, whose
    file is `preset_name`."""
    with _naming(Given(frozenset(flags), frozenset(preset), preset_name)):
        yield


@contextmanager
def from_preset(preset_name: str, preset: Iterable[str], given: Iterable[str]) -> Iterator[None]:
    """Messages raised within name the settings only the preset file `preset_name` gave by
    it ("p.toml's lr"), and those of `given` (Python's overrides) by their keys; unless the
    command line names them already (`given_by`), which it keeps."""
    if _GIVEN.get() is not None:
        yield
        return
    with _naming(Given(frozenset(given), frozenset(preset), preset_name, command_line=False)):
        yield


@contextmanager
def _naming(given: Given | None) -> Iterator[None]:
    token = _GIVEN.set(given)
    try:
        yield
    finally:
        _GIVEN.reset(token)


@contextmanager
def keys_only() -> Iterator[None]:
    """Messages raised within name every setting by its key, even on the command line: for a
    run's recorded settings, checked on their own."""
    with _naming(None):
        yield


def config_name(values: Mapping[str, object]) -> str:
    """'depth=8 lr=0.01': a configuration named by its values of the settings a study varies,
    in their order; momentum only where it applies (SGD's configurations, not Adam's)."""
    return " ".join(
        f"{key}={setting_value(value)}"
        for key, value in values.items()
        if key != "momentum" or values.get("optimizer", "sgd") == "sgd"
    )


def setting_value(value: object) -> str:
    """A setting's value as a configuration's name shows it: 0.001, not 0.0010000."""
    return f"{value:g}" if isinstance(value, float) else str(value)
