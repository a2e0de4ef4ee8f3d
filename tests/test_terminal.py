"""What the terminal shows: tables that fit 80 columns with every number whole, per-epoch
lines in seed-then-epoch order with every model, a progress display in model-epochs, and a
catalogue of activations that answers without torch."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from actbench.catalog import CATALOG, catalog_table
from actbench.cost import COLUMNS as COST_COLUMNS
from actbench.cost import COST
from actbench.display import RunProgress
from actbench.jobs import Unit, plan_jobs
from actbench.progress import EpochLines, StepRouter, plan_groups
from actbench.summary import summarize
from actbench.tables import (
    EPOCH_HEADING,
    Label,
    comparison_table,
    cost_table,
    epoch_line,
    summary_table,
)
from actbench.train import EpochResult

LONG = ["relu", "leaky:0.1", "my_acts:InplaceReLU", "torch.nn.functional:hardswish", "sin"]


def _frame(labels, seeds=(0, 1, 2), epochs=3, diverged=None):
    """Rows whose numbers differ by label, seed and epoch; with a validation split."""
    rows = []
    for seed in seeds:
        for epoch in range(1, epochs + 1):
            for i, label in enumerate(labels):
                status = "ok"
                if diverged == (label, seed):
                    if epoch > 2:
                        continue
                    status = "diverged" if epoch == 2 else "ok"
                accuracy = 0.9 + 0.01 * i + 0.004 * seed * (i + 1) + 0.001 * epoch
                row = EpochResult(label, seed, epoch, 0.3 / epoch + 0.01 * i, accuracy,
                                  0.35 / epoch, accuracy, 1.25, status,
                                  val_loss=0.4 / epoch, val_accuracy=accuracy - 0.002)  # fmt: skip
                rows.append(row.__dict__)
    return pd.DataFrame(rows)


def _render(*tables, width=80):
    console = Console(width=width, record=True, highlight=False)
    for table in tables:
        console.print(table)
    return console.export_text()


def _cells(text):
    return {cell for line in text.splitlines() for cell in line.split("  ") if cell.strip()}


@pytest.mark.parametrize("diverged", [None, ("my_acts:InplaceReLU", 1)])
def test_end_of_run_tables_fit_80_columns_with_every_number_whole(tmp_path, diverged):
    frame = _frame(LONG, diverged=diverged)
    run = tmp_path / "run"
    run.mkdir()
    cost = [[label, r, 0, 8, (i + 1) * 1e-4 * r, 64, 128, 2, "cpu", 1, 10, 65536, 65536 * i]
            for i, label in enumerate(LONG) for r in range(1, 21)]  # fmt: skip
    (run / COST).write_text(pd.DataFrame(cost, columns=COST_COLUMNS).to_csv(index=False))
    text = _render(
        summary_table(run, frame), comparison_table(frame, "relu"), cost_table(run, frame)
    )
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # nothing cut, headings included
    for heading in ("test acc", "best (ep)", "difference", "95% interval", "Holm p", "real?"):
        assert heading in text or _split(heading, text)
    # every accuracy of the summary appears whole in one cell
    summary = summarize(frame)
    cells = " | ".join(_cells(text))
    for row in summary.itertuples():
        assert f"{100 * row.test_accuracy:.2f}%" in cells, row.activation
        assert f"{row.train_loss:.4f}" in cells and f"{row.test_loss:.4f}" in cells
    # a long label wraps after its punctuation, and all of it is there
    assert "torch.nn.functional:" in text and "hardswish" in text
    for label in LONG:
        assert all(part in text for part in Label(label).parts()), label


def test_headings_stay_on_one_line_where_the_table_fits(tmp_path):
    """Only a table that would not fit 80 columns breaks its headings over two lines."""
    frame = _frame(["relu", "sigmoid", "tanh", "leaky"])
    text = _render(summary_table(tmp_path, frame), comparison_table(frame, "relu"))
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    for heading in ("test acc", "best (ep)", "train loss", "test loss", "95% interval"):
        assert heading in text, heading


def _split(heading, text):
    """A heading printed over two lines: each word on consecutive lines."""
    first, second = heading.split(" ", 1)
    lines = text.splitlines()
    return any(first in a and second in b for a, b in itertools.pairwise(lines))


def test_a_label_breaks_after_punctuation_and_only_then_anywhere():
    assert Label("torch.nn.functional:hardswish").lines(20) == [
        "torch.nn.functional:",
        "hardswish",
    ]
    assert Label("my_acts:InplaceReLU").lines(12) == ["my_acts:", "InplaceReLU"]
    assert Label("abcdefghij").lines(4) == ["abcd", "efgh", "ij"]
    assert Label("relu").lines(80) == ["relu"]


def test_the_catalogue_fits_80_columns_with_each_note_on_one_line():
    text = _render(catalog_table())
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    for entry in CATALOG:  # three lines: its name beside formula and range, note, init
        (at,) = [i for i, line in enumerate(lines) if line[:11].split() == [entry.name]]
        first, note, last = lines[at : at + 3]
        assert first.split(None, 1)[1].strip() == f"{entry.formula}; range {entry.output_range}"
        assert note.strip() == entry.note
        assert last.strip().startswith(f"init {entry.init}")
        # the name column holds the name alone: nothing under it reads as another name
        assert not note[:11].strip() and not last[:11].strip(), entry.name
    rule = next(i for i, line in enumerate(lines) if "───" in line)
    rows = lines[rule + 1 : rule + 1 + 3 * len(CATALOG)]
    assert [row.split()[0] for row in rows if row[:11].strip()] == [e.name for e in CATALOG]
    assert not lines[rule + 1 + 3 * len(CATALOG)].strip()  # then the caption


def test_actbench_activations_answers_without_torch():
    """torch takes seconds to import: listing the built-ins must not wait for it."""
    code = (
        "import sys\n"
        "from actbench.cli import app\n"
        "print('exit', app(['activations'], standalone_mode=False) or 0)\n"
        "print('loaded', sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))\n"
    )
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-2:] == ["exit 0", "loaded []"]
    assert "relu" in proc.stdout and "max(0, x)" in proc.stdout
    assert max(cell_len(line) for line in lines) <= 80


def _row(label, seed, epoch, status="ok"):
    return EpochResult(label, seed, epoch, 0.5, 0.8, 0.6, 0.9 - 0.01 * epoch, 1.0, status)


ACTIVATIONS = ["relu", "sigmoid", "tanh", "leaky"]


def _units(seeds=(0, 1, 2)):
    return [Unit(s, i, a) for s in seeds for i, a in enumerate(ACTIVATIONS)]


def _reports(jobs, epochs):
    """Each job's reports in its own order: its rows, epoch by epoch."""
    return [
        [
            [_row(u.label, job.seed, epoch) for u in job.units]
            for epoch in range(job.start_epoch + 1, epochs + 1)
        ]
        for job in jobs
    ]


def _interleave(streams, rng):
    """One order in which the jobs' reports could arrive (each job's own kept)."""
    streams = [list(s) for s in streams]
    order = []
    while any(streams):
        pick = rng.choice([s for s in streams if s])
        order.append(pick.pop(0))
    return order


def test_epoch_lines_come_in_seed_then_epoch_order_with_every_model():
    units, epochs = _units(), 4
    jobs = plan_jobs(units, {}, set(), 2)  # each seed's models are split in two jobs
    assert [job.seed for job in jobs] == [0, 0, 1, 1, 2, 2]
    streams = _reports(jobs, epochs)
    orders = [
        [r for s in streams for r in s],  # one job after the other
        [r for s in reversed(streams) for r in s],  # the last job first
        *[_interleave(streams, random.Random(k)) for k in range(20)],
    ]
    for order in orders:
        shown = []
        lines = EpochLines(units, epochs, shown.append)
        for rows in order:
            lines.add(rows)
        assert [(rows[0].seed, rows[0].epoch) for rows in shown] == [
            (s, e) for s in (0, 1, 2) for e in range(1, epochs + 1)
        ]
        for rows in shown:
            assert [r.activation for r in rows] == ACTIVATIONS
            assert {r.seed for r in rows} == {rows[0].seed}


def test_after_a_resume_every_line_still_has_every_model_of_its_seed():
    units, epochs = _units(), 6
    # the run stopped with seed 1 split: tanh and leaky at epoch 5, relu and sigmoid at 2;
    # seed 2's identity-like model (relu) diverged at epoch 1 and trains no more
    first = {u: 0 for u in units}
    for u in units:
        if u.seed == 0:
            first[u] = 6
        if u.seed == 1:
            first[u] = 5 if u.label in ("tanh", "leaky") else 2
        if u.seed == 2:
            first[u] = 1 if u.label == "relu" else 3
    done = {u for u in units if u.seed == 0 or (u.seed, u.label) == (2, "relu")}
    earlier = [
        _row(u.label, u.seed, e, "diverged" if (u.seed, u.label, e) == (2, "relu", 1) else "ok")
        for u in units
        for e in range(1, first[u] + 1)
    ]
    jobs = plan_jobs(units, first, done, 2)
    shown = []
    lines = EpochLines(units, epochs, shown.append, first, earlier, done)
    for rows in _interleave(_reports(jobs, epochs), random.Random(0)):
        lines.add(rows)
    keys = [(rows[0].seed, rows[0].epoch) for rows in shown]
    assert keys == [(1, e) for e in range(3, 7)] + [(2, e) for e in range(4, 7)]
    for rows in shown:
        expected = ACTIVATIONS if rows[0].seed == 1 else ["sigmoid", "tanh", "leaky"]
        assert [r.activation for r in rows] == expected, (rows[0].seed, rows[0].epoch)


def test_a_model_diverging_ends_its_part_of_the_lines():
    units, epochs = _units(seeds=(0,)), 3
    shown = []
    lines = EpochLines(units, epochs, shown.append)
    lines.add([_row("relu", 0, 1), _row("sigmoid", 0, 1)])
    lines.add([_row("tanh", 0, 1), _row("leaky", 0, 1, "diverged")])  # the second group
    lines.add([_row("relu", 0, 2), _row("sigmoid", 0, 2)])
    lines.add([_row("tanh", 0, 2)])
    assert [[r.activation for r in rows] for rows in shown] == [ACTIVATIONS, ACTIVATIONS[:3]]


def test_a_stopped_run_shows_every_epoch_it_finished():
    units, epochs = _units(seeds=(0, 1)), 2
    shown = []
    lines = EpochLines(units, epochs, shown.append)
    lines.add([_row("tanh", 1, 1), _row("leaky", 1, 1)])  # seed 1 waits for its other half
    lines.add([_row(a, 0, 1) for a in ACTIVATIONS])
    assert [(r[0].seed, r[0].epoch) for r in shown] == [(0, 1)]
    lines.flush()  # interrupted here
    assert [(r[0].seed, r[0].epoch, len(r)) for r in shown] == [(0, 1, 4), (1, 1, 2)]


def test_steps_are_counted_to_the_group_that_took_them():
    units = _units()
    jobs = plan_jobs(units, {}, set(), 2)
    groups = plan_groups(jobs, epochs=3, steps_per_epoch=[10])
    calls = []
    router = StepRouter(groups, lambda g, n: calls.append((g, n)))
    rng = random.Random(1)
    left = {number: group.steps for number, group in enumerate(groups)}
    while any(left.values()):
        number = rng.choice([j for j in left if left[j]])
        n = min(left[number], rng.choice([3, 7, 32]))
        router.add(number, n)
        left[number] -= n
    assert {g: sum(n for h, n in calls if h == g) for g in groups} == {g: g.steps for g in groups}
    assert [(g.seed, g.labels) for g in groups] == [(j.seed, tuple(u.label for u in j.units))
                                                    for j in jobs]  # fmt: skip
    assert sum(g.model_epochs for g in groups) == 3 * 12


def test_the_display_counts_model_epochs_and_shows_each_group_in_training():
    units = _units()
    jobs = plan_jobs(units, {}, set(), 2)
    groups = plan_groups(jobs, epochs=4, steps_per_epoch=[10])
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    display = RunProgress(console)
    display.start(groups)
    try:
        first, other = groups[0], groups[3]
        display.steps(first, 15)  # seed 0's relu and sigmoid: one and a half epochs
        display.steps(other, 20)  # seed 1's tanh and leaky: two epochs
        recorder = Console(width=80, record=True)
        recorder.print(display.progress.make_tasks_table(display.progress.tasks))
        text = recorder.export_text()
    finally:
        display.stop()
    assert f"7/{3 * 4 * 4} model-epochs" in text  # 2 x 1.5 + 2 x 2
    assert "seed 0: relu, sigmoid" in text and "epoch 2/4" in text
    assert "seed 1: tanh, leaky" in text and "epoch 3/4" in text
    assert "ETA" in text
    assert max(cell_len(line) for line in text.splitlines()) <= 80


def test_a_run_over_two_workers_prints_every_seed_in_order(mnist_dir, tmp_path):
    """Three seeds of three activations over two workers: seed 1's models are split between
    them, and its lines still come whole and in their place."""
    from typer.testing import CliRunner

    from actbench.cli import app

    args = ["run", "-a", "relu,tanh,leaky", "--seeds", "3", "--workers", "2", "--epochs", "2",
            "--hidden", "8", "--batch-size", "64", "--data-dir", str(mnist_dir),
            "--results-dir", str(tmp_path / "results")]  # fmt: skip
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "results").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["workers"] == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("seed ")]
    assert [ln.split(" (")[0] for ln in lines] == [
        f"seed {s} epoch {e}/2" for s in (0, 1, 2) for e in (1, 2)
    ]
    for line in lines:
        accuracies = line.split(")  ", 1)[1]  # after 'seed 0 epoch 1/2 (0.1 s)'
        assert [part.split(" ")[0] for part in accuracies.split("  ")] == ["relu", "tanh", "leaky"]


def _epoch_rows(labels, seed=0, epoch=10):
    """One epoch's rows, each model with its own accuracy (so each number can be found)."""
    return [EpochResult(label, seed, epoch, 0.5, 0.8, 0.6, 0.9012 + 0.0111 * i, 5.6, "ok")
            for i, label in enumerate(labels)]  # fmt: skip


WIDE_LABELS = [
    ["relu", "sigmoid", "tanh", "leaky", "gelu"],
    ["relu", "sin", "my_mod:MyLongActivationName", "gelu", "tanh"],
    ["a_package.with_many.sub_modules.and_more:AnActivationWithAVeryLongClassNameIndeed", "relu"],
]


@pytest.mark.parametrize("labels", WIDE_LABELS, ids=["five", "custom", "longer-than-a-line"])
@pytest.mark.parametrize(("seeded", "epochs"), [(False, 10), (True, 10), (True, 1000)])
def test_an_epoch_line_fits_80_columns_with_every_number_whole(labels, seeded, epochs):
    rows = _epoch_rows(labels, seed=3, epoch=epochs)
    text = epoch_line(rows, epochs, seeded)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 80, text
    assert lines[0].startswith(f"{'seed 3 ' if seeded else ''}epoch {epochs}/{epochs} (5.6 s)")
    # every model's number appears whole, after its label (only a label longer than a line
    # is broken, at its punctuation), in the order of the rows
    flat = " ".join(line.strip() for line in lines)
    positions = []
    for row in rows:
        number = f"{100 * row.test_accuracy:.2f}%"
        assert f"{number}" in flat and number.count(".") == 1
        if cell_len(row.activation) < 60:
            assert f"{row.activation} {number}" in flat, (row.activation, text)
        else:
            assert all(part.strip() in text for part in Label(row.activation).parts())
        positions.append(flat.index(number))
    assert positions == sorted(positions)
    assert "…" not in text


def test_the_classic_four_take_one_line_an_epoch():
    text = epoch_line(_epoch_rows(["relu", "sigmoid", "tanh", "leaky"]), 10, False)
    assert "\n" not in text and cell_len(text) <= 80, text
    assert epoch_line(_epoch_rows(["relu", "tanh"]), 10, False) == (
        "epoch 10/10 (5.6 s)  relu 90.12%  tanh 91.23%"
    )


def test_a_diverged_model_says_so_in_its_epoch_line():
    rows = _epoch_rows(["relu", "tanh"])
    rows[1] = EpochResult("tanh", 0, 10, math.nan, 0.1, math.nan, 0.098, 5.6, "diverged")
    assert epoch_line(rows, 10, False).endswith("tanh 9.80% (diverged)")


@pytest.mark.parametrize(
    "activations",
    ["relu,sigmoid,tanh,leaky,gelu", "relu,sin=torch:sin,my_mod:MyLongActivationName,gelu,tanh"],
)
def test_a_run_prints_epoch_lines_within_80_columns(mnist_dir, tmp_path, monkeypatch, activations):
    from typer.testing import CliRunner

    from actbench.cli import app

    (tmp_path / "my_mod.py").write_text(
        "from torch import nn\n\n\nclass MyLongActivationName(nn.Module):\n"
        "    def forward(self, x):\n        return x.clamp(min=0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["run", "-a", activations, "--seeds", "2", "--epochs", "2", "--hidden", "8",
            "--workers", "1", "--data-dir", str(mnist_dir),
            "--results-dir", str(tmp_path / "results")]  # fmt: skip
    result = CliRunner().invoke(app, args, terminal_width=200)  # a wide terminal: 80 all the same
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Run folder: ") and lines[1] == EPOCH_HEADING
    assert len(lines) > 2 + 4  # two seeds, two epochs
    assert max(cell_len(line) for line in lines[1:]) <= 80, result.stderr
    frame = pd.read_csv(next((tmp_path / "results").iterdir()) / "metrics.csv")
    flat = " ".join(line.strip() for line in lines)
    for row in frame.itertuples():
        assert f"{row.activation} {100 * row.test_accuracy:.2f}%" in flat, row


# a message with numbers, a path longer than a line, and markup-like brackets
MESSAGE = (
    "Error: cannot resume /tmp/results/run-20261201-040908 with different settings: --lr 0.01 "
    "(the run used 0.001); --subset 12345 (the run used the full data set); see "
    "/a/very/long/folder/name/that/is/longer/than/forty/columns/metrics.csv and 'actbench[ray]'"
)


def _terminal(width, terminal):
    from io import StringIO

    from actbench.terminal import Terminal

    file = StringIO()
    return Terminal(file=file, width=width, force_terminal=terminal, color_system=None), file


@pytest.mark.parametrize("width", [40, 80])
def test_a_message_on_a_terminal_breaks_at_spaces_never_inside_a_word(width):
    console, file = _terminal(width, terminal=True)
    console.print(MESSAGE, soft_wrap=True, markup=False)
    lines = file.getvalue().splitlines()
    assert len(lines) > 1
    assert [word for line in lines for word in line.split(" ")] == MESSAGE.split(" ")
    for line in lines:  # only a word wider than the line stands alone, whole
        assert cell_len(line) <= width or " " not in line, line


def test_a_message_in_a_file_stays_one_line():
    console, file = _terminal(40, terminal=False)
    console.print(MESSAGE, soft_wrap=True, markup=False)
    assert file.getvalue() == MESSAGE + "\n"


def test_an_indented_message_keeps_its_indent_and_its_styles():
    console, file = _terminal(24, terminal=True)
    console.print("   7. depth=2 hidden=64 [bold]lr=0.01[/] and more", soft_wrap=True)
    assert file.getvalue().splitlines() == ["   7. depth=2 hidden=64", "   lr=0.01 and more"]


@given(
    st.lists(st.text(alphabet="ab1.-/é", min_size=1, max_size=30), min_size=0, max_size=30),
    st.lists(st.integers(1, 3), min_size=30, max_size=30),
    st.integers(1, 50),
)
def test_line_breaks_keep_every_word_whole_and_fill_each_line(words, gaps, width):
    from actbench.terminal import line_breaks

    line = "".join(word + " " * gap for word, gap in zip(words, gaps, strict=False)).rstrip()
    breaks = line_breaks(line, width)
    parts = [line[a:b] for a, b in breaks]
    assert [w for part in parts for w in part.split()] == words
    for part in parts:
        assert cell_len(part) <= width or " " not in part, part  # only a long word is wider
    for (start, _), (after, _) in itertools.pairwise(breaks):
        next_word = line[after:].split(" ")[0]
        assert cell_len(line[start : after + len(next_word)]) > width  # it did not fit


def test_an_error_on_a_terminal_breaks_at_spaces(tmp_path):
    """The command line, its stderr a terminal 40 columns wide: the one-line error wraps at
    its spaces, and every number in it stays whole."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "40", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "actbench", "run", "--subset", "100", "--batch-size",
               "70000", "--results-dir", str(tmp_path / "r")]  # fmt: skip
    proc = subprocess.run(command, stderr=follower, stdout=subprocess.DEVNULL, env=env,
                          check=False, timeout=120)  # fmt: skip
    os.close(follower)
    text = os.read(leader, 65536).decode()
    os.close(leader)
    assert proc.returncode == 2
    lines = text.replace("\r", "").splitlines()
    assert lines[0].startswith("Error: ") and len(lines) > 1
    assert max(cell_len(line) for line in lines) <= 40, text
    assert " ".join(lines) == (  # broken only at spaces: every word and number whole
        "Error: --subset 100 is smaller than one batch (--batch-size 70000); use --batch-size "
        "100 or less"
    )
    assert not (tmp_path / "r").exists()
