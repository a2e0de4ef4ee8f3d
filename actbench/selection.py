"""Which models a report uses: each model once, what is incomplete, and the epoch to compare at.

A model is one activation trained from one seed with one set of the settings that change what
it learns. The same model may sit in several runs (a run repeated, or a `--seed 0,1` run next
to an earlier `--seed 0`): it is counted once, from the newest run where it is complete.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from actbench.activations import resolve, split_label
from actbench.catalog import CATALOG
from actbench.config import RunConfig
from actbench.datasets import spec as dataset_spec
from actbench.errors import ActbenchError
from actbench.experiment import RESULT_KEYS
from actbench.init import scheme_for
from actbench.repeats import repeat_notes, settle
from actbench.results import SETTINGS, RunFolder, run_frame
from actbench.summary import comparison_epoch

# The settings that make two models of one activation and seed different models. The number
# of epochs is not one of them: a run extended to more epochs trains the same models on.
IDENTITY = tuple(
    k for k in dict.fromkeys([*RESULT_KEYS, "val"]) if k not in ("activations", "seed")
)
# Settings that are off when 0 or missing, however they were written.
_DATA_KEYS = ("subset", "val")
# With a subset, the seed that drew it: the manifest's `data.subset_seed` (a fixed seed since
# that entry exists), and the run's first seed in runs made before it.
DATA_SEED = "data_seed"


def seed_list(config: dict[str, Any]) -> list[int]:
    """The seeds a run's settings name (`seed`, a number or a list, and `seeds`)."""
    seed = config.get("seed", 0)
    if isinstance(seed, list | tuple):
        return [int(s) for s in seed]
    return list(range(int(seed), int(seed) + int(config.get("seeds", 1))))


def identity(config: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings of a run's config that change what its models learn, made comparable.

    A setting the manifest lacks takes its default; one that does not apply is None (momentum
    under Adam, no subset, no validation split); `data_seed` is the seed that drew the subset
    (`data`, the manifest's data entry, names it; runs made before it drew it with their first
    seed), None without a subset. The validation split has a fixed seed of its own.
    """
    defaults = RunConfig()
    found = {key: config.get(key, getattr(defaults, key, None)) for key in IDENTITY}
    if found.get("optimizer") == "adam":
        found["momentum"] = None  # Adam has no momentum setting: any value there is unused
    for key in _DATA_KEYS:
        if key in found and not found[key]:
            found[key] = None  # no subset or no validation split, however it was written
    seeds = seed_list(config)
    drawn_by = (data or {}).get("subset_seed", seeds[0] if seeds else None)
    found[DATA_SEED] = drawn_by if found.get("subset") else None
    return found


def shown(key: str, value: Any) -> str:
    """A setting's value in a sentence ('1000'); None (does not apply) in words."""
    if value is not None:
        return str(value)
    return {"momentum": "unused (Adam)", "subset": "all the data", "val": "none"}.get(key, "none")


def dataset_shape(dataset: str) -> tuple[int, int] | None:
    """(inputs, classes) of a built-in data set by its `--dataset` name; None for another."""
    try:
        table = dataset_spec(dataset)
    except KeyError:
        return None
    inputs = getattr(table, "inputs", None)
    if inputs is None:  # an IDX set: one sample is an image of item_shape pixels
        inputs = math.prod(table.file("train_images").item_shape)
    return int(inputs), int(table.classes)


def data_shape(manifest: dict[str, Any]) -> tuple[int | None, int | None]:
    """(inputs, classes) of a run's network ends: the manifest's `data` entry, which records
    them; a manifest without them (made before actbench had other data sets) means its
    data set's, MNIST's (784, 10) when it names none. (None, None) for an unknown data set."""
    data = manifest.get("data") or {}
    if data.get("inputs") is not None and data.get("classes") is not None:
        return int(data["inputs"]), int(data["classes"])
    dataset = (manifest.get("config") or {}).get("dataset") or RunConfig.dataset
    return dataset_shape(str(dataset)) or (None, None)


def network_name(inputs: Any, depth: Any, hidden: Any, classes: Any) -> str:
    """'784-128-128-10': the layer widths, input to output, of `depth` hidden layers of
    `hidden` units; from 7 hidden layers on, '784-128-…-128-10 (8 hidden layers)'. An unknown
    end is '?'."""
    ends = ["?" if v is None else str(v) for v in (inputs, classes)]
    depth = int(depth)
    if depth <= 6:
        return "-".join([ends[0], *[str(hidden)] * depth, ends[1]])
    return f"{ends[0]}-{hidden}-…-{hidden}-{ends[1]} ({depth} hidden layers)"


_BUILT_IN = {name: entry for entry in CATALOG for name in (entry.name, *entry.aliases)}


def init_schemes(run: RunFolder) -> dict[str, str]:
    """The initialisation each activation label of `run` was built with
    (`actbench.init.scheme_for`): the run's `--init`, or under `auto` each activation's
    recommended scheme (the catalogue's; `torch` for a user's own). A manifest without `init`
    means `torch`; a scheme that cannot be told is 'unknown'. Nothing is imported.
    """
    config = run.manifest.get("config") or {}
    init = str(config.get("init", RunConfig.init))
    specs = [str(a) for a in config.get("activations", [])]
    specs += [str(a) for a in run.metrics["activation"].unique()] if len(run.metrics) else []
    schemes: dict[str, str] = {}
    for given in specs:
        label, inner = split_label(given)
        entry = _BUILT_IN.get(inner.partition(":")[0].lower())
        try:
            label = label or (resolve(inner).label if entry else inner)
            scheme = scheme_for(init, entry.init if entry else "torch")
        except (ActbenchError, ValueError):  # not a scheme or an activation actbench knows
            label, scheme = label or inner, "unknown"
        schemes.setdefault(label, scheme)
    return schemes


def init_words(init: str, schemes: dict[str, str]) -> str:
    """'kaiming', or under `auto` the scheme each activation got: 'auto (relu: kaiming, tanh:
    xavier)', from `schemes` (label -> scheme, as `init_schemes` gives them)."""
    if init != "auto" or not schemes:
        return init
    return f"auto ({', '.join(f'{label}: {scheme}' for label, scheme in schemes.items())})"


def label_of(activation: str, ident: dict[str, Any], varying: Sequence[str]) -> str:
    """'relu', or 'relu (lr=0.01)': the activation and those `varying` settings that apply."""
    extra = [f"{key}={ident[key]}" for key in varying if ident.get(key) is not None]
    return f"{activation} ({', '.join(extra)})" if extra else activation


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True)
class _Candidate:
    run: RunFolder
    activation: str
    seed: int
    key: str  # the model's identity as text
    reached: int
    planned: int | None
    diverged: int | None  # the epoch it diverged in

    @property
    def complete(self) -> bool:
        """It reached its planned epochs, or stopped on purpose when it diverged."""
        return self.diverged is not None or (
            self.planned is not None and self.reached >= self.planned
        )

    @property
    def newest(self) -> tuple[str, str]:
        return (str(self.run.manifest.get("started") or ""), self.run.name)


@dataclass(frozen=True)
class Selection:
    """The models a report compares and what a reader must know about them.

    `frame`: the chosen models' rows (every epoch, one run per model), with the `run` and
    `cfg_<key>` columns of `results.run_frame`, a `label` per line, the network's `inputs` and
    `classes` (`data_shape`) and the `init_scheme` each model was built with (`init_schemes`);
    (label, seed) names one model. `models`: one row per model (label, activation, seed, run, planned, reached,
    diverged, status). `runs`: the runs at least one model comes from, in the order given.
    `identities`: each label's settings (`identity`). `notes`: sentences naming what was left
    out, what is incomplete and what diverged. `epoch`: the last epoch every model reached (a
    diverged model counts as reaching every epoch); `final`: whether that is every model's
    planned last epoch.
    """

    frame: pd.DataFrame
    models: pd.DataFrame
    runs: list[RunFolder]
    identities: dict[str, dict[str, Any]]
    notes: list[str]
    epoch: int
    final: bool

    def planned(self) -> list[int | None]:
        """The numbers of epochs the models' runs planned (None: unknown), each once."""
        values = self.models["planned"].tolist()
        return list(dict.fromkeys(None if pd.isna(v) else int(v) for v in values))

    def epoch_sentence(self) -> str:
        """Which epoch the comparison is at, and whether that is final."""
        if self.final:
            return f"Compared at epoch {self.epoch}, the final epoch of every model."
        planned = [p for p in self.planned() if p is not None]
        shown = _and([str(p) for p in sorted(planned)]) if planned else "unknown"
        if None in self.planned() and planned:
            shown += " or unknown"
        return (
            f"Compared at epoch {self.epoch}, the last epoch every model reached "
            f"(epochs planned: {shown}): not a final result."
        )

    def seeds(self) -> dict[str, int]:
        """Each label's number of models (seeds), in line order."""
        counts = self.models.groupby("label", sort=False)["seed"].nunique()
        return {label: int(n) for label, n in counts.items()}


def _candidates(run: RunFolder) -> list[_Candidate]:
    config = run.manifest.get("config", {})
    planned = config.get("epochs")
    key = json.dumps(identity(config, run.manifest.get("data")), sort_keys=True)
    found = []
    for (activation, seed), rows in run.metrics.groupby(["activation", "seed"], sort=False):
        diverged = rows.loc[rows["status"] == "diverged", "epoch"]
        found.append(
            _Candidate(
                run,
                str(activation),
                int(seed),
                key,
                int(rows["epoch"].max()),
                int(planned) if isinstance(planned, int) else None,
                int(diverged.min()) if len(diverged) else None,
            )
        )
    return found


def planned_models(run: RunFolder) -> list[tuple[str, int]]:
    """(activation, seed) of every model the run set out to train, as its manifest lists them."""
    activations = dict.fromkeys(run.manifest.get("activations", []))
    seeds = seed_list(run.manifest.get("config", {})) if run.manifest.get("config") else []
    return [(a, s) for s in seeds for a in activations]


def _status(run: RunFolder) -> str:
    status = run.manifest.get("status")
    if status is None:
        return "status unknown"
    if status == "running":
        return "status running: still training, or stopped without recording it"
    if status == "failed" and run.manifest.get("error"):
        return f"failed: {run.manifest['error']}"
    return str(status)


def select_models(runs: Sequence[RunFolder]) -> Selection:
    """Choose each model once from `runs` and find the epoch every chosen model reached.

    Where several runs hold the same model (same activation, seed and `identity`), the one
    whose model is complete is preferred, then the newest (by the manifest's start time, then
    by the run's name); the others are left out and a note names them. Where one run's CSV
    records a model's epoch more than once (`repeats.settle`), identical repeats count once
    and a model whose repeats differ is left out, each with a note. Raises ValueError when
    no run has a finished epoch, and ActbenchError when every model with one is left out so.
    """
    runs, row_notes, excluded = _settled(runs)
    candidates = [c for run in runs for c in _candidates(run) if
                  (run.name, c.activation, c.seed) not in excluded]  # fmt: skip
    if not candidates:
        if excluded:
            names = ", ".join(sorted({name for name, _, _ in excluded}))
            raise ActbenchError(
                f"every model of {names} records an epoch more than once with different "
                "numbers in metrics.csv, so none can be compared; restore metrics.csv from a copy"
            )
        raise ValueError("no finished epochs in these runs")
    by_model: dict[tuple[str, int, str], list[_Candidate]] = {}
    for candidate in candidates:
        by_model.setdefault((candidate.activation, candidate.seed, candidate.key), []).append(
            candidate
        )
    chosen: dict[tuple[str, int, str], _Candidate] = {}
    left_out: list[tuple[_Candidate, _Candidate]] = []
    for model, options in by_model.items():
        ranked = sorted(options, key=lambda c: (c.complete, c.newest), reverse=True)
        chosen[model] = ranked[0]
        left_out += [(other, ranked[0]) for other in ranked[1:]]

    identities = {c.key: json.loads(c.key) for c in chosen.values()}
    varying = [
        key
        for key in [*IDENTITY, DATA_SEED]
        if len({json.dumps(ident.get(key)) for ident in identities.values()}) > 1
    ]

    def label(c: _Candidate) -> str:
        return label_of(c.activation, identities[c.key], varying)

    used = [run for run in runs if any(c.run is run for c in chosen.values())]
    frames = []
    for run in used:
        frame = run_frame(run)
        mine = {(c.activation, c.seed): c for c in chosen.values() if c.run is run}
        keep = [(a, s) in mine for a, s in zip(frame["activation"], frame["seed"], strict=True)]
        frame = frame[keep]
        labels = {pair: label(c) for pair, c in mine.items()}
        inputs, classes = data_shape(run.manifest)
        schemes = init_schemes(run)
        frames.append(
            frame.assign(
                label=[
                    labels[(a, s)] for a, s in zip(frame["activation"], frame["seed"], strict=True)
                ],
                inputs=inputs,
                classes=classes,
                init_scheme=frame["activation"].astype(str).map(schemes),
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    order = list(dict.fromkeys(frame["label"]))
    model_rows = sorted(
        (
            {
                "label": label(c),
                "activation": c.activation,
                "seed": c.seed,
                "run": c.run.name,
                "planned": c.planned,
                "reached": c.reached,
                "diverged": c.diverged,
                "status": c.run.manifest.get("status", "unknown"),
            }
            for c in chosen.values()
        ),
        key=lambda m: (order.index(m["label"]), m["seed"]),
    )
    models = pd.DataFrame(model_rows).astype({"planned": "Int64", "diverged": "Int64"})
    epoch = comparison_epoch(frame, "label")
    final = all(
        c.planned is not None and (c.diverged is not None or c.planned == epoch)
        for c in chosen.values()
    )

    notes = row_notes + _left_out_notes(left_out, label)
    notes += _incomplete_notes(runs, chosen, label, varying, excluded)
    notes += [
        f"{label(c)} seed {c.seed} diverged in epoch {c.diverged} (`{c.run.name}`): it stopped "
        "there on purpose, and counts with that epoch's numbers at every later epoch."
        for c in sorted(chosen.values(), key=lambda c: (order.index(label(c)), c.seed))
        if c.diverged is not None
    ]
    by_label = {label(c): identities[c.key] for c in chosen.values()}
    return Selection(
        frame,
        models,
        used,
        {name: by_label[name] for name in order},
        notes,
        epoch,
        final,
    )


def _settled(
    runs: Sequence[RunFolder],
) -> tuple[list[RunFolder], list[str], set[tuple[str, str, int]]]:
    """`runs` with each one's colliding rows settled (`repeats.settle`), the notes saying so,
    and (run name, activation, seed) of each model to leave out for repeats that differ (its
    rows stay in the run, as recorded: the run's settings table counts it as it ran)."""
    settled, notes, excluded = [], [], set()
    for run in runs:
        metrics, found = settle(run.metrics, ["activation", "seed"], keep_differing=True)
        if found:
            run = replace(run, metrics=metrics)
            notes += repeat_notes(run.name, found, lambda r: f"{r.model[0]} seed {r.model[1]}")
            excluded |= {(run.name, str(r.model[0]), int(r.model[1]))
                         for r in found if not r.identical}  # fmt: skip
        settled.append(run)
    return settled, notes, excluded


def _why(other: _Candidate, kept: _Candidate) -> str:
    """Why `kept` is used rather than the repeat `other`, in the note's words."""
    if kept.complete and not other.complete:
        return "complete there"
    if kept.newest[0] != other.newest[0]:
        return "newer"
    # the same start time (or none): one run copied, or runs whose times were lost
    if _rows(other).equals(_rows(kept)):
        return "identical copies, row for row; the one last by name is used"
    return "started at the same time; the one last by name is used"


def _rows(c: _Candidate) -> pd.DataFrame:
    """The candidate's rows in its run, every column, in epoch order."""
    metrics = c.run.metrics
    mine = metrics[(metrics["activation"] == c.activation) & (metrics["seed"] == c.seed)]
    return mine.sort_values("epoch").reset_index(drop=True)


def _left_out_notes(left_out: list[tuple[_Candidate, _Candidate]], label: Any) -> list[str]:
    """One sentence per (run left out, run used, reason) naming the repeated models."""
    groups: dict[tuple[str, str, str], list[_Candidate]] = {}
    for other, kept in left_out:
        groups.setdefault((other.run.name, kept.run.name, _why(other, kept)), []).append(other)
    notes = []
    for (dropped, kept, why), models in groups.items():
        names = _and([f"{label(c)} seed {c.seed}" for c in models])
        notes.append(
            f"Left out as repeats: {names} from `{dropped}`; the same "
            f"{'model is' if len(models) == 1 else 'models are'} used from `{kept}` ({why})."
        )
    return notes


def _incomplete_notes(
    runs: Sequence[RunFolder],
    chosen: dict[tuple[str, int, str], _Candidate],
    label: Any,
    varying: list[str],
    excluded: set[tuple[str, str, int]],
) -> list[str]:
    """One sentence per run whose models (used, or never started) did not reach its plan;
    `excluded` (run name, activation, seed): models left out for their rows, said apart."""
    notes = []
    for run in runs:
        config = run.manifest.get("config", {})
        mine = [c for c in chosen.values() if c.run is run]
        if not run.manifest:
            if mine:
                notes.append(
                    f"`{run.name}` has no manifest.json: its settings and planned epochs are "
                    "unknown, so none of its epochs is called final."
                )
            continue
        planned = config.get("epochs")
        if not isinstance(planned, int):
            if mine:
                notes.append(
                    f"`{run.name}`'s manifest does not say how many epochs were planned, so "
                    "none of its epochs is called final."
                )
            continue
        key = json.dumps(identity(config, run.manifest.get("data")), sort_keys=True)
        ident = json.loads(key)
        stopped: dict[tuple[int, int], list[str]] = {}
        for c in mine:
            if not c.complete:
                stopped.setdefault((c.seed, c.reached), []).append(label(c))
        parts = [
            f"seed {seed} of {_and(names)} stopped at epoch {reached}"
            for (seed, reached), names in sorted(stopped.items())
        ]
        missing: dict[int, list[str]] = {}
        for a, s in planned_models(run):
            if (a, s, key) not in chosen and (run.name, a, s) not in excluded:
                missing.setdefault(s, []).append(label_of(a, ident, varying))
        parts += [f"seed {seed} of {_and(names)} never started" for seed, names in missing.items()]
        if parts:
            notes.append(
                f"Incomplete: `{run.name}` ({_status(run)}, {_count(planned, 'epoch')} "
                f"planned): {'; '.join(parts)}."
            )
    return notes


@dataclass(frozen=True)
class Group:
    """Runs whose models share every setting that changes what they learn (`identity`): what
    one report compares.

    `name`: its folder under the plots folder, after what sets it apart ('subset-1000'), ''
    when the runs form one group; `settings`: the same in words ('subset 1000'); `runs`: its
    runs in the order given; `selection`: `select_models` of them, None when none of them has
    a finished epoch; `apart`: a note naming the runs of the other groups and the folders
    their reports are in ('' for one group); `differ`: the settings in which the groups
    differ (`IDENTITY` keys and `DATA_SEED`; none for one group).
    """

    name: str
    settings: str
    runs: list[RunFolder]
    selection: Selection | None
    apart: str
    differ: tuple[str, ...] = ()

    def reported(self, extra: Sequence[str] = ()) -> Selection:
        """The selection with the `apart` note and the `extra` ones (`apart_notes`), as the
        group's report shows it."""
        if self.selection is None:
            raise ValueError(f"no finished epochs in the runs of {self.settings or 'the group'}")
        notes = [*self.selection.notes, *([self.apart] if self.apart else []), *extra]
        return replace(self.selection, notes=notes)


def _folder_part(key: str, value: Any) -> str:
    """'subset-1000', 'batch-size-32', 'subset-all': one setting in a folder's name."""
    if value is None:
        value = {"subset": "all", "val": "0"}.get(key, "none")
    return f"{key.replace('_', '-')}-{re.sub(r'[^A-Za-z0-9.+-]', '-', str(value))}"


def group_runs(runs: Sequence[RunFolder], together: bool = False) -> list[Group]:
    """Split `runs` into groups of identical settings (`identity`), in the order given, each
    with its models chosen (`select_models`); `together` keeps them all in one group, whose
    lines are then labelled with the settings in which they differ ('relu (lr=0.01)').

    Runs of different settings are never compared in one report unless asked: each group has
    its own comparison epoch and baseline, and its name and words say only the settings in
    which the groups differ.
    """
    keyed: dict[str, list[RunFolder]] = {}
    for run in runs:
        key = (
            "{}"
            if together
            else json.dumps(
                identity(run.manifest.get("config", {}), run.manifest.get("data")), sort_keys=True
            )
        )
        keyed.setdefault(key, []).append(run)
    idents = {key: json.loads(key) for key in keyed}
    apart = [
        key
        for key in [*IDENTITY, DATA_SEED]
        if len({json.dumps(ident.get(key)) for ident in idents.values()}) > 1
    ]
    named = {
        key: (
            "_".join(_folder_part(k, ident.get(k)) for k in apart),
            ", ".join(f"{k} {shown(k, ident.get(k))}" for k in apart),
        )
        for key, ident in idents.items()
    }
    selections: dict[str, Selection | None] = {}
    for key, members in keyed.items():
        try:
            selections[key] = select_models(members)
        except ValueError:  # none of these runs finished an epoch
            selections[key] = None

    def where(key: str) -> str:
        if selections[key] is None:
            return "no finished epoch, so no report"
        return f"in `../{named[key][0]}/`"

    groups = []
    for key, members in keyed.items():
        others = [
            f"`{run.name}` ({named[other][1]}; {where(other)})"
            for other, theirs in keyed.items()
            if other != key
            for run in theirs
        ]
        note = f"Reported apart, since their settings differ: {_and(others)}." if others else ""
        groups.append(
            Group(named[key][0], named[key][1], members, selections[key], note, tuple(apart))
        )
    return groups


def model_keys(run: RunFolder) -> set[tuple[str, int, str]]:
    """(activation, seed, `identity` as JSON) of every model with rows in `run`: a study's
    models with their configuration's settings (its rows' settings columns), so that the same
    model in a study and in another run has the same key."""
    config = run.manifest.get("config") or {}
    data = run.manifest.get("data")
    columns = [k for k in SETTINGS if k in run.metrics]
    if run.metrics.empty:
        return set()
    keys = set()
    models = run.metrics[[*columns, "activation", "seed"]].drop_duplicates()
    for row in models.itertuples(index=False):
        values = dict(zip([*columns, "activation", "seed"], row, strict=True))
        point = {k: _python(values[k]) for k in columns if not pd.isna(values[k])}
        ident = identity({**config, **point}, data)
        keys.add(
            (str(values["activation"]), int(values["seed"]), json.dumps(ident, sort_keys=True))
        )
    return keys


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def apart_notes(
    studies: Sequence[RunFolder], runs: Sequence[RunFolder], groups: Sequence[Group]
) -> tuple[list[list[str]], list[list[str]]]:
    """What each study's report, and each group's, must say of models that are also in
    another run reported on its own: a study is always reported alone, so a second study of
    the same settings and seeds (a copy, or the same command run twice), or a run of one of
    its configurations, holds the same models in another report; none are pooled or left out.

    `runs`: the other runs (not studies) found with them; `groups`: those runs' groups
    (`group_runs`). Returns the notes of each study and of each group, in their order.
    """
    keys = {id(run): model_keys(run) for run in [*studies, *runs]}
    for_studies = []
    for study in studies:
        mine = keys[id(study)]
        notes = []
        others = [(other, True) for other in studies if other is not study]
        for other, is_study in [*others, *[(run, False) for run in runs]]:
            count = len(mine & keys[id(other)])
            if count:
                notes.append(_apart(count, len(mine), "this study's", other, is_study))
        for_studies.append(notes)
    for_groups = []
    for group in groups:
        mine = chosen_keys(group.selection) if group.selection is not None else set()
        notes = []
        for study in studies:
            count = len(mine & keys[id(study)])
            if count:
                notes.append(_apart(count, len(mine), "these", study, True))
        for_groups.append(notes)
    return for_studies, for_groups


def chosen_keys(selection: Selection) -> set[tuple[str, int, str]]:
    """`model_keys` of the models a selection uses, each from the run it is used from."""
    chosen = set(zip(selection.models["run"], selection.models["activation"],
                     selection.models["seed"].astype(int), strict=True))  # fmt: skip
    return {
        key
        for run in selection.runs
        for key in model_keys(run)
        if (run.name, key[0], key[1]) in chosen
    }


def _apart(count: int, total: int, whose: str, other: RunFolder, study: bool) -> str:
    """The sentence that says `count` of `total` models (`whose`: 'this study's', 'these')
    are also in `other` (a study where `study`), reported on its own."""
    return (
        f"Repeated in another {'study' if study else 'run'}: {count} of {whose} {total} "
        f"model{'s' * (total != 1)} (the same settings and seeds) {'is' if count == 1 else 'are'} "
        f"also in `{other.name}`, which is reported on its own: nothing is pooled with "
        f"{'it' if count == 1 else 'them'} or left out."
    )
