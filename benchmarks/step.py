"""Time one training step three ways in one process, side by side, and print where time goes.

    python benchmarks/step.py                       # relu,sigmoid: one CPU worker's share
    python benchmarks/step.py --activations relu,sigmoid,tanh,leaky --rounds 40

The step is one optimiser step of every given activation's model on one mini-batch (batch 64,
784-128-128-10, Adam), on one CPU thread as in each of actbench's workers:

  one at a time   the textbook step, model after model: forward, cross-entropy, autograd
                  backward, torch.optim.Adam (what the hand-written loop of speed.py does);
  actbench        actbench's lockstep step (`LockstepMLP.train_step` and its Adam), as
                  `actbench run` takes it, recording per-sample scores;
  products only   the lockstep step's batch gather and matrix products alone, on the same
                  shapes, writing into buffers made once: the arithmetic any step has to do,
                  at this machine's rate for these small products.

The three alternate within each round (--steps steps each, CPU time of this thread), each
round gives the ratios, and the script prints the medians over the rounds with their range.

    python benchmarks/step.py --activations relu,sigmoid,tanh,leaky --groups --rounds 40
    python benchmarks/step.py --previous    # also the step before models were bit-identical

times actbench's step of the same models grouped three ways instead: all in one lockstep group,
in groups of two, and one at a time (each group a step of its own), alternating as above.

The data is random, of MNIST's size: a step's speed does not depend on the pixel values.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from actbench.activations import resolve_all
from actbench.lockstep import LockstepMLP
from actbench.optim import Adam
from actbench.train import build_models

Step = Callable[[torch.Tensor], None]
BATCH = 64  # the classic run's mini-batch


def one_at_a_time(activations, data, hidden: int) -> Step:
    models = build_models(activations, hidden, data[0].shape[1], seed=0)
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]

    def step(index: torch.Tensor) -> None:
        x, y = data[0][index], data[1][index]
        for model, optimizer in zip(models, optimizers, strict=True):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

    return step


def lockstep(activations, data, hidden: int, network: type = LockstepMLP) -> Step:
    net = network(build_models(activations, hidden, data[0].shape[1], seed=0))
    optimizer = Adam(net.weights(), lr=1e-3)
    log_probs = torch.empty(net.k, BATCH)
    predictions = torch.empty(net.k, BATCH, dtype=torch.long)

    def step(index: torch.Tensor) -> None:
        x, y = data[0].index_select(0, index), data[1].index_select(0, index)
        optimizer.step(net.train_step(x, y, (log_probs, predictions)))

    return step


def products_only(activations, data, hidden: int) -> Step:
    k, features, classes, batch = len(activations), data[0].shape[1], 10, BATCH
    w1, b1 = torch.randn(k, features, hidden) * 0.03, torch.zeros(k, 1, hidden)
    w2, b2 = torch.randn(k, hidden, hidden) * 0.08, torch.zeros(k, 1, hidden)
    w3, b3 = torch.randn(k, classes, hidden) * 0.08, torch.zeros(k, 1, classes)  # (out, in)
    z1, g1 = torch.empty(k, batch, hidden), torch.randn(k, batch, hidden)
    h1, h2, g2 = (torch.randn(k, batch, hidden) for _ in range(3))
    z2, gh1, gh2 = (torch.empty(k, batch, hidden) for _ in range(3))
    logits, g3 = torch.empty(k, batch, classes), torch.randn(k, batch, classes)
    gw1, gw2, gw3 = torch.empty_like(w1), torch.empty_like(w2), torch.empty_like(w3)

    def step(index: torch.Tensor) -> None:
        x = data[0].index_select(0, index)
        torch.baddbmm(b1, x.expand(k, *x.shape), w1, out=z1)
        torch.baddbmm(b2, h1, w2, out=z2)
        torch.baddbmm(b3, h2, w3.transpose(1, 2), out=logits)
        torch.bmm(g3.transpose(1, 2), h2, out=gw3)
        torch.bmm(g3, w3, out=gh2)
        torch.bmm(h1.transpose(1, 2), g2, out=gw2)
        torch.bmm(g2, w2.transpose(1, 2), out=gh1)
        torch.bmm(x.t().expand(k, *x.t().shape), g1, out=gw1)

    return step


def in_groups(size: int) -> Callable[..., Step]:
    """actbench's step of the models in lockstep groups of `size`, one group after the other."""

    def make(activations, data, hidden: int) -> Step:
        groups = [activations[i : i + size] for i in range(0, len(activations), size)]
        steps = [lockstep(group, data, hidden) for group in groups]

        def step(index: torch.Tensor) -> None:
            for group_step in steps:
                group_step(index)

        return step

    return make


def previous(activations, data, hidden: int) -> Step:
    """The previous lockstep step (benchmarks/previous_lockstep.py), with the same Adam."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from previous_lockstep import LockstepMLP as Previous

    return lockstep(activations, data, hidden, network=Previous)


WAYS = {"one at a time": one_at_a_time, "actbench": lockstep, "products only": products_only}
RATIOS = [
    ("one at a time", "actbench", "one at a time / actbench"),
    ("actbench", "products only", "actbench / its matrix products"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activations", default="relu,sigmoid")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument(
        "--groups", action="store_true", help="compare lockstep groups of all, two and one model"
    )
    parser.add_argument(
        "--previous", action="store_true", help="also time the previous lockstep step"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    activations = resolve_all(args.activations.split(","))
    ways, ratios = WAYS, RATIOS
    if args.previous:
        ways = {**WAYS, "previous step": previous}
        ratios = [*RATIOS, ("actbench", "previous step", "actbench / previous step")]
    if args.groups:
        sizes = sorted({len(activations), 2, 1}, reverse=True)
        ways = {f"groups of {n}": in_groups(n) for n in sizes}
        first, *rest = ways
        ratios = [(name, first, f"{name} / {first}") for name in rest]
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(60000, 784, generator=generator), torch.randint(0, 10, (60000,))
    steps = {name: make(activations, data, args.hidden) for name, make in ways.items()}
    order = torch.randperm(len(data[0]), generator=generator)
    batches = [order[i : i + BATCH] for i in range(0, len(order) - BATCH + 1, BATCH)]
    for step in steps.values():  # warm up
        for index in batches[:20]:
            step(index)

    times: dict[str, list[float]] = {name: [] for name in steps}
    position = 0
    for _ in range(args.rounds):
        for name, step in steps.items():
            chunk = [batches[(position + i) % len(batches)] for i in range(args.steps)]
            started = time.thread_time()
            for index in chunk:
                step(index)
            times[name].append((time.thread_time() - started) / args.steps * 1e3)
        position += args.steps

    print(
        f"step: {len(activations)} model(s) ({args.activations}), batch {BATCH}, hidden {args.hidden}"
    )
    print(f"{args.rounds} rounds of {args.steps} steps each, one thread, torch {torch.__version__}")
    for name, values in times.items():
        print(f"  {name:15s} {statistics.median(values):7.3f} ms per step (median)")

    def ratio(top: str, bottom: str, label: str) -> None:
        values = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
        low, high = min(values), max(values)
        print(f"{label}: {statistics.median(values):.2f}x  (rounds {low:.2f} to {high:.2f})")

    for top, bottom, label in ratios:
        ratio(top, bottom, label)


if __name__ == "__main__":
    main()
