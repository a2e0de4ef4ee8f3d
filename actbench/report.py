"""A self-contained Markdown report of chosen models: the differences first, then tables and figures."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from actbench.config import RunConfig
from actbench.cost import COLUMNS as COST_COLUMNS
from actbench.cost import METHOD, describe, kibibytes, microseconds, read_cost
from actbench.datasets import title as dataset_title
from actbench.errors import UsageError
from actbench.outputs import write_output
from actbench.plots import (
    FOREST,
    cost_summary,
    dataset_names,
    make_plot_dir,
    networks,
    plot_differences,
    plot_runs,
    setup_line,
)
from actbench.results import RunFolder, activation_specs
from actbench.selection import (
    DATA_SEED,
    IDENTITY,
    Selection,
    data_shape,
    init_schemes,
    init_words,
    network_name,
    planned_models,
    seed_list,
    shown,
)
from actbench.stats import HOLM
from actbench.summary import ALPHA, compare, p_value, percent_interval, summarize

REPORT = "report.md"
NO_VALIDATION = (
    "No validation split (`--val 0`): no best epoch is chosen, since choosing it on the test "
    "set would overstate the accuracy. Rerun with `--val N` to choose it on N samples held out "
    "of the training data."
)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}%"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def choose_baseline(selection: Selection, baseline: str | None = None, group: str = "") -> str:
    """The line the others are compared with: `baseline` if given, else the runs' own
    `--baseline` where they all name the same line, else the first line.

    Raises UsageError if `baseline` is not one of the lines; `group` (the settings of a group
    of runs reported apart, `selection.Group.settings`) names which lines in that message.
    """
    labels = list(selection.identities)
    if baseline is not None:
        if baseline not in labels:
            lines = f"the lines of the runs with {group}" if group else "the lines"
            fix = "name one of them with --baseline"
            if group:
                fix += ", or compare runs of different settings in one report with --together"
            raise UsageError(
                f"baseline {baseline!r} is not among {lines} ({', '.join(labels)}); {fix}"
            )
        return baseline
    chosen = {run.manifest.get("config", {}).get("baseline") for run in selection.runs}
    if len(chosen) == 1 and (own := chosen.pop()) in labels:
        return own
    return labels[0]


def where(selection: Selection) -> str:
    """'at epoch 10 (final)', or 'at epoch 4 (the last all models reached; not final)'."""
    if selection.final:
        return f"at epoch {selection.epoch} (final)"
    return f"at epoch {selection.epoch} (the last all models reached; not final)"


def make_report(
    selection: Selection, out_dir: Path, baseline: str | None = None
) -> tuple[Path, list[Path]]:
    """Draw every figure and write the report into `out_dir`; return the report and figures.

    The first figure is the forest plot of the differences from the baseline (when there is
    more than one line). The baseline is checked before anything is written.
    """
    base = choose_baseline(selection, baseline)
    pairs = compare(selection.frame, base, "label", selection.epoch)
    make_plot_dir(out_dir)
    figures = []
    if not pairs.empty:
        setup = setup_line(selection.frame)
        figures.append(plot_differences(pairs, base, where(selection), out_dir / FOREST,
                                        setup=setup))  # fmt: skip
    cost = selection_costs(selection)
    specs = activation_specs(selection.runs)
    figures += plot_runs(selection.frame, out_dir, selection.epoch, cost, specs)
    return write_report(selection, figures, out_dir, base, cost), figures


def _shared(selection: Selection, label: str, baseline: str) -> list[str]:
    """The settings (other than the activation) in which `label`'s models differ from the
    baseline's, as 'hidden 64 vs 128'."""
    mine, base = selection.identities[label], selection.identities[baseline]
    return [
        f"{key} {shown(key, mine.get(key))} vs {shown(key, base.get(key))}"
        for key in [*IDENTITY, DATA_SEED]
        if mine.get(key) != base.get(key)
    ]


def _differences(selection: Selection, pairs: pd.DataFrame, base: str) -> list[str]:
    seeds = int(pairs["seeds"].max())
    rows = []
    for row in pairs.itertuples(index=False):
        if row.seeds > 1:
            interval = f"{100 * row.low:+.2f} to {100 * row.high:+.2f}"
            d_z = "n/a" if math.isnan(row.d_z) else f"{row.d_z:+.2f}"
            if math.isnan(row.p_holm):
                verdict = "n/a (the differences do not vary)"
            else:
                verdict = "**yes**" if row.significant else "no: within the noise"
        else:
            interval = d_z = "n/a"
            verdict = "n/a (one seed)"
        rows.append([row.label, str(row.seeds), f"{100 * row.difference:+.2f}", interval, d_z,
                     p_value(row.p), p_value(row.p_holm), verdict])  # fmt: skip
    k = len(pairs)
    parts = [
        f"## Differences from {base}",
        "",
        _table(
            [
                "activation",
                "seeds",
                f"test accuracy minus {base} (points)",
                "95% interval",
                "d_z",
                "p",
                f"p ({HOLM})",
                "real difference?",
            ],
            rows,
        ),
        "",
    ]
    if seeds > 1:
        parts += [
            f"Each difference is the mean over seeds of the activation's test accuracy minus "
            f"{base}'s {where(selection)}, paired by seed (the seeds column counts the pairs). "
            "The 95% interval is the paired Student's t interval of the per-seed differences, "
            f"each at 95% on its own; p is the two-sided paired t test (scipy.stats.ttest_rel). "
            f"With {k} comparison{'s' if k > 1 else ''} against {base}, the verdicts use "
            f"{HOLM}'s correction (statsmodels' multipletests): a difference is real when its "
            f"{HOLM}-adjusted p is below {ALPHA}, which keeps the chance of any false verdict in "
            f"the family at {ALPHA:.0%} at most. d_z is the paired effect size (Cohen's d_z: "
            "the mean difference over the standard deviation of the per-seed differences).",
            "",
        ]
    else:
        parts += ["One seed gives no interval and no test: rerun with `--seeds 5`.", ""]
    alike = [
        r.label for r in pairs.itertuples(index=False) if not _shared(selection, r.label, base)
    ]
    inits = {str(i) for i in selection.frame.get("init", pd.Series(dtype=str)).dropna()}
    if alike and "auto" in inits:  # each activation starts from its own scheme's weights
        parts += [
            f"For a given seed, {_and([*alike, base])} see the same batches; with `--init auto` "
            "each starts from its own recommended scheme's weights (models that share a scheme "
            "start alike), so the differences include the initialisation each is meant to have.",
            "",
        ]
    elif alike:
        parts += [
            f"For a given seed, {_and([*alike, base])} start from the same initial weights and "
            f"see the same batches, so {'this difference is' if len(alike) == 1 else 'these differences are'} "
            "the activation's alone.",
            "",
        ]
    for row in pairs.itertuples(index=False):
        differs = _shared(selection, row.label, base)
        if differs:
            parts += [
                f"{row.label} differs from {base} in more than the activation "
                f"({'; '.join(differs)}): its difference is not the activation's alone.",
                "",
            ]
    return parts


def _summary(selection: Selection, base_rows: pd.DataFrame) -> list[str]:
    with_val = base_rows["best_epoch"].notna().any()
    heading = (
        "final test accuracy" if selection.final else f"test accuracy at epoch {selection.epoch}"
    )
    rows = []
    for row in base_rows.itertuples(index=False):
        accuracy = percent_interval(
            row.test_accuracy, row.test_accuracy_low, row.test_accuracy_high
        )
        if row.diverged_seeds:
            accuracy += f" ({row.diverged_seeds} of {row.seeds} seeds diverged, first at epoch {row.diverged_epoch})"
        best = []
        if with_val:
            if pd.isna(row.best_epoch):
                best = ["n/a", "n/a"]
            else:
                test = percent_interval(row.best_test_accuracy, row.best_test_accuracy_low,
                                        row.best_test_accuracy_high)  # fmt: skip
                best = [f"{int(row.best_epoch)} ({_percent(row.best_val_accuracy)})", test]
        rows.append([row.label, str(row.seeds), accuracy, *best,
                     f"{row.train_loss:.4f}", f"{row.test_loss:.4f}"])  # fmt: skip
    header = ["activation", "seeds", heading]
    if with_val:
        header += ["best epoch by validation (val accuracy)", "test accuracy at that epoch"]
    header += ["train loss", "test loss"]
    parts = ["## Summary", "", _table(header, rows), ""]
    if with_val:
        parts += [
            "The best epoch is the epoch of the highest mean validation accuracy over the seeds "
            f"(up to epoch {selection.epoch}); the test set takes no part in that choice.",
            "",
        ]
    else:
        parts += [NO_VALIDATION, ""]
    parts += [
        f"A whole epoch took {selection.frame['epoch_seconds'].mean():.2f} s on average (shared "
        "by the models trained together); what each activation costs on its own is measured "
        "below.",
        "",
    ]
    return parts


def _cost(frame: pd.DataFrame, cost: pd.DataFrame | None) -> list[str]:
    """The cost section: each activation's measured time per step and saved memory."""
    parts = ["## Cost", ""]
    table = cost_summary(frame, cost) if cost is not None and not cost.empty else None
    measured = set() if table is None else set(table["run"].astype(str))
    missing = [str(r) for r in frame["run"].unique() if str(r) not in measured]
    if table is not None:
        rows = [
            [r.label, f"{r.device}, {r.threads} thread{'' if r.threads == 1 else 's'}",
             f"{r.batch_size} × {r.hidden}", microseconds(r.seconds, r.low, r.high),
             str(r.rounds), kibibytes(r.saved_bytes), kibibytes(r.extra_saved_bytes)]
            for r in table.itertuples(index=False)
        ]  # fmt: skip
        parts += [
            _table(
                [
                    "activation",
                    "device",
                    "batch × hidden",
                    "µs per step (95% interval)",
                    "rounds",
                    "saved KiB",
                    "extra KiB",
                ],
                rows,
            ),
            "",
            f"Measured after training, in each run's own folder (`cost.csv`): {describe(table)}. "
            "Each activation ran its warm-up steps (discarded), then a calibration chose how many "
            "steps each measurement times (enough for a few milliseconds); in every round each "
            "activation was measured once, the order changing from round to round (a Williams "
            "design over the labels sorted by name, so no activation is always first and the "
            f"order they were listed in plays no part). Values: {METHOD}. The time includes "
            "PyTorch's per-call overhead, much the same for every activation (an `identity` "
            "activation shows it alone). Saved KiB: the tensors autograd keeps for the backward pass of both "
            "layers, each storage counted once, the input included when kept, the activation's "
            "own parameters not; extra KiB: the part that is not the activation's output, which "
            "the next layer keeps anyway.",
            "",
        ]
    for run in missing:
        parts += [
            f"No cost measurement for run `{run}` (no `cost.csv`): the run did not complete, "
            "was stopped while measuring it, or was made before actbench measured cost.",
            "",
        ]
    return parts


def selection_costs(selection: Selection) -> pd.DataFrame:
    """The cost measurements (`cost.csv`) of the runs a selection uses, with a `run` column."""
    frames = []
    for run in selection.runs:
        cost = read_cost(run.path)
        if not cost.empty:
            frames.append(cost.assign(run=run.name))
    if not frames:
        return pd.DataFrame(columns=["run", *COST_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def _value(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _settings_of(run: RunFolder) -> dict[str, str]:
    """What a run really ran with, as the settings table shows it."""
    manifest = run.manifest
    config = manifest.get("config", {})
    versions = manifest.get("versions", {})
    data = manifest.get("data", {})
    hidden = config.get("hidden")
    reached = run.metrics.groupby(["activation", "seed"])["epoch"].max()
    planned = config.get("epochs")
    never = len(planned_models(run)) - len(reached) if run.manifest.get("activations") else 0
    if planned is None:
        epochs = "planned: unknown"
    elif len(reached) and reached.min() == reached.max() == planned and never <= 0:
        epochs = str(planned)
    else:
        low, high = (int(reached.min()), int(reached.max())) if len(reached) else (0, 0)
        epochs = f"{planned} planned; models reached {low if low == high else f'{low} to {high}'}"
        if never > 0:
            epochs += f"; {never} never started"
    optimizer = config.get("optimizer")
    if optimizer is None:
        training = "unknown"
    else:
        training = f"{'Adam' if optimizer == 'adam' else 'SGD'}, lr {_value(config.get('lr'))}"
        if optimizer == "sgd":
            training += f", momentum {_value(config.get('momentum'))}"
    seeds = config.get("seed")
    seed_text = "unknown"
    if seeds is not None:
        seed_text = ", ".join(map(str, seed_list(config)))
    if data:
        samples = f"{data.get('train_samples')} training, {data.get('test_samples')} test"
        if config.get("subset"):
            samples += f" (a subset picked by seed {seed_list(config)[0]})"
    else:
        samples = "unknown"
    val = config.get("val")
    device = _value(manifest.get("device"))
    later = [r.get("device") for r in manifest.get("resumed", []) if r.get("device")]
    if any(d != manifest.get("device") for d in later):
        device += f" (resumed on {', '.join(dict.fromkeys(later))})"
    dataset = str(config.get("dataset", RunConfig.dataset))
    depth = config.get("depth", RunConfig.depth)
    init = str(config.get("init", RunConfig.init))
    inputs, classes = data_shape(manifest)
    return {
        "status": _value(manifest.get("status")),
        "activations": ", ".join(dict.fromkeys(manifest.get("activations", []))) or "unknown",
        "dataset": dataset_title(dataset),
        "network": network_name(inputs, depth, hidden, classes) if hidden else "unknown",
        "initialisation": init_words(init, init_schemes(run)),
        "epochs": epochs,
        "batch size": _value(config.get("batch_size")),
        "optimizer": training,
        "seeds": seed_text,
        "samples": samples,
        "validation split": f"{val} samples held out of the training data" if val else "none",
        "device": device,
        "torch": _value(versions.get("torch")),
        "actbench": _value(versions.get("actbench")),
        "started": _value(manifest.get("started")),
    }


def _settings(selection: Selection) -> str:
    columns = [_settings_of(run) for run in selection.runs]
    keys = list(columns[0])
    if len(columns) == 1:
        return _table(["setting", "value"], [[key, columns[0][key]] for key in keys])
    header = ["setting", *[f"`{run.name}`" for run in selection.runs]]
    return _table(header, [[key, *[c[key] for c in columns]] for key in keys])


def _network(selection: Selection) -> str:
    """'a 784-128-128-10 network', or each network where the runs differ."""
    names = networks(selection.frame)
    if not names:
        return "an MLP (its widths unknown)"
    return f"a {' or '.join(names)} network" + (" (as in the settings)" if len(names) > 1 else "")


def _seeds_sentence(selection: Selection) -> str:
    counts = selection.seeds()
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        if n == 1:
            return (
                "Every activation has one seed (one model), so no interval can be given: "
                "rerun with `--seeds 5` to tell real differences from noise."
            )
        return (
            f"Every activation has {n} seeds (one model each); values are means over the seeds "
            "with their 95% confidence interval (Student's t)."
        )
    each = _and([f"{label} {n}" for label, n in counts.items()])
    return (
        f"Seeds (one model each): {each}; values are means over each activation's seeds with "
        "their 95% confidence interval (Student's t) where there are two or more."
    )


def write_report(
    selection: Selection,
    figures: list[Path],
    out_dir: Path,
    baseline: str | None = None,
    cost: pd.DataFrame | None = None,
) -> Path:
    """Write `report.md` into `out_dir` (where the figures are) and return its path.

    The report stands alone: the forest plot of the differences (when `figures` has it) comes
    first, then the runs used and the epoch compared, notes on what was left out or is
    incomplete, the differences and summary tables, the activations' measured cost (`cost`:
    `selection_costs`; None reports none), the settings of each run, and the other figures,
    linked by relative paths so the folder can be copied anywhere.
    """
    base = choose_baseline(selection, baseline)
    summary = summarize(selection.frame, key="label", epoch=selection.epoch)
    pairs = compare(selection.frame, base, "label", selection.epoch)
    forest = [path for path in figures if path.name == FOREST]
    others = [path for path in figures if path.name != FOREST]
    runs = ", ".join(f"`{run.name}`" for run in selection.runs)
    parts = ["# Activation comparison", ""]
    for path in forest:
        parts += [f"![Difference from {base}]({os.path.relpath(path, out_dir)})", ""]
    parts += [
        f"Runs used: {runs}. Each model is {_network(selection)} trained on "
        f"{' or '.join(dataset_names(selection.frame))}, one per activation and seed. "
        f"{selection.epoch_sentence()} {_seeds_sentence(selection)}",
        "",
    ]
    if selection.notes:
        parts += ["## Notes", "", *[f"- {note}" for note in selection.notes], ""]
    if not pairs.empty:
        parts += _differences(selection, pairs, base)
    parts += _summary(selection, summary)
    parts += _cost(selection.frame, cost)
    parts += ["## Settings", "", _settings(selection), ""]
    parts += ["## Figures", ""]
    for path in others:
        name = path.stem.replace("_", " ")
        parts += [f"![{name}]({os.path.relpath(path, out_dir)})", ""]
    path = out_dir / REPORT
    write_output(path, "\n".join(parts))
    return path
