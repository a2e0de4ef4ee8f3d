"""Rows of one run that collide: a model's epoch recorded more than once in one metrics.csv.

`actbench run` records each model's epoch once. A CSV joined or edited by hand, or copied
into itself, may hold one model's epoch twice. Such rows are never averaged together, and
never dropped without a word: where every repeat is the same row, column for column, one copy
counts and a note says so; where the repeats differ, which of them are the model's results
cannot be told, so the model is left out whole and a note says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Repeated:
    """One model whose rows collide: `model`, its values of the `keys` given to `settle`;
    `epochs`, the epochs recorded more than once; `identical`, whether every repeat equals
    the first row of its epoch in every column (then one copy was kept; else the model was
    left out)."""

    model: tuple[Any, ...]
    epochs: list[int]
    identical: bool


def settle(
    frame: pd.DataFrame, keys: Sequence[str], keep_differing: bool = False
) -> tuple[pd.DataFrame, list[Repeated]]:
    """`frame` (rows of one run, with an `epoch` column) with its colliding rows settled.

    A model is one value of `keys` (e.g. activation and seed); its rows collide where it has
    more than one row for an epoch. A model whose repeats are all identical keeps one copy of
    each row; a model with a repeat that differs loses all its rows, unless `keep_differing`
    (then the caller leaves it out itself, by the `Repeated` it gets). Returns the frame
    (`frame` itself where nothing collides; else a copy in the same order) and one `Repeated`
    per model concerned, in the order the models first appear.
    """
    keys = list(keys)
    colliding = frame.duplicated([*keys, "epoch"], keep=False)
    if not colliding.any():
        return frame, []
    found: list[Repeated] = []
    drop = pd.Series(False, index=frame.index)
    copies = frame.duplicated(keep="first")  # a row equal to an earlier one in every column
    for model, rows in frame[colliding].groupby(keys, sort=False, dropna=False):
        model = model if isinstance(model, tuple) else (model,)
        epochs = sorted(int(e) for e in rows["epoch"].unique())
        identical = not rows.drop_duplicates().duplicated([*keys, "epoch"]).any()
        found.append(Repeated(tuple(_plain(v) for v in model), epochs, identical))
        mine = pd.Series(True, index=frame.index)
        for key, value in zip(keys, model, strict=True):
            mine &= frame[key].isna() if pd.isna(value) else frame[key] == value
        if identical:
            drop |= mine & copies
        elif not keep_differing:
            drop |= mine
    return frame[~drop].reset_index(drop=True), found


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds."""
    return value.item() if hasattr(value, "item") else value


def epochs_text(epochs: Sequence[int]) -> str:
    """'epoch 2', 'epochs 1 to 3', 'epochs 1, 3 and 5'."""
    epochs = sorted(epochs)
    if len(epochs) == 1:
        return f"epoch {epochs[0]}"
    if epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"epochs {epochs[0]} to {epochs[-1]}"
    return f"epochs {', '.join(map(str, epochs[:-1]))} and {epochs[-1]}"


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def repeat_notes(run: str, found: Sequence[Repeated], name: Callable[[Repeated], str]) -> list[str]:
    """The sentences a report gives for `settle`'s `found` in the run named `run`: one for
    the models counted once, one for the models left out. `name` names a model ('relu seed
    0')."""
    notes = []
    same = [r for r in found if r.identical]
    differ = [r for r in found if not r.identical]
    if same:
        names = _and([f"{name(r)} ({epochs_text(r.epochs)})" for r in same])
        notes.append(
            f"Repeated rows: `{run}`'s metrics.csv records {names} more than once, each "
            "repeat identical to the first, column for column: each row is counted once."
        )
    if differ:
        names = _and([f"{name(r)} ({epochs_text(r.epochs)})" for r in differ])
        them = "it" if len(differ) == 1 else "them"
        notes.append(
            f"Left out: {names} of `{run}`, whose metrics.csv records "
            f"{'that epoch' if len(differ) == 1 and len(differ[0].epochs) == 1 else 'those epochs'} "
            "more than once with different numbers, so which are the results cannot be told; "
            f"restore its metrics.csv from a copy to use {them}."
        )
    return notes
