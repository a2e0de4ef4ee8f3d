"""Time a study against the classic run and against a hand-written loop over the same grid.

    python benchmarks/study.py --data-dir /path/to/mnist
    python benchmarks/study.py --data-dir /path/to/mnist --seeds 5 --depths 2,4 --epochs 3

In one invocation, each in a fresh process, end to end (start, imports, data, training, test
passes), and each measured as model-epochs per second of wall time:

  classic       `actbench run` of the classic four activations, one seed, at depth 2;
  study         `actbench run` of the study: every activation in the catalogue (13) x --seeds
                seeds x the --depths, for --epochs epochs;
  hand-written  a careful script looping over the same grid: data preloaded as one normalised
                tensor, batches as index slices, nn.Sequential, autograd and torch.optim.Adam,
                one model after the other, torch's default threads. It trains --hand-seeds
                seeds of every configuration and activation (a rate needs no more; the full
                grid would take it hours), and its rate is compared per model-epoch.

The ratios printed are of those rates: the study's cost per model-epoch over the classic
run's (goal: no more than 1x, for its models' mix of depths: reported at depth 2 and deeper
alike) and the study's speed over the hand-written loop's (goal: at least 3x on a 2-core
machine). Peak memory is the highest proportional set size (PSS) of each process tree,
sampled once a second (shared pages count once); sampling costs a little time, the same for
all three.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure

CLASSIC = "relu,sigmoid,tanh,leaky"
STUDY_GOAL = 1.0  # cost per model-epoch, study over classic
HAND_GOAL = 3.0  # speed, actbench's study over the hand-written loop


def catalogue() -> str:
    from actbench.catalog import CATALOG

    return ",".join(entry.name for entry in CATALOG)


def run_handwritten(args) -> dict:
    """The hand-written loop over the grid; prints its model-epochs and seconds of training."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from actbench.activations import resolve_all
    from actbench.data import load_mnist, prepare

    data = prepare(load_mnist(args.data_dir, download=False), args.subset, 0, torch.device("cpu"))
    model_epochs = 0
    for depth in [int(d) for d in args.depths.split(",")]:
        for seed in range(args.hand_seeds):
            for activation in resolve_all(args.activations.split(",")):
                torch.manual_seed(seed)
                layers, width = [], data.train_x.shape[1]
                for _ in range(depth):
                    layers += [nn.Linear(width, args.hidden), activation()]
                    width = args.hidden
                model = nn.Sequential(*layers, nn.Linear(width, 10))
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                order = torch.Generator().manual_seed(seed)
                for _ in range(args.epochs):
                    perm = torch.randperm(len(data.train_x), generator=order)
                    for start in range(0, len(perm), 64):
                        idx = perm[start : start + 64]
                        optimizer.zero_grad()
                        F.cross_entropy(model(data.train_x[idx]), data.train_y[idx]).backward()
                        optimizer.step()
                    with torch.no_grad():
                        (model(data.test_x).argmax(1) == data.test_y).float().mean().item()
                    model_epochs += 1
    return {"model_epochs": model_epochs}


def actbench_command(args, results: str, study: bool) -> list[str]:
    command = [sys.executable, "-m", "actbench", "run", "--epochs", str(args.epochs),
               "--hidden", str(args.hidden), "--data-dir", str(args.data_dir), "--no-download",
               "--results-dir", results]  # fmt: skip
    if study:
        command += ["-a", args.activations, "--seeds", str(args.seeds), "--depth", args.depths]
    else:
        command += ["-a", CLASSIC]
    if args.subset:
        command += ["--subset", str(args.subset)]
    return command


def model_epochs_of(results: str) -> int:
    import pandas as pd

    (metrics,) = Path(results).glob("*/metrics.csv")
    return len(pd.read_csv(metrics))


def one_run(name: str, args) -> dict:
    """Run one approach in a fresh process; its model-epochs, seconds and peak memory."""
    with tempfile.TemporaryDirectory() as results:
        if name == "hand-written":
            command = [sys.executable, __file__, "--approach", name, *_shared_flags(args)]
        else:
            command = actbench_command(args, results, study=name == "study")
        done = measure(name, command, sample_every=1.0)
        if name == "hand-written":
            count = json.loads(done.stdout.strip().splitlines()[-1])["model_epochs"]
        else:
            count = model_epochs_of(results)
    return {"model_epochs": count, "seconds": done.seconds, "peak_mb": done.peak_mb}


def _shared_flags(args) -> list[str]:
    flags = ["--data-dir", str(args.data_dir), "--epochs", str(args.epochs), "--activations",
             args.activations, "--hidden", str(args.hidden), "--depths", args.depths,
             "--hand-seeds", str(args.hand_seeds)]  # fmt: skip
    if args.subset:
        flags += ["--subset", str(args.subset)]
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("ACTBENCH_DATA_DIR"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--depths", default="2,4")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--activations", default=None, help="default: the whole catalogue")
    parser.add_argument("--hand-seeds", type=int, default=1)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--skip", default="", help="comma-separated approaches not to run")
    parser.add_argument("--approach", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("give --data-dir (or set ACTBENCH_DATA_DIR) to a folder holding MNIST")
    args.activations = args.activations or catalogue()
    if args.approach == "hand-written":
        start = time.perf_counter()
        result = run_handwritten(args)
        print(json.dumps({**result, "seconds": time.perf_counter() - start}))
        return
    names = [n for n in ("classic", "study", "hand-written") if n not in args.skip.split(",")]
    activations = len(args.activations.split(","))
    depths = args.depths.split(",")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(
        f"study: {activations} activations x {args.seeds} seeds x depths {args.depths}, "
        f"{args.epochs} epochs, hidden {args.hidden}, "
        f"{'subset ' + str(args.subset) if args.subset else 'full MNIST'}; hand-written: "
        f"{args.hand_seeds} seed(s) of each of the {activations * len(depths)} models"
    )
    found = {}
    for name in names:
        found[name] = one_run(name, args)
        r = found[name]
        print(f"{name:<13} {r['model_epochs']:>5} model-epochs in {r['seconds']:8.1f} s = "
              f"{r['model_epochs'] / r['seconds']:6.3f} per s, peak {r['peak_mb']:6.0f} MB",
              flush=True)  # fmt: skip
    rate = {n: r["model_epochs"] / r["seconds"] for n, r in found.items()}
    if "classic" in rate and "study" in rate:
        # a deeper model has more to do: compare the cost per weight-epoch too (every depth
        # trains as many models; weights of a model of depth d: 784H + (d-1)H^2 + 10H)
        size = lambda d: 784 * args.hidden + (d - 1) * args.hidden**2 + 10 * args.hidden  # noqa: E731
        mix = sum(size(int(d)) for d in depths) / len(depths)
        print(f"study cost per model-epoch / classic's: {rate['classic'] / rate['study']:.2f}x "
              f"raw, {rate['classic'] / rate['study'] * size(2) / mix:.2f}x per weight "
              f"(goal <= {STUDY_GOAL:g}x)")  # fmt: skip
    if "hand-written" in rate and "study" in rate:
        print(f"study speed / hand-written loop's:      {rate['study'] / rate['hand-written']:.2f}x "
              f"(goal >= {HAND_GOAL:g}x)")  # fmt: skip


if __name__ == "__main__":
    main()
