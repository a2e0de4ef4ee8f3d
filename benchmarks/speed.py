"""Time the classic experiment three ways on this machine, side by side, and print the ratios.

    python benchmarks/speed.py --data-dir /path/to/mnist            # 1 epoch, 3 repeats
    python benchmarks/speed.py --data-dir /path/to/mnist --epochs 10 --repeats 1

The same work (the given activations, each trained for --epochs epochs on the training set
with a test pass after every epoch; 784-128-128-10, Adam 1e-3, batch 64) is done by:

  tutorial      the tutorial way: a torchvision-style Dataset that turns each image into a PIL
                image and applies ToTensor + Normalize, a DataLoader (batch 64, shuffled),
                one activation after the other;
  hand-written  a careful loop: the data preloaded as one normalised tensor, batches as index
                slices, one activation after the other;
  actbench      the `actbench run` command, progress bar and table included;
  previous      (with --previous) the same command with actbench's previous lockstep step,
                whose models' last digits depended on the models beside them.

Each one runs in a fresh process, end to end (start, imports, reading the data files,
training, testing), and the three alternate within each repeat so that a noisy machine
slows them alike. The script also measures the machine's matrix-multiply rate and turns the
run's floating-point work into a floor: the time the run would take if it did nothing but
multiply matrices at that rate. The rate is measured in every repeat, and each ratio is taken
within one repeat before the median over the repeats is printed (with their range), so that a
machine whose speed drifts over the minutes of a benchmark is only compared with itself.

Peak memory is the highest proportional set size (PSS) of each approach's process tree,
sampled every 0.1 s (Linux): pages that processes share count once. Reading it is not free
(tens of milliseconds of a core per sample for processes that map torch's libraries), so it
is measured in separate runs after the timed ones (as many epochs, or --memory-epochs), and
no timed run is observed while it works.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from measure import measure

APPROACHES = ("tutorial", "hand-written", "actbench")
GOALS = {"tutorial": 30.0, "hand-written": 3.0}
FLOOR_GOAL = 2.5
PREVIOUS_GOAL = 1.1  # bit-identical models may cost at most 10% over the previous step


def flops(hidden: int, train: int, test: int, models: int, epochs: int) -> float:
    """Multiply-add work of the run: forward, backward (no input gradient at layer 1), test."""
    forward = 2 * (784 * hidden + hidden * hidden + hidden * 10)
    backward = 2 * forward - 2 * 784 * hidden
    return models * epochs * (train * (forward + backward) + test * forward)


def matmul_rate(threads: int, device: str = "cpu", size: int = 2048, repeats: int = 7) -> float:
    """Median GFLOP/s of a large float32 matrix product with `threads` threads (or on a GPU)."""
    import torch

    torch.set_num_threads(threads)
    if device != "cpu":
        size *= 4  # a GPU needs a larger product to reach its rate
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    sync = {"cuda": torch.cuda.synchronize, "mps": torch.mps.synchronize}.get(device, lambda: None)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


# --- the three ways of doing the work, each run in its own process -------------------------


def _mlp(activation, hidden):
    import torch

    from actbench.model import MLP

    torch.manual_seed(0)
    return MLP(activation, hidden=hidden)


def run_tutorial(args) -> dict:
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from actbench.activations import resolve_all
    from actbench.data import load_mnist

    mnist = load_mnist(args.data_dir, download=False)
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )

    class TutorialMNIST(Dataset):
        """What torchvision.datasets.MNIST does per sample: PIL image, then the transform."""

        def __init__(self, images, labels):
            self.images, self.labels = images, labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            image = Image.fromarray(self.images[i].numpy(), mode="L")
            return transform(image), int(self.labels[i])

    n = args.subset or len(mnist.train_labels)
    test_n = round(len(mnist.test_labels) * n / len(mnist.train_labels))
    train = TutorialMNIST(mnist.train_images[:n], mnist.train_labels[:n])
    test = TutorialMNIST(mnist.test_images[:test_n], mnist.test_labels[:test_n])
    train_loader = DataLoader(train, batch_size=64, shuffle=True)
    test_loader = DataLoader(test, batch_size=1000)
    device = torch.device(args.device)
    accuracy = {}
    for activation in resolve_all(args.activations.split(",")):
        model = _mlp(activation, args.hidden).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(args.epochs):
            model.train()
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for x, y in test_loader:
                    x, y = x.to(device), y.to(device)
                    correct += (model(x).argmax(1) == y).sum().item()
        accuracy[activation.label] = correct / len(test)
    return accuracy


def run_handwritten(args) -> dict:
    import torch
    import torch.nn.functional as F

    from actbench.activations import resolve_all
    from actbench.data import load_mnist, prepare

    device = torch.device(args.device)
    data = prepare(load_mnist(args.data_dir, download=False), args.subset, 0, device)
    accuracy = {}
    for activation in resolve_all(args.activations.split(",")):
        model = _mlp(activation, args.hidden).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(0)
        for _ in range(args.epochs):
            perm = torch.randperm(len(data.train_x), generator=order).to(device)
            for start in range(0, len(perm), 64):
                idx = perm[start : start + 64]
                optimizer.zero_grad()
                F.cross_entropy(model(data.train_x[idx]), data.train_y[idx]).backward()
                optimizer.step()
            with torch.no_grad():
                correct = (model(data.test_x).argmax(1) == data.test_y).sum().item()
        accuracy[activation.label] = correct / len(data.test_x)
    return accuracy


def actbench_command(args, results: str) -> list[str]:
    """`actbench run` for the same work, as a user would type it (through `python -m`)."""
    command = [sys.executable, "-m", "actbench", "run", "--activations", args.activations]
    command += ["--epochs", str(args.epochs), "--hidden", str(args.hidden)]
    command += ["--data-dir", str(args.data_dir), "--no-download", "--results-dir", results]
    command += ["--device", args.device]
    if args.subset:
        command += ["--subset", str(args.subset)]
    return command


def final_accuracies(results: str, epochs: int) -> dict:
    """Each activation's test accuracy after the last epoch, from the run's metrics.csv."""
    (metrics,) = Path(results).glob("*/metrics.csv")
    with metrics.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["epoch"]) == epochs]
    return {row["activation"]: float(row["test_accuracy"]) for row in rows}


def run_previous(args) -> dict:
    """`actbench run` with the previous lockstep step in place of the current one.

    The step before models were made bit-identical in any company (benchmarks/
    previous_lockstep.py); everything else is today's actbench, so the two differ only there.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import previous_lockstep

    import actbench.train
    from actbench.cli import main as actbench_main

    actbench.train.LockstepMLP = previous_lockstep.LockstepMLP
    with tempfile.TemporaryDirectory() as results:
        sys.argv = ["actbench", *actbench_command(args, results)[3:]]
        try:
            actbench_main()
        except SystemExit as done:
            if done.code:
                raise
        return final_accuracies(results, args.epochs)


RUNNERS = {"tutorial": run_tutorial, "hand-written": run_handwritten, "previous": run_previous}


# --- the driver ------------------------------------------------------------------------------


def one_run(approach: str, args, watch_memory: bool = False) -> dict:
    """Run one approach in a fresh process and time it, or sample its memory every 0.1 s.

    Sampling slows what it watches, so a run is either timed or watched, never both.
    """
    with tempfile.TemporaryDirectory() as results:
        if approach == "actbench":
            command = actbench_command(args, results)
        else:
            command = [sys.executable, __file__, "--approach", approach, *_shared_flags(args)]
        done = measure(approach, command, sample_every=0.1 if watch_memory else None)
        if approach == "actbench":
            accuracy = final_accuracies(results, args.epochs)
        else:
            accuracy = json.loads(done.stdout.strip().splitlines()[-1])["accuracy"]
    return {"accuracy": accuracy, "seconds": done.seconds, "peak_mb": done.peak_mb}


def _shared_flags(args) -> list[str]:
    flags = ["--data-dir", str(args.data_dir), "--epochs", str(args.epochs)]
    flags += ["--activations", args.activations, "--hidden", str(args.hidden)]
    flags += ["--device", args.device]
    if args.subset:
        flags += ["--subset", str(args.subset)]
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("ACTBENCH_DATA_DIR"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--memory-epochs", type=int, help="epochs of the untimed memory runs (default: --epochs)"
    )
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--activations", default="relu,sigmoid,tanh,leaky")
    parser.add_argument("--skip", default="", help="comma-separated approaches not to run")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    parser.add_argument(
        "--previous",
        action="store_true",
        help="also time actbench with its previous lockstep step (benchmarks/previous_lockstep.py)",
    )
    parser.add_argument("--approach", choices=tuple(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("give --data-dir (or set ACTBENCH_DATA_DIR) to a folder holding MNIST")

    if args.approach:  # a child: do the work once, report its final accuracies as JSON
        accuracy = RUNNERS[args.approach](args)
        print(json.dumps({"accuracy": accuracy}))
        return

    import torch

    from actbench.data import load_mnist

    mnist = load_mnist(args.data_dir, download=False)
    train_n = args.subset or len(mnist.train_labels)
    test_n = round(len(mnist.test_labels) * train_n / len(mnist.train_labels))
    models = len(args.activations.split(","))
    work = flops(args.hidden, train_n, test_n, models, args.epochs)
    cores = os.cpu_count() or 1
    gpu = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"machine: {platform.machine()}, {cores} CPU cores{gpu}, torch {torch.__version__}")
    print(
        f"work: {models} activations x {args.epochs} epoch(s) x {train_n} training samples "
        f"+ test pass on {test_n}; batch 64, hidden {args.hidden}; {args.repeats} repeat(s)"
    )
    skip = set(filter(None, args.skip.split(",")))
    approaches = [a for a in APPROACHES if a not in skip]
    if args.previous:
        approaches.append("previous")
    runs: dict[str, list[dict]] = {a: [] for a in approaches}
    rates = []
    for repeat in range(args.repeats):
        for approach in approaches:
            result = one_run(approach, args)
            runs[approach].append(result)
            print(f"  repeat {repeat + 1}: {approach:<12} {result['seconds']:8.2f} s", flush=True)
        rates.append(matmul_rate(cores, args.device))  # in each repeat: it drifts with the rest
        print(f"  repeat {repeat + 1}: matrix-multiply {rates[-1]:8.1f} GFLOP/s", flush=True)
    memory_epochs = args.memory_epochs or args.epochs
    memory_args = argparse.Namespace(**{**vars(args), "epochs": memory_epochs})
    peaks = {}
    for approach in approaches:
        peaks[approach] = one_run(approach, memory_args, watch_memory=True)["peak_mb"]
        print(
            f"  memory ({memory_epochs} epoch(s), untimed): {approach:<12} "
            f"{peaks[approach]:6.0f} MB",
            flush=True,
        )

    print()
    print(f"{'approach':<14}{'median s':>10}{'peak MB':>10}  final test accuracy")
    for approach in approaches:
        seconds = statistics.median(r["seconds"] for r in runs[approach])
        accuracy = runs[approach][-1]["accuracy"]
        shown = " ".join(f"{k} {100 * v:.2f}%" for k, v in accuracy.items())
        print(f"{approach:<14}{seconds:>10.2f}{peaks[approach]:>10.0f}  {shown}")
    floors = [work / (rate * 1e9) for rate in rates]  # seconds, one per repeat
    print()
    where = f"{cores} threads" if args.device == "cpu" else args.device
    print(
        f"matrix-multiply rate: {statistics.median(rates):.1f} GFLOP/s (float32, {where}, median)"
    )
    print(f"floating-point work: {work / 1e9:.1f} GFLOP -> floor {statistics.median(floors):.2f} s")
    if "actbench" in runs:
        # Each ratio is taken within a repeat (runs next to each other see the same machine).
        ours = [r["seconds"] for r in runs["actbench"]]
        for other, goal in GOALS.items():
            if other in runs:
                ratios = [r["seconds"] / o for r, o in zip(runs[other], ours, strict=True)]
                text = f"{other} / actbench: {statistics.median(ratios):6.1f}x faster  "
                print(text + f"(goal >= {goal:g}x; repeats {_span(ratios, '.1f')})")
        ratios = [o / floor for o, floor in zip(ours, floors, strict=True)]
        text = f"actbench / floor:   {statistics.median(ratios):6.2f}x         "
        print(text + f"(goal <= {FLOOR_GOAL:g}x; repeats {_span(ratios, '.2f')})")
        if "previous" in runs:
            ratios = [o / p["seconds"] for o, p in zip(ours, runs["previous"], strict=True)]
            text = f"actbench / previous step: {statistics.median(ratios):5.2f}x   "
            print(text + f"(goal <= {PREVIOUS_GOAL:g}x; repeats {_span(ratios, '.2f')})")


def _span(values: list[float], spec: str) -> str:
    """The range of per-repeat values, as 'low to high'."""
    return f"{min(values):{spec}} to {max(values):{spec}}"


if __name__ == "__main__":
    main()
