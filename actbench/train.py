"""The training loop: every epoch a full training pass, then a test pass, for K models at once."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from actbench.activations import Activation
from actbench.config import RunConfig
from actbench.data import Tensors
from actbench.lockstep import LockstepMLP
from actbench.model import MLP
from actbench.optim import make_optimizer


@dataclass(frozen=True)
class EpochResult:
    """One row of results: one activation, one seed, one epoch."""

    activation: str
    seed: int
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    epoch_seconds: float


def build_models(
    activations: list[Activation], hidden: int, in_features: int, seed: int
) -> list[MLP]:
    """One MLP per activation, each started from the same random stream (same initial weights)."""
    models = []
    for activation in activations:
        torch.manual_seed(seed)
        models.append(MLP(activation, hidden=hidden, in_features=in_features))
    return models


def _losses(logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-model cross-entropy: logits (K, B, C), labels (B,) -> (K,) mean or sum over the batch."""
    k, batch, classes = logits.shape
    per_sample = F.cross_entropy(
        logits.reshape(k * batch, classes), labels.repeat(k), reduction="none"
    ).view(k, batch)
    return per_sample.mean(1) if reduction == "mean" else per_sample.sum(1)


def _totals(
    losses: list[torch.Tensor], hits: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model sums over batches, in float64 on the CPU (some devices have no float64)."""
    return torch.stack(losses).cpu().double().sum(0), torch.stack(hits).cpu().sum(0)


@torch.no_grad()
def evaluate(
    net: LockstepMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[list[float], list[float]]:
    """Mean loss and accuracy of every model on (x, y)."""
    net.eval()
    losses, hits = [], []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        logits = net(xb)
        losses.append(_losses(logits, yb, "sum"))
        hits.append((logits.argmax(-1) == yb).sum(1))
    n = len(x)
    loss_sum, correct = _totals(losses, hits)
    return (loss_sum / n).tolist(), (correct.double() / n).tolist()


def train_lockstep(
    activations: list[Activation],
    data: Tensors,
    config: RunConfig,
    seed: int,
    on_epoch: Callable[[list[EpochResult]], None] | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> LockstepMLP:
    """Train one model per activation side by side for `config.epochs` epochs.

    Every model starts from the weights `seed` gives and sees the same mini-batch order.
    `on_epoch` receives the epoch's rows as soon as the epoch is done; `on_steps` is told
    how many optimiser steps were just taken (for progress bars).
    """
    device = data.train_x.device
    models = build_models(activations, config.hidden, data.train_x.shape[1], seed)
    net = LockstepMLP(models).to(device)
    optimizer = make_optimizer(net.weights(), config)
    order = torch.Generator().manual_seed(seed)
    n, k = len(data.train_x), net.k
    labels = [a.label for a in activations]
    report_every = 32

    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        net.train()
        perm = torch.randperm(n, generator=order).to(device)
        labels_in_order = data.train_y.index_select(0, perm)
        batch_losses, batch_hits = [], []
        steps = 0
        for start in range(0, n, config.batch_size):
            xb = data.train_x.index_select(0, perm[start : start + config.batch_size])
            batch_loss, hits, grads = net.train_step(xb, labels_in_order[start : start + len(xb)])
            optimizer.step(grads)
            batch_losses.append(batch_loss)
            batch_hits.append(hits)
            steps += 1
            if on_steps is not None and steps % report_every == 0:
                on_steps(report_every)
        if on_steps is not None and steps % report_every:
            on_steps(steps % report_every)
        loss_sum, correct = _totals(batch_losses, batch_hits)
        train_loss = (loss_sum / n).tolist()
        train_acc = (correct.double() / n).tolist()
        test_loss, test_acc = evaluate(net, data.test_x, data.test_y, config.eval_batch_size)
        seconds = time.perf_counter() - started
        rows = [
            EpochResult(
                labels[i],
                seed,
                epoch,
                train_loss[i],
                train_acc[i],
                test_loss[i],
                test_acc[i],
                seconds,
            )
            for i in range(k)
        ]
        if on_epoch is not None:
            on_epoch(rows)
    return net


def steps_per_epoch(samples: int, batch_size: int) -> int:
    return math.ceil(samples / batch_size)
