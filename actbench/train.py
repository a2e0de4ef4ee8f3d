"""The training loop: every epoch a full training pass, then a test pass, for K models at once."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from actbench.activations import Activation
from actbench.config import RunConfig
from actbench.data import Tensors
from actbench.init import scheme_for
from actbench.lockstep import LockstepMLP
from actbench.model import MLP
from actbench.optim import SGD, Adam, make_optimizer
from actbench.signals import signals_held


@dataclass(frozen=True)
class EpochResult:
    """One row of results: one activation, one seed, one epoch.

    Unit health has a fixed field for each layer of the classic depth-2 network; a deeper
    network's further layers are in `deeper_health` ({"grad_layer4": ..., "dead_layer3": ...},
    every column of its depth, NaN where it does not apply), and `as_row` flattens them into
    columns of their own. A shallower network's missing layers are NaN.
    """

    activation: str
    seed: int
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    epoch_seconds: float
    status: str = "ok"  # "diverged": the loss became NaN or infinite in this epoch; it stops here
    # Unit health on a fixed probe batch after the epoch (NaN where it does not apply):
    grad_layer1: float = math.nan  # mean |gradient| of the loss at each layer's weights
    grad_layer2: float = math.nan
    grad_layer3: float = math.nan
    dead_layer1: float = math.nan  # share of hidden units with no positive output (ReLU-like)
    dead_layer2: float = math.nan
    saturated_layer1: float = math.nan  # share of units near a bound, per sample (bounded ones)
    saturated_layer2: float = math.nan
    # On the validation split, after the test pass (NaN without a split):
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    # Unit health of the layers beyond the fixed fields above (empty for depth 2 or less):
    deeper_health: dict[str, float] = field(default_factory=dict, hash=False)

    def as_row(self) -> dict[str, Any]:
        """The row as flat columns: every field, `deeper_health` spread into its own columns."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != DEEPER}
        row.update(self.deeper_health)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EpochResult:
        """The inverse of `as_row` (also reads a `deeper_health` mapping as it is).

        Columns this version does not know (written by earlier ones) are left out.
        """
        known = {f.name for f in fields(cls)} - {DEEPER}
        values = {key: value for key, value in row.items() if key in known}
        deeper = dict(row.get(DEEPER) or {})
        deeper.update({key: value for key, value in row.items() if is_deeper_health(key)})
        return cls(**values, deeper_health={key: float(value) for key, value in deeper.items()})


DEEPER = "deeper_health"
_HEALTH = re.compile(r"(grad|dead|saturated)_layer([1-9][0-9]*)")
_KINDS = ("grad", "dead", "saturated")


def health_columns(depth: int) -> list[str]:
    """Every unit-health column of a network with `depth` hidden layers, in CSV order.

    grad_layer1 to grad_layer{depth+1} (one per linear layer), then dead_layer1 to
    dead_layer{depth} and saturated_layer1 to saturated_layer{depth} (one per hidden layer).
    """
    return (
        [f"grad_layer{i}" for i in range(1, depth + 2)]
        + [f"dead_layer{i}" for i in range(1, depth + 1)]
        + [f"saturated_layer{i}" for i in range(1, depth + 1)]
    )


FIXED_HEALTH = tuple(health_columns(2))  # EpochResult's own health fields, the classic depth


def is_deeper_health(column: str) -> bool:
    """Whether `column` is a unit-health column beyond EpochResult's fixed fields."""
    return _HEALTH.fullmatch(column) is not None and column not in FIXED_HEALTH


def deeper_columns(columns: Iterable[str]) -> list[str]:
    """The deeper health columns among `columns`, once each, in CSV order (see `health_columns`).

    A table of rows of several depths gets the union: grad columns by layer, then dead, then
    saturated, each after the fixed columns.
    """
    found = {c for c in columns if is_deeper_health(c)}

    def order(column: str) -> tuple[int, int]:
        kind, layer = _HEALTH.fullmatch(column).groups()
        return _KINDS.index(kind), int(layer)

    return sorted(found, key=order)


@dataclass(frozen=True)
class ModelState:
    """Everything needed to continue one model's training exactly where it stopped."""

    activation: str
    seed: int
    epoch: int  # epochs finished
    diverged: bool
    model: dict[str, torch.Tensor]  # an `MLP` state dict
    optimizer: dict[str, list[torch.Tensor]]  # per-tensor state, laid out like `split_models`
    optimizer_steps: int
    order_rng: torch.Tensor  # the batch-order generator's state
    torch_rng: torch.Tensor  # torch's global CPU generator's state
    rows: tuple[EpochResult, ...]  # every row this model has produced, epoch 1 on

    def to_dict(self) -> dict[str, Any]:
        """Plain containers and tensors only, so it loads with `torch.load(weights_only=True)`.

        Rows are flat, as `EpochResult.as_row` gives them.
        """
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["rows"] = [row.as_row() for row in self.rows]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelState:
        values = dict(data)
        # rows of earlier versions may hold more columns: `from_row` leaves them out
        values["rows"] = tuple(EpochResult.from_row(row) for row in data["rows"])
        return cls(**values)


def build_models(
    activations: list[Activation],
    hidden: int,
    in_features: int,
    seed: int,
    *,
    classes: int = 10,
    depth: int = 2,
    init: str = "torch",
) -> list[MLP]:
    """One MLP per activation, each started from torch's global generator seeded with `seed`.

    `init` is one of `actbench.init.SCHEMES` or "auto" (each activation's recommended
    scheme). Every model draws from a freshly seeded stream, so models that share a scheme
    start from the same weights.
    """
    models = []
    for activation in activations:
        scheme = scheme_for(init, activation.recommended_init)
        torch.manual_seed(seed)
        models.append(
            MLP(activation, hidden, in_features, classes=classes, depth=depth, init=scheme)
        )
    return models


def data_shape(data: Tensors) -> tuple[int, int]:
    """The network's input size and class count for `data`: (features, classes).

    Features are the columns of `train_x`; classes the data set's own count where it says
    (`Tensors.classes`), else one more than the largest label in the training, test and
    validation labels (labels are 0 to classes - 1).
    """
    declared = getattr(data, "classes", None)
    if declared:
        return data.train_x.shape[1], int(declared)
    labels = [data.train_y, data.test_y, *([data.val_y] if data.val_y is not None else [])]
    return data.train_x.shape[1], 1 + max(int(y.max()) for y in labels if len(y))


def _scores(k: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Room for per-model, per-sample scores: log-probability of the true label, prediction."""
    return torch.empty(k, n, device=device), torch.empty(k, n, dtype=torch.long, device=device)


def _means(
    label_log_probs: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor
) -> tuple[list[float], list[float]]:
    """Every model's mean cross-entropy and accuracy from its per-sample scores, each (K, n).

    Sums are taken in float64 on the CPU (some devices have no float64), one model at a time,
    so a model's numbers do not depend on how many share the tensors.
    """
    n = labels.shape[0]
    correct = predictions == labels
    # each row copied on its own, so that it starts where a model trained alone would have it
    loss = [-row.cpu().double().sum().item() / n for row in label_log_probs]
    accuracy = [row.cpu().double().sum().item() / n for row in correct]
    return loss, accuracy


@torch.no_grad()
def evaluate(
    net: LockstepMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[list[float], list[float]]:
    """Mean loss and accuracy of every model on (x, y)."""
    net.eval()
    n = len(x)
    log_probs, predictions = _scores(net.k, n, x.device)
    for start in range(0, n, batch_size):
        end = min(start + batch_size, n)
        scores = (log_probs[:, start:end], predictions[:, start:end])
        net.test_scores(x[start:end], y[start:end], scores)
    return _means(log_probs, predictions, y)


PROBE_SIZE = 1000  # training samples (the first ones) on which unit health is measured
SATURATION_MARGIN = 0.05  # "near a bound": within this share of the output range


@torch.no_grad()
def unit_health(
    net: LockstepMLP, activations: list[Activation], x: torch.Tensor, y: torch.Tensor
) -> list[dict[str, float]]:
    """Gradient flow and dead or saturated units of every model, on the probe batch (x, y).

    One dict per model with every column of `health_columns(depth)`: grad_layer{i}, the mean
    |gradient| of the loss at linear layer i's weights; dead_layer{i}, the share of hidden
    layer i's units with no positive output on the probe (ReLU-like activations, else NaN);
    saturated_layer{i}, the share of its outputs within SATURATION_MARGIN of the range of a
    bounded activation's outputs (else NaN). The gradient is the one a training step on the
    probe would take, without taking it.
    """
    grads = net.per_model(net.train_step(x, y))
    hidden = net.hidden_layers(x)  # (K, B, H) each, first layer to last
    # each model's mean |gradient| from its own block, so it does not depend on the group
    weights = range(0, 2 * (len(hidden) + 1), 2)  # each linear layer's weight among its tensors
    stats = [torch.stack([own[i].abs().mean() for own in grads]) for i in weights]
    for h in hidden:
        stats.append((h.amax(1) <= 0).float().mean(1))  # dead: never positive on the probe
    for h in hidden:
        near = torch.zeros(h.shape[0], device=h.device)
        for k, activation in enumerate(activations):
            if activation.bounds is not None:
                low, high = activation.bounds
                margin = SATURATION_MARGIN * (high - low)
                near[k] = ((h[k] <= low + margin) | (h[k] >= high - margin)).float().mean()
        stats.append(near)
    # float32 on the device (some have no float64), one transfer
    values = torch.stack([t.float() for t in stats]).cpu().tolist()
    columns = health_columns(len(hidden))
    rows = []
    for k, activation in enumerate(activations):
        applies = {
            "grad": True,
            "dead": activation.dies,
            "saturated": activation.bounds is not None,
        }
        rows.append(
            {
                column: own[k] if applies[column.split("_")[0]] else math.nan
                for column, own in zip(columns, values, strict=True)
            }
        )
    return rows


def _health_fields(health: dict[str, float]) -> dict[str, Any]:
    """`unit_health`'s dict as EpochResult's arguments: fixed fields, the rest `deeper_health`."""
    fixed = {key: value for key, value in health.items() if key in FIXED_HEALTH}
    deeper = {key: value for key, value in health.items() if key not in FIXED_HEALTH}
    return {**fixed, DEEPER: deeper}


def _start(
    activations: list[Activation],
    config: RunConfig,
    shape: tuple[int, int],
    seed: int,
    device: torch.device,
    states: list[ModelState] | None,
) -> tuple[LockstepMLP, Adam | SGD]:
    """The stacked network and its optimiser: fresh from `seed`, or continuing `states`.

    `shape` is the data's (features, classes), as `data_shape` gives it.
    """
    in_features, classes = shape
    models = build_models(
        activations, config.hidden, in_features, seed,
        classes=classes, depth=config.depth, init=config.init,
    )  # fmt: skip
    if states:
        for model, state in zip(models, states, strict=True):
            model.load_state_dict(state.model)
    net = LockstepMLP(models).to(device)
    optimizer = make_optimizer(net.weights(), config)
    if states:
        keys = states[0].optimizer.keys()
        saved = {key: net.join_models([s.optimizer[key] for s in states]) for key in keys}
        optimizer.load(saved, states[0].optimizer_steps)
    return net, optimizer


def _snapshot(
    net: LockstepMLP,
    optimizer: Adam | SGD,
    order: torch.Generator,
    history: list[list[EpochResult]],
    diverged: list[bool],
) -> list[ModelState]:
    buffers = {key: net.split_models(tensors) for key, tensors in optimizer.buffers().items()}
    return [
        ModelState(
            activation=rows[-1].activation,
            seed=rows[-1].seed,
            epoch=rows[-1].epoch,
            diverged=diverged[k],
            model={name: t.cpu() for name, t in net.model_state(k).items()},
            optimizer={key: [t.cpu() for t in per[k]] for key, per in buffers.items()},
            optimizer_steps=optimizer.step_count,
            order_rng=order.get_state(),
            torch_rng=torch.get_rng_state(),
            rows=tuple(rows),
        )
        for k, rows in enumerate(history)
    ]


def train_lockstep(
    activations: list[Activation],
    data: Tensors,
    config: RunConfig,
    seed: int,
    on_epoch: Callable[[list[EpochResult]], None] | None = None,
    on_steps: Callable[[int], None] | None = None,
    start: list[ModelState] | None = None,
    on_checkpoint: Callable[[list[ModelState]], None] | None = None,
) -> LockstepMLP | None:
    """Train one model per activation side by side up to epoch `config.epochs`.

    Every model starts from the weights `seed` gives (`build_models`, with the depth and
    initialisation of `config`, the input size and class count of `data`), or from `start`
    (states saved at the same epoch), and sees the same mini-batch order. After each epoch,
    `on_checkpoint` receives every model's state, then `on_epoch` the epoch's rows; `on_steps`
    is told how many optimiser steps were just taken (for progress bars). A model whose loss
    becomes NaN or infinite is reported as diverged and dropped; the others go on. Returns the
    surviving models' network.

    While it trains, subnormal floats (magnitudes below about 1.2e-38 in float32) are flushed
    to zero on the CPU (`subnormals_flushed`): the Adam moments of units that stopped learning
    decay into that range, where a CPU computes many times slower (a group at lr 0.01 took 6x
    as long for its fifth epoch as for its first). A number changes only where it would have
    been that small.
    """
    with subnormals_flushed():
        return _train_lockstep(activations, data, config, seed, on_epoch, on_steps, start,
                               on_checkpoint)  # fmt: skip


@contextmanager
def subnormals_flushed() -> Iterator[None]:
    """Flush subnormal floats to zero on the CPU for the block, in the calling thread
    (`torch.set_flush_denormal`, which sets the processor's flush-to-zero and
    denormals-are-zero modes), then set back what was before: the process's other
    arithmetic (numpy's, Python's floats) keeps IEEE-754 subnormals outside training."""
    before = (torch.tensor([1e-39]) * 2).item() == 0.0  # flushed already (float32's 2e-39)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def _train_lockstep(
    activations: list[Activation],
    data: Tensors,
    config: RunConfig,
    seed: int,
    on_epoch: Callable[[list[EpochResult]], None] | None,
    on_steps: Callable[[int], None] | None,
    start: list[ModelState] | None,
    on_checkpoint: Callable[[list[ModelState]], None] | None,
) -> LockstepMLP | None:
    device = data.train_x.device
    first = start[0].epoch if start else 0
    if start and any(s.epoch != first or s.seed != seed for s in start):
        raise ValueError("models trained in lockstep must start from the same seed and epoch")
    shape = data_shape(data)
    net, optimizer = _start(activations, config, shape, seed, device, start)
    order = torch.Generator()
    if start:
        order.set_state(start[0].order_rng)
        torch.set_rng_state(start[0].torch_rng)
    else:
        order.manual_seed(seed)
    history = [list(s.rows) for s in start] if start else [[] for _ in activations]
    n = len(data.train_x)
    per_epoch = steps_per_epoch(n, config.batch_size)
    report_every = 32

    probe = (data.train_x[:PROBE_SIZE], data.train_y[:PROBE_SIZE])

    for epoch in range(first + 1, config.epochs + 1):
        started = time.perf_counter()
        net.train()
        perm = torch.randperm(n, generator=order).to(device)
        labels_in_order = data.train_y.index_select(0, perm)
        # per model and sample: log-probability of the true label, predicted class
        label_log_probs, predictions = _scores(net.k, n, device)
        steps = 0
        for begin in range(0, n, config.batch_size):
            end = min(begin + config.batch_size, n)
            xb = data.train_x.index_select(0, perm[begin:end])
            scores = (label_log_probs[:, begin:end], predictions[:, begin:end])
            optimizer.step(net.train_step(xb, labels_in_order[begin:end], scores))
            steps += 1
            if on_steps is not None and steps % report_every == 0:
                on_steps(report_every)
        if on_steps is not None and steps % report_every:
            on_steps(steps % report_every)
        train_loss, train_acc = _means(label_log_probs, predictions, labels_in_order)
        test_loss, test_acc = evaluate(net, data.test_x, data.test_y, config.eval_batch_size)
        val_loss = val_acc = [math.nan] * net.k
        if data.val_x is not None:
            val_loss, val_acc = evaluate(net, data.val_x, data.val_y, config.eval_batch_size)
        seconds = time.perf_counter() - started
        health = unit_health(net, activations, *probe)
        diverged = [
            not (math.isfinite(train_loss[i]) and math.isfinite(test_loss[i])) for i in range(net.k)
        ]
        rows = [
            EpochResult(
                activations[i].label,
                seed,
                epoch,
                train_loss[i],
                train_acc[i],
                test_loss[i],
                test_acc[i],
                seconds,
                "diverged" if diverged[i] else "ok",
                **_health_fields(health[i]),
                val_loss=val_loss[i],
                val_accuracy=val_acc[i],
            )
            for i in range(net.k)
        ]
        for own, row in zip(history, rows, strict=True):
            own.append(row)
        states = None
        if on_checkpoint is not None or any(diverged):
            states = _snapshot(net, optimizer, order, history, diverged)
        with signals_held():  # an interrupt waits until the epoch is saved and reported
            if on_checkpoint is not None:
                on_checkpoint(states)
            if on_epoch is not None:
                on_epoch(rows)
        if any(diverged):
            keep = [i for i in range(net.k) if not diverged[i]]
            if not keep:
                if on_steps is not None:  # the steps this group will not take
                    on_steps((config.epochs - epoch) * per_epoch)
                return None
            activations = [activations[i] for i in keep]
            history = [history[i] for i in keep]
            rng = torch.get_rng_state()
            survivors = [states[i] for i in keep]
            net, optimizer = _start(activations, config, shape, seed, device, survivors)
            torch.set_rng_state(rng)
    return net


def steps_per_epoch(samples: int, batch_size: int) -> int:
    return math.ceil(samples / batch_size)
