"""The activation cost micro-benchmark, checked with a stand-in clock: never with real timings.

The stand-in activations move the clock forward by a known amount at every call, so every
time the benchmark reports is known exactly in advance (the costs are powers of two: their
sums are exact in floating point).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import asdict

import pandas as pd
import pytest
import torch
from matplotlib.image import imread
from rich.console import Console
from scipy import stats
from torch import nn

from actbench.activations import Activation, Lambda, resolve_all
from actbench.config import make_config
from actbench.cost import (
    COLUMNS,
    COST,
    measure_cost,
    read_cost,
    read_costs,
    round_orders,
    summarize_cost,
    where,
    write_cost,
)
from actbench.errors import ActbenchError
from actbench.experiment import Hooks, resume_experiment, run_experiment
from actbench.plots import cost_summary, plot_cost
from actbench.report import selection_costs, write_report
from actbench.results import RunWriter, find_runs, load_runs
from actbench.selection import select_models
from actbench.tables import cost_table
from actbench.train import EpochResult

TICK = 2.0**-12  # seconds: one unit of stand-in cost
BLOCK = 2.0**-8  # the shortest measurement asked for: 16 ticks


class Clock:
    """A stand-in for the Timer's clock: it moves only when a stand-in activation runs."""

    def __init__(self, start_penalty: float = 0.0, start_calls: int = 0) -> None:
        self.now = 1.0
        self.calls: list[str] = []  # which activation ran, call by call
        self.start_penalty, self.start_calls = start_penalty, start_calls

    def __call__(self) -> float:
        return self.now

    def charge(self, label: str, seconds: float) -> None:
        if len(self.calls) < self.start_calls:  # the first calls of all pay a start-up cost
            seconds += self.start_penalty
        self.calls.append(label)
        self.now += seconds


class Charged(nn.Module):
    """Doubles its input, costing `ticks` per call (plus `warm` more on its first calls)."""

    def __init__(self, clock: Clock, label: str, ticks: int, warm: float, first: int, count):
        super().__init__()
        self.clock, self.label, self.ticks = clock, label, ticks
        self.warm, self.first, self.count = warm, first, count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = next(self.count)  # shared by the activation's two modules (its two layers)
        self.clock.charge(self.label, self.ticks * TICK + (self.warm if n < self.first else 0))
        return x * 2


def charged(clock: Clock, label: str, ticks: int, warm: float = 0.0, first: int = 0):
    count = itertools.count()
    return Activation(label, lambda: Charged(clock, label, ticks, warm, first, count))


COSTS = {"a": 1, "b": 3, "c": 5}  # ticks per layer call: a step (two layers) costs twice that
STEPS = {"a": 8, "b": 4, "c": 2}  # steps timed together: the first power of 2 reaching BLOCK


def measure(clock: Clock, labels, warm: float = 0.0, first: int = 0, **options):
    activations = [charged(clock, label, COSTS[label], warm, first) for label in labels]
    options = {"rounds": 6, "warmup": 5, "min_block": BLOCK, "timer": clock, **options}
    return measure_cost(activations, 4, 3, **options)


def test_every_measurement_reports_the_steady_cost_per_step():
    records = measure(Clock(), "abc")
    assert len(records) == 6 * 3
    for record in records:
        assert record.step_seconds == 2 * COSTS[record.activation] * TICK  # exact
        assert record.steps_timed == STEPS[record.activation]
        assert (record.batch_size, record.hidden, record.device) == (4, 3, "cpu")
        assert (record.threads, record.warmup_steps) == (1, 5)


def test_warm_up_steps_are_run_and_discarded():
    # every activation's first 10 steps (and the 2 calls that read its memory) cost a second
    # more: the warm-up of 5 steps per layer pair (10 calls) and the memory probe absorb them
    clock = Clock()
    records = measure(clock, "abc", warm=1.0, first=2 + 2 * 5)
    assert [r.step_seconds for r in records] == [2 * COSTS[r.activation] * TICK for r in records]
    assert [r.steps_timed for r in records] == [STEPS[r.activation] for r in records]
    # with too few warm-up steps, slow steps would be timed: the check above can fail
    leaked = measure(Clock(), "abc", warm=1.0, first=2 + 2 * 5, warmup=1)
    assert any(r.steps_timed != STEPS[r.activation] for r in leaked)


def test_rounds_interleave_the_activations_in_the_order_they_report():
    clock = Clock()
    records = measure(clock, "abc", rounds=6)
    by_round = {}
    for r in records:
        by_round.setdefault(r.round, []).append((r.position, r.activation))
    orders = [[label for _, label in sorted(by_round[k])] for k in sorted(by_round)]
    assert all(sorted(order) == ["a", "b", "c"] for order in orders)  # each once per round
    firsts = Counter(order[0] for order in orders)
    assert firsts == {"a": 2, "b": 2, "c": 2}  # no activation is always first
    # the calls really ran in that order: the last segments of the call log are the rounds
    segments = [label for label, _ in itertools.groupby(clock.calls)]
    measured = [label for label, _ in itertools.groupby(itertools.chain(*orders))]
    assert segments[-len(measured) :] == measured


@pytest.mark.parametrize("listed", ["cab", "bca", "acb"])
def test_the_result_does_not_depend_on_the_listed_order(listed):
    # the first 12 calls of the whole measurement cost a second more (a process's first
    # steps); whichever activation is listed first, nobody is charged for it
    reference = measure(Clock(start_penalty=1.0, start_calls=12), "abc")
    permuted = measure(Clock(start_penalty=1.0, start_calls=12), listed)
    assert [asdict(r) for r in permuted] == [asdict(r) for r in reference]
    assert all(r.step_seconds == 2 * COSTS[r.activation] * TICK for r in permuted)


def test_round_orders_are_a_balanced_williams_design():
    for n in range(1, 8):
        labels = [f"act{i}" for i in range(n)]
        rows = round_orders(labels, 1)
        assert len(rows) == (2 * n if n % 2 and n > 1 else n)  # one period
        positions = Counter((row.index(label), label) for row in rows for label in row)
        assert len(positions) == n * n and len(set(positions.values())) == 1
        pairs = Counter((row[i], row[i + 1]) for row in rows for i in range(n - 1))
        assert len(pairs) == n * (n - 1) and len(set(pairs.values())) <= 1
        assert round_orders(labels[::-1], 1) == rows  # the listed order plays no part
    assert len(round_orders(["x", "y", "z", "w"], 5)) == 8  # whole periods only
    with pytest.raises(ValueError, match="unique"):
        round_orders(["relu", "relu"], 4)


def test_saved_memory_matches_what_each_function_keeps_for_its_backward_pass():
    # PyTorch's derivatives: relu, sigmoid and softmax keep their output; leaky_relu, gelu and
    # x * x keep their input (x * x keeps it twice: one storage); prelu keeps its input and its
    # weight (a parameter, not counted); identity keeps nothing. One (4, 3) float32 tensor is
    # 48 bytes; two layers: 96.
    square = Activation("square", lambda: Lambda(lambda x: x * x))
    activations = [*resolve_all(["relu", "sigmoid", "softmax", "leaky", "gelu", "prelu",
                                 "identity"]), square]  # fmt: skip
    expected = {"relu": (96, 0), "sigmoid": (96, 0), "softmax": (96, 0), "leaky": (96, 96),
                "gelu": (96, 96), "prelu": (96, 96), "identity": (0, 0), "square": (96, 96)}  # fmt: skip
    clock = Clock()  # it never moves, and no minimum block is asked for: one step per block
    records = measure_cost(activations, 4, 3, rounds=1, warmup=1, min_block=0.0, timer=clock)
    found = {r.activation: (r.saved_bytes, r.extra_saved_bytes) for r in records}
    assert found == expected


def test_a_deeper_network_times_and_keeps_every_hidden_layer():
    """At depth 3 a step runs three layers: three times one layer's stand-in cost, and the
    memory of three layers (48 bytes each for relu)."""
    records = measure(Clock(), "a", layers=3)
    assert {(r.layers, r.step_seconds) for r in records} == {(3, 3 * COSTS["a"] * TICK)}
    (relu,) = measure_cost(resolve_all(["relu"]), 4, 3, rounds=1, warmup=1, min_block=0.0,
                           timer=Clock(), layers=3)  # fmt: skip
    assert (relu.saved_bytes, relu.layers) == (3 * 48, 3)
    assert "in 3 hidden layers" in where(summarize_cost(pd.DataFrame([asdict(relu)])))
    assert "hidden layers" not in where(summarize_cost(pd.DataFrame([asdict(r) for r in
                                                                     measure(Clock(), "a")])))  # fmt: skip


def test_a_cost_csv_written_before_layers_were_recorded_reads_as_two_layers(tmp_path):
    old = pd.DataFrame([_row("relu", 1, 1e-5)], columns=COLUMNS).drop(columns="layers")
    (tmp_path / COST).write_text(old.to_csv(index=False))
    cost = read_cost(tmp_path)
    assert cost.columns.tolist() == COLUMNS and cost["layers"].tolist() == [2]


def test_the_median_and_its_interval_come_from_order_statistics():
    values = [float(v) for v in range(20, 0, -1)]  # 1..20 in reverse
    cost = pd.DataFrame([_row("relu", i + 1, v) for i, v in enumerate(values)], columns=COLUMNS)
    (summary,) = summarize_cost(cost).itertuples(index=False)
    assert summary.seconds == 10.5 and summary.rounds == 20
    # the distribution-free interval of a median: order statistics x(k) and x(n + 1 - k), the
    # largest k with P(Binomial(n, 1/2) < k) <= 2.5%
    k = max(k for k in range(1, 11) if stats.binom.cdf(k - 1, 20, 0.5) <= 0.025)
    assert (summary.low, summary.high) == (float(k), float(21 - k)) == (6.0, 15.0)
    few = summarize_cost(cost.head(5))  # five rounds give no 95% interval
    assert math.isnan(few["low"].iloc[0]) and math.isnan(few["high"].iloc[0])


def _row(activation, round_, seconds, saved=65536, extra=0):
    return [activation, round_, 0, 8, seconds, 64, 128, 2, "cpu", 1, 10, saved, extra]


def _write_run(folder, activations=("relu", "leaky"), cost=True):
    """A hand-made run: metrics and, if asked, a cost file with 20 rounds per activation."""
    folder.mkdir(parents=True)
    writer = RunWriter(folder, list(activations), {"config": {"lr": 0.001}})
    writer.add([EpochResult(a, 0, 1, 0.5, 0.8, 0.6, 0.75, 0.1) for a in activations])
    if cost:
        records = [
            _row(a, r, (i + 1) * r * 1e-6, extra=i * 65536)
            for i, a in enumerate(activations)
            for r in range(1, 21)
        ]
        (folder / COST).write_text(pd.DataFrame(records, columns=COLUMNS).to_csv(index=False))


def test_cost_csv_is_written_and_read_back(tmp_path):
    records = measure(Clock(), "abc")
    path = write_cost(tmp_path, records)
    assert path == tmp_path / COST
    assert read_cost(tmp_path).to_dict("records") == [asdict(r) for r in records]
    assert not list(tmp_path.glob(".*.tmp"))
    assert read_cost(tmp_path / "nothing").empty  # a run without one


def test_a_foreign_cost_csv_is_refused(tmp_path):
    (tmp_path / COST).write_text("activation,seconds\nrelu,1\n")
    with pytest.raises(ActbenchError, match="remove it"):
        read_cost(tmp_path)
    (tmp_path / COST).write_text(",".join(COLUMNS) + "\nrelu,x,0,8,1,64,128,2,cpu,1,10,0,0\n")
    with pytest.raises(ActbenchError, match="not a readable cost CSV"):
        read_cost(tmp_path)


def test_read_costs_names_runs_as_load_runs_does(tmp_path):
    _write_run(tmp_path / "results" / "run-1")
    _write_run(tmp_path / "results" / "run-2", cost=False)
    runs = set(load_runs(tmp_path / "results")["run"])
    cost = read_costs(tmp_path / "results")
    assert set(cost["run"]) == {"run-1"} < runs
    assert len(cost) == 2 * 20
    assert read_costs(tmp_path / "results" / "run-1")["run"].unique().tolist() == ["run-1"]


def test_the_end_of_run_cost_table(tmp_path):
    _write_run(tmp_path / "run")
    frame = load_runs(tmp_path / "run")
    console = Console(record=True, width=200)
    console.print(cost_table(tmp_path / "run", frame))
    text = console.export_text()
    # relu's rounds take 1..20 µs, leaky's 2..40 µs: medians 10.5 and 21, intervals x(6)-x(15)
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["relu"] == ["relu", "10.5", "6.00–15.0", "64", "0"]
    assert lines["leaky"] == ["leaky", "21.0", "12.0–30.0", "64", "64"]
    assert "batch 64 × 128 units on cpu with 1 thread, 20 rounds" in " ".join(text.split())
    _write_run(tmp_path / "bare", cost=False)
    assert cost_table(tmp_path / "bare", load_runs(tmp_path / "bare")) is None


def test_the_report_and_the_chart_show_the_cost(tmp_path):
    _write_run(tmp_path / "results" / "run-1")
    _write_run(tmp_path / "results" / "run-2", activations=("tanh",), cost=False)
    selection = select_models(find_runs(tmp_path / "results"))
    frame, cost = selection.frame, selection_costs(selection)
    (chart,) = plot_cost(frame, cost, tmp_path / "plots")
    assert chart.name == "activation_cost.png" and imread(chart).std() > 0
    report = write_report(selection, [chart], tmp_path / "plots", cost=cost).read_text()
    assert "## Cost" in report and "scipy.stats.quantile_test" in report
    assert "| relu | cpu, 1 thread | 64 × 128 | 10.5 (6.00–15.0) | 20 | 64 | 0 |" in report
    assert "| leaky | cpu, 1 thread | 64 × 128 | 21.0 (12.0–30.0) | 20 | 64 | 64 |" in report
    assert "No cost measurement for run `run-2`" in report
    assert "No cost measurement for run `run-1`" not in report
    assert "f(x) ms" not in report
    assert plot_cost(frame, cost.iloc[:0], tmp_path / "plots") == []  # nothing measured


def test_cost_rows_take_the_line_labels_and_tell_runs_apart(tmp_path):
    for name in ("a", "b"):
        _write_run(tmp_path / "r" / name)
    frame, cost = load_runs(tmp_path / "r"), read_costs(tmp_path / "r")
    table = cost_summary(frame, cost)
    assert table["label"].tolist() == ["relu [a]", "relu [b]", "leaky [a]", "leaky [b]"]


def test_a_run_measures_its_cost_once_and_a_resumed_run_that_lacks_it_too(mnist_dir, tmp_path):
    def settings(epochs):
        return make_config({"activations": ["relu", "tanh"], "epochs": epochs, "hidden": 8,
                            "data_dir": str(mnist_dir), "results_dir": str(tmp_path),
                            "download": False, "workers": 1})  # fmt: skip

    run = run_experiment(settings(1))
    cost = read_cost(run.run_dir)
    assert sorted(cost["activation"].unique()) == ["relu", "tanh"]
    assert set(cost[["batch_size", "hidden", "threads"]].itertuples(index=False, name=None)) == {
        (64, 8, 1)
    }
    before = (run.run_dir / COST).read_bytes()
    resume_experiment(run.run_dir, {"epochs": 2})
    assert (run.run_dir / COST).read_bytes() == before  # kept, not measured again
    (run.run_dir / COST).unlink()
    resume_experiment(run.run_dir, {"epochs": 3})
    assert not read_cost(run.run_dir).empty


def test_an_interrupted_run_has_no_cost_file(mnist_dir, tmp_path):
    def stop(rows):
        raise KeyboardInterrupt

    config = make_config({"activations": ["relu"], "epochs": 2, "hidden": 8, "workers": 1,
                          "data_dir": str(mnist_dir), "results_dir": str(tmp_path / "results"),
                          "download": False})  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, Hooks(on_epoch=stop))
    (run_dir,) = (tmp_path / "results").iterdir()
    assert (run_dir / "metrics.csv").exists() and not (run_dir / COST).exists()


def test_on_one_cpu_thread_the_default_clock_is_the_threads_cpu_time(monkeypatch):
    """The time other programs hold the cores does not count: CPU time of the thread."""
    readings = itertools.count()
    monkeypatch.setattr("actbench.cost.time.thread_time", lambda: float(next(readings)))
    records = measure_cost(resolve_all(["relu"]), 4, 3, rounds=2, warmup=1)
    assert [r.step_seconds for r in records] == [1.0, 1.0]  # one tick of the stand-in per block
