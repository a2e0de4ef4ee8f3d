"""What each activation costs: a calibrated micro-benchmark at a run's own shapes.

One *step* is the activation's share of a training step of the run's network: forward and
backward (autograd) through every hidden layer's activation module (two in the classic
784-H-H-10 network), each on a (batch, hidden) input. Its time is measured with
`torch.utils.benchmark.Timer` (which synchronises the device at each reading on a GPU), after
warm-up steps that are run and discarded; the activations are measured in interleaved rounds
whose order changes from round to round and never depends on the order they were listed in.
Its memory is what autograd keeps for the backward pass, read with
`torch.autograd.graph.saved_tensors_hooks`.

A run measures this once training has finished and keeps it in its folder as `cost.csv`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from actbench.activations import Activation, resolve_all
from actbench.errors import ActbenchError

# pandas and scipy are imported where they are used: measuring (in a Ray worker, say) needs
# torch alone
if TYPE_CHECKING:
    import pandas as pd
    from torch.utils.benchmark import Timer

    from actbench.config import RunConfig

COST = "cost.csv"
LAYERS = 2  # hidden layers of the classic network, each with its own activation module
WARMUP_STEPS = 10  # steps per activation run and discarded before anything is timed
ROUNDS = 20  # at least this many rounds (rounded up to whole periods of the order design)
MIN_BLOCK_SECONDS = 0.005  # each measurement times enough steps to last at least this long
MAX_STEPS_TIMED = 2**20  # the calibration stops doubling here, whatever the clock says
LEVEL = 0.95  # confidence level of the interval of the median
METHOD = (
    "median of the rounds with its distribution-free 95% confidence interval from order "
    "statistics (scipy.stats.quantile_test)"
)


@dataclass(frozen=True)
class CostRecord:
    """One measurement: one activation in one round. A row of `cost.csv`."""

    activation: str
    round: int  # 1, 2, ...
    position: int  # where in its round it was measured: 0 first
    steps_timed: int  # steps timed together in this measurement (the calibrated block)
    step_seconds: float  # seconds per step: forward + backward through every hidden layer
    batch_size: int  # rows of each layer's input
    hidden: int  # columns of each layer's input (the hidden width)
    layers: int  # hidden layers, each with its own activation module (the run's depth)
    device: str
    threads: int  # CPU threads torch used while measuring
    warmup_steps: int  # steps run and discarded before the calibration
    saved_bytes: int  # bytes autograd keeps for the backward pass of every layer
    extra_saved_bytes: int  # of those, bytes that are not the activation's own output


COLUMNS = [f.name for f in fields(CostRecord)]
# The columns of files written before `layers` was recorded: all measured two layers.
_BEFORE_LAYERS = [c for c in COLUMNS if c != "layers"]


def round_orders(labels: Sequence[str], rounds: int = ROUNDS) -> list[list[str]]:
    """The order in which each round measures the activations: a Williams design.

    The labels are sorted first, so the orders do not depend on the order they were given in.
    Row r of the design is the base sequence 0, 1, n-1, 2, n-2, ... shifted by r (mod n); for
    an odd n above 1 the mirrored rows follow. Over one period (n rows; 2n for odd n) every
    activation takes every position equally often and follows every other equally often
    (Williams 1949, "Experimental designs balanced for the estimation of residual effects of
    treatments").
    `rounds` is rounded up to whole periods. Raises ValueError for repeated labels.
    """
    names = sorted(labels)
    if len(set(names)) != len(names):
        raise ValueError(f"labels must be unique: {names}")
    if not names or rounds < 1:
        return []
    n = len(names)
    base = [0]
    for i in range(1, n):
        base.append((i + 1) // 2 if i % 2 else n - i // 2)
    rows = [[(b + r) % n for b in base] for r in range(n)]
    if n % 2 and n > 1:
        rows += [row[::-1] for row in rows]
    periods = math.ceil(rounds / len(rows))
    return [[names[i] for i in row] for _ in range(periods) for row in rows]


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class _Bench:
    """One activation at the run's shapes: a fresh module per layer and their fixed inputs."""

    modules: list[nn.Module]
    inputs: list[torch.Tensor]
    upstream: torch.Tensor  # the fixed gradient arriving at each output

    @classmethod
    def build(
        cls,
        activation: Activation,
        batch_size: int,
        hidden: int,
        device: torch.device,
        layers: int = LAYERS,
    ) -> _Bench:
        generator = torch.Generator().manual_seed(0)  # the same inputs for every activation
        inputs = [
            torch.randn(batch_size, hidden, generator=generator).to(device).requires_grad_()
            for _ in range(layers)
        ]
        upstream = torch.randn(batch_size, hidden, generator=generator).to(device)
        modules = [activation().to(device) for _ in range(layers)]
        return cls(modules, inputs, upstream)

    def params(self) -> list[torch.Tensor]:
        return [p for m in self.modules for p in m.parameters() if p.requires_grad]

    def step(self) -> None:
        """Forward through every layer, then the gradients at their inputs and parameters."""
        outputs = [m(x) for m, x in zip(self.modules, self.inputs, strict=True)]
        live = [y for y in outputs if y.requires_grad]
        if live:  # an output that does not depend on its input has no backward pass
            torch.autograd.grad(
                live,
                [*self.inputs, *self.params()],
                [self.upstream] * len(live),
                allow_unused=True,
            )

    def saved_bytes(self) -> tuple[int, int]:
        """Bytes autograd keeps for the backward pass of every layer, and those not the output.

        Each storage counts once however many tensors share it; the layer's input counts when
        the activation saves it; its own parameters do not (the model holds them anyway).
        """
        own = {p.untyped_storage().data_ptr() for p in self.params()}
        saved: dict[int, int] = {}
        kept: list[torch.Tensor] = []  # so that no storage is freed and its address reused

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in own:
                saved[storage.data_ptr()] = storage.nbytes()
                kept.append(tensor)
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            outputs = [m(x) for m, x in zip(self.modules, self.inputs, strict=True)]
        produced = {y.untyped_storage().data_ptr() for y in outputs}
        total = sum(saved.values())
        extra = sum(size for ptr, size in saved.items() if ptr not in produced)
        return total, extra


def measure_cost(
    activations: Sequence[Activation],
    batch_size: int,
    hidden: int,
    device: torch.device | str = "cpu",
    *,
    rounds: int = ROUNDS,
    warmup: int = WARMUP_STEPS,
    min_block: float = MIN_BLOCK_SECONDS,
    threads: int = 1,
    timer: Callable[[], float] | None = None,
    layers: int = LAYERS,
) -> list[CostRecord]:
    """Time one step (forward + backward through `layers` hidden layers) of each activation.

    Every activation gets `layers` fresh modules (one per hidden layer) and fixed (batch_size,
    hidden) inputs. In order: `warmup` steps of each, run and discarded; a calibration that
    doubles the steps timed together until one measurement lasts at least `min_block` seconds;
    then `round_orders(labels, rounds)`: in each round every activation is measured once, with
    `torch.utils.benchmark.Timer.timeit` (whose own warm-up calls are discarded too), in an
    order that changes from round to round and does not depend on the order of `activations`.
    Everything runs with `threads` CPU threads. `timer` replaces the Timer's clock (seconds).
    By default: on the CPU with one thread, the thread's own CPU time (`time.thread_time`), so
    that time other programs hold the cores does not count (their effect on caches and clock
    speed still does); elsewhere `torch.utils.
    benchmark`'s wall clock, which synchronises the device at each reading.

    Returns one record per activation per round, round by round. Raises ValueError for
    repeated labels or counts below 1.
    """
    if min(rounds, warmup, threads, batch_size, hidden, layers) < 1:
        raise ValueError(
            "rounds, warmup, threads, batch_size, hidden and layers must be at least 1"
        )
    device = torch.device(device)
    by_label = {a.label: a for a in activations}
    orders = round_orders([a.label for a in activations], rounds)
    labels = sorted(by_label)
    if timer is None and device.type == "cpu" and threads == 1:
        timer = time.thread_time  # all the work runs on this thread
    clock = {} if timer is None else {"timer": timer}
    records = []
    with _threads(threads):
        benches = {
            label: _Bench.build(by_label[label], batch_size, hidden, device, layers)
            for label in labels
        }
        memory = {label: benches[label].saved_bytes() for label in labels}
        timer_class = _timer_class()
        timers = {
            label: timer_class(
                "step()", globals={"step": benches[label].step}, num_threads=threads, **clock
            )
            for label in labels
        }
        for label in labels:
            for _ in range(warmup):
                benches[label].step()
        steps = {label: _calibrate(timers[label], min_block) for label in labels}
        for number, order in enumerate(orders, start=1):
            for position, label in enumerate(order):
                block = timers[label].timeit(steps[label]).raw_times[0]
                records.append(
                    CostRecord(label, number, position, steps[label], block / steps[label],
                               batch_size, hidden, layers, str(device), threads, warmup,
                               *memory[label])
                )  # fmt: skip
    return records


def _timer_class() -> type[Timer]:
    """`torch.utils.benchmark.Timer`, imported when first needed.

    Importing it imports torch's C++-extension helpers, which on a CUDA build of torch without
    a CUDA runtime (a default install on a machine with no GPU) log a warning about CUDA_HOME
    that has nothing to do with the measurement: it is kept off the user's terminal.
    """
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        logger.setLevel(level)
    return Timer


def _calibrate(timer: Timer, min_block: float) -> int:
    """The fewest steps, doubling from 1, whose measurement lasts at least `min_block` seconds."""
    number = 1
    while number < MAX_STEPS_TIMED and timer.timeit(number).raw_times[0] < min_block:
        number *= 2
    return number


def summarize_cost(cost: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """One row per activation (per run and activation where `cost` has a `run` column).

    `seconds` is the median of its rounds' `step_seconds`; `low` and `high` bound its
    distribution-free confidence interval from order statistics (scipy.stats.quantile_test,
    after Conover, "Practical Nonparametric Statistics", 1999), NaN with too few rounds
    (fewer than 6 at 95%). The shapes, device, threads and saved bytes come along.
    """
    import pandas as pd
    from scipy import stats

    keys = ["run", "activation"] if "run" in cost.columns else ["activation"]
    columns = [*keys, "seconds", "low", "high", "rounds", "steps_timed", "batch_size", "hidden",
               "layers", "device", "threads", "warmup_steps", "saved_bytes",
               "extra_saved_bytes"]  # fmt: skip
    rows = []
    for key, group in cost.groupby(keys, sort=False):
        values = group["step_seconds"].to_numpy(dtype=float)
        median = float(pd.Series(values).median())
        interval = stats.quantile_test(values, q=median, p=0.5).confidence_interval(level)
        first = group.iloc[0]
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "seconds": median,
                "low": float(interval.low),
                "high": float(interval.high),
                "rounds": len(values),
                **{c: first[c] for c in columns[len(keys) + 4 :]},
            }
        )
    return pd.DataFrame(rows, columns=columns)


def write_cost(run_dir: Path, records: Sequence[CostRecord]) -> Path:
    """Write `cost.csv` into `run_dir` atomically; raises ActbenchError if the disk refuses."""
    import pandas as pd

    from actbench.results import write_or_explain

    frame = pd.DataFrame([asdict(r) for r in records], columns=COLUMNS)
    path = run_dir / COST
    write_or_explain(path, frame.to_csv(index=False), "free some space or fix the permissions")
    return path


_TYPES: dict[str, Any] = {"activation": str, "device": str, "step_seconds": "float64"}


def read_cost(run_dir: Path) -> pd.DataFrame:
    """The run's `cost.csv` (empty, with the columns, where the run has none).

    A file written before the `layers` column was recorded measured two layers: it reads with
    `layers` 2. Raises ActbenchError for a file without exactly the expected columns (or those
    of such a file) or with bad values.
    """
    import pandas as pd

    path = Path(run_dir) / COST
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
        if header not in (COLUMNS, _BEFORE_LAYERS):
            raise ActbenchError(
                f"{path} has columns {header}, not {COLUMNS}; it was not written by this "
                "actbench version, remove it"
            )
        types = {c: _TYPES.get(c, "int64") for c in header}
        frame = pd.read_csv(path, dtype=types, keep_default_na=False)
        if "layers" not in frame.columns:
            frame.insert(COLUMNS.index("layers"), "layers", LAYERS)
        return frame
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())[:100]
        raise ActbenchError(f"{path} is not a readable cost CSV ({reason}); remove it") from None


def read_costs(root: Path | str) -> pd.DataFrame:
    """Every `cost.csv` under `root` (itself a run, or a folder of runs), with a `run` column.

    `run` is named as `actbench.results.load_runs` names it, so the two frames join on it.
    """
    import pandas as pd

    root = Path(root)
    frames = []
    for path in sorted(root.rglob(COST)):
        frame = read_cost(path.parent)
        run_dir = path.parent
        frame.insert(0, "run", str(run_dir.relative_to(root)) if run_dir != root else root.name)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", *COLUMNS])
    return pd.concat(frames, ignore_index=True)


def measure_run_cost(run_dir: Path, config: RunConfig) -> None:
    """Measure the cost of a finished run's activations into its folder, unless it has it.

    On the run's device, with one CPU thread (as each training worker has), at its batch
    size, hidden width and depth.
    """
    if (run_dir / COST).exists():
        return
    write_cost(run_dir, measure_config_cost(config))


def measure_config_cost(config: RunConfig, device: torch.device | None = None) -> list[CostRecord]:
    """`measure_cost` of `config`'s activations as a finished run measures them: on its
    device (`device`, or where None the one `config.device` picks on this machine), with one
    CPU thread, at its batch size, hidden width and depth."""
    from actbench.runtime import choose_device

    activations = resolve_all(config.activations)
    device = choose_device(config.device) if device is None else device
    return measure_cost(activations, config.batch_size, config.hidden, device, layers=config.depth)


def microseconds(seconds: float, low: float = math.nan, high: float = math.nan) -> str:
    """'195 (175-206)': a time in µs with its interval, to about three significant figures."""

    def show(value: float) -> str:
        us = 1e6 * value
        return f"{us:.0f}" if us >= 100 else f"{us:.1f}" if us >= 10 else f"{us:.2f}"

    if math.isnan(low) or math.isnan(high):
        return show(seconds)
    return f"{show(seconds)} ({show(low)}–{show(high)})"


def kibibytes(size: float) -> str:
    """Bytes as KiB: '64', '0.09'."""
    kib = size / 1024
    return f"{kib:.0f}" if kib >= 10 or kib == 0 else f"{kib:.2g}"


def where(summary: pd.DataFrame) -> str:
    """The shapes, device, threads and rounds the rows of `summarize_cost(...)` were measured at."""
    keys = ["batch_size", "hidden", "layers", "device", "threads", "rounds"]
    settings = summary.drop_duplicates(keys)
    return "; ".join(
        f"batch {s.batch_size} × {s.hidden} units"
        f"{'' if s.layers == LAYERS else f' in {s.layers} hidden layers'} on {s.device} with "
        f"{s.threads} thread{'' if s.threads == 1 else 's'}, {s.rounds} rounds"
        for s in settings.itertuples(index=False)
    )


def describe(summary: pd.DataFrame) -> str:
    """What the rows of `summarize_cost(...)` measured, in one sentence per setting used."""
    where_ = where(summary)
    through = "both hidden layers" if set(summary["layers"]) <= {LAYERS} else "every hidden layer"
    return (
        "one training step's activation work, forward + backward (autograd) through "
        f"{through} ({where_}); median and 95% interval over rounds that interleave the "
        "activations, timed with torch.utils.benchmark after warm-up (on a CPU with one "
        "thread, as that thread's CPU time, which other programs inflate less than wall time; "
        "on a busy machine rerun it when quiet)"
    )
