"""Time one study on the local backend (1 and 2 workers), on Ray, and as a Ray Tune search.

    python benchmarks/ray_scaling.py --data-dir /path/to/mnist
    python benchmarks/ray_scaling.py --data-dir /path/to/mnist --subset 2000 --skip tune

The study: --activations x --hidden x --lr x --seeds, --epochs epochs (by default 4 x 2 x 2
x 4: 16 groups of 4 models, each group one configuration and seed). In one invocation, each
approach in a fresh process, end to end (start, imports, data, Ray's start where it has
one, training, test passes), measured as model-epochs per second of wall time:

  local-W   `actbench run --workers W` for each W of --workers (default 1,2);
  ray       `actbench run --backend ray`: a Ray started on this machine with every core,
            the jobs (groups in lockstep) as Ray tasks, one per job and epoch; its overhead
            per task is read from the run's manifest (seconds from submitting a task to its
            result being back, beyond the task's own time: median, and mean with the
            workers' starts);
  tune      the same study as a researcher would run it with Ray Tune: one trial per
            configuration and seed, trials in parallel on the same cores (one CPU each),
            each trial the careful hand-written loop of `benchmarks/study.py` over the
            activations (nn.Sequential, autograd, torch.optim.Adam, batches as index slices
            of the preloaded data, shared through `tune.with_parameters`), reporting every
            epoch's test accuracy to Tune. With --tune-flush, each trial also flushes
            subnormal floats to zero (`torch.set_flush_denormal`), as actbench's training
            does: without it, Adam's moments of units that stopped learning decay into
            subnormals, on which the CPU is many times slower.

  ray-join, tune-join
            the same two on a Ray that is already running, as on a cluster (`ray start
            --head` on this machine, started once before them and stopped after them): each
            joins it (`--address auto`, `ray.init(address="auto")`) instead of starting a Ray
            of its own.

Printed: each approach's rate, the ratios between them (goal: actbench on Ray at least 5x
the Tune search's rate, with a Ray of its own and on a running one), the time Ray takes to
start and stop on this machine (a fresh process, `ray.init` then `ray.shutdown`), which every
run that starts a Ray pays once, and the time `ray start --head` took.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from measure import measure

TUNE_GOAL = 5.0  # speed, actbench on Ray over the Tune search
# every approach on Ray starts a Ray of its own, whatever other Ray runs on this machine
ENV = {**os.environ, "RAY_ADDRESS": "local"}
# ... and every approach on a running Ray joins the one this script started
JOINED = {**os.environ, "RAY_ADDRESS": "auto"}


def trial(
    config: dict, data=None, activations: str = "", epochs: int = 1, flush: bool = False
) -> None:
    """One Tune trial: every activation of one configuration and seed, one after the other.
    `flush`: subnormal floats flushed to zero, as actbench's training does."""
    import torch
    import torch.nn.functional as F
    from ray import tune
    from torch import nn

    from actbench.activations import resolve_all

    if flush:
        torch.set_flush_denormal(True)
    seed, hidden, lr = config["seed"], config["hidden"], config["lr"]
    for activation in resolve_all(activations.split(",")):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Linear(data.train_x.shape[1], hidden), activation(),
            nn.Linear(hidden, hidden), activation(), nn.Linear(hidden, 10),
        )  # fmt: skip
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        order = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(len(data.train_x), generator=order)
            for start in range(0, len(perm), 64):
                idx = perm[start : start + 64]
                optimizer.zero_grad()
                F.cross_entropy(model(data.train_x[idx]), data.train_y[idx]).backward()
                optimizer.step()
            with torch.no_grad():
                accuracy = (model(data.test_x).argmax(1) == data.test_y).float().mean().item()
            tune.report({"activation": activation.label, "epoch": epoch,
                         "test_accuracy": accuracy, "model_epochs": 1})  # fmt: skip


def run_tune(args) -> dict:
    """The Tune search, in this process; its model-epochs (from Tune's results)."""
    import ray
    import torch
    from ray import tune

    from actbench.data import load_mnist, prepare

    if args.join:
        ray.init(address="auto", log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    data = prepare(load_mnist(args.data_dir, download=False), args.subset, 0, torch.device("cpu"))
    trainable = tune.with_parameters(
        trial, data=data, activations=args.activations, epochs=args.epochs, flush=args.tune_flush
    )
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={
                "hidden": tune.grid_search([int(h) for h in args.hidden.split(",")]),
                "lr": tune.grid_search([float(v) for v in args.lr.split(",")]),
                "seed": tune.grid_search(list(range(args.seeds))),
            },
            run_config=tune.RunConfig(storage_path=storage, name="study", verbose=0),
        )
        results = tuner.fit()
        errors = [r.error for r in results if r.error]
        if errors:
            sys.exit(f"tune: {len(errors)} trials failed: {errors[0]}")
        count = sum(len(r.metrics_dataframe) for r in results)
    ray.shutdown()
    return {"model_epochs": count}


def ray_start_seconds() -> float:
    """Seconds a fresh process takes to start a Ray on this machine and stop it (imports
    excluded)."""
    script = (
        "import time, ray\n"
        "t = time.perf_counter()\n"
        "ray.init(include_dashboard=False, log_to_driver=False, logging_level='ERROR')\n"
        "ray.shutdown()\n"
        "print(time.perf_counter() - t)\n"
    )
    done = measure("ray start", [sys.executable, "-c", script], env=ENV)
    return float(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def running_ray(cpus: int) -> Iterator[float]:
    """A Ray head started on this machine for the block (`ray start --head --block`, stopped
    with it); yields the seconds it took to start."""
    from ray._common.utils import get_ray_address_file

    ray, port = Path(sys.executable).with_name("ray"), _free_port()
    command = [str(ray) if ray.exists() else "ray", "start", "--head", "--block",
               "--num-cpus", str(cpus), "--include-dashboard=false", "--disable-usage-stats",
               "--port", str(port)]  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "log", "a") as log:
        head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "RAY_ADDRESS": ""})  # fmt: skip
        printed = Path(folder) / "log"
        try:
            while "Ray runtime started" not in printed.read_text():  # printed once it is up
                if head.poll() is not None:
                    sys.exit(f"ray start failed:\n{printed.read_text()[-2000:]}")
                time.sleep(0.2)
            yield time.perf_counter() - start
        finally:
            head.terminate()  # --block: the head stops every process it started
            head.wait(timeout=60)
            # ... but leaves its address where `ray.init()` looks for a running Ray first
            found = Path(get_ray_address_file(None))
            if found.exists() and found.read_text().strip().endswith(f":{port}"):
                found.unlink()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def actbench_command(args, results: str, workers: int | None) -> list[str]:
    command = [sys.executable, "-m", "actbench", "run", "-a", args.activations, "--hidden",
               args.hidden, "--lr", args.lr, "--seeds", str(args.seeds), "--epochs",
               str(args.epochs), "--data-dir", str(args.data_dir), "--no-download",
               "--results-dir", results]  # fmt: skip
    if workers is None:
        command += ["--backend", "ray"]
    elif workers == 0:
        command += ["--backend", "ray", "--address", "auto"]
    else:
        command += ["--workers", str(workers)]
    if args.subset:
        command += ["--subset", str(args.subset)]
    return command


def one_run(name: str, args) -> dict:
    """Run one approach in a fresh process; its model-epochs, seconds and (Ray) tasks."""
    with tempfile.TemporaryDirectory() as results:
        joined = name.endswith("-join")
        if name.startswith("tune"):
            command = [sys.executable, __file__, "--approach", "tune", *_shared_flags(args)]
            command += ["--join"] if joined else []
        else:
            workers = 0 if joined else None if name == "ray" else int(name.removeprefix("local-"))
            command = actbench_command(args, results, workers)
        done = measure(name, command, env=JOINED if joined else ENV)
        seconds = done.seconds
        if name.startswith("tune"):
            return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": seconds}
        (run_dir,) = Path(results).iterdir()
        manifest = json.loads((run_dir / "manifest.json").read_text())
        rows = len((run_dir / "metrics.csv").read_text().splitlines()) - 1
        found = {"model_epochs": rows, "seconds": seconds}
        if name.startswith("ray"):
            found["tasks"] = manifest["backend"]
    return found


def _shared_flags(args) -> list[str]:
    flags = ["--data-dir", str(args.data_dir), "--epochs", str(args.epochs), "--activations",
             args.activations, "--hidden", args.hidden, "--lr", args.lr, "--seeds",
             str(args.seeds)]  # fmt: skip
    if args.subset:
        flags += ["--subset", str(args.subset)]
    if args.tune_flush:
        flags += ["--tune-flush"]
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("ACTBENCH_DATA_DIR"))
    parser.add_argument("--activations", default="relu,tanh,sigmoid,leaky")
    parser.add_argument("--hidden", default="64,128")
    parser.add_argument("--lr", default="0.001,0.01")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--workers", default="1,2", help="the local runs' worker counts")
    parser.add_argument("--skip", default="", help="comma-separated approaches not to run")
    parser.add_argument("--tune-flush", action="store_true",
                        help="the Tune trials flush subnormal floats to zero, as actbench does")  # fmt: skip
    parser.add_argument("--approach", help=argparse.SUPPRESS)
    parser.add_argument("--join", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("give --data-dir (or set ACTBENCH_DATA_DIR) to a folder holding MNIST")
    if args.approach == "tune":
        print(json.dumps(run_tune(args)))
        return
    skip = set(args.skip.split(","))
    names = [f"local-{w}" for w in args.workers.split(",") if f"local-{w}" not in skip]
    names += [n for n in ("ray", "tune") if n not in skip]
    joined = [n for n in ("ray-join", "tune-join") if n not in skip]
    groups = len(args.hidden.split(",")) * len(args.lr.split(",")) * args.seeds
    activations = len(args.activations.split(","))
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}")  # fmt: skip
    print(f"study: {activations} activations x hidden {args.hidden} x lr {args.lr} x "
          f"{args.seeds} seeds = {groups} groups of {activations} models, {args.epochs} "
          f"epochs, {'subset ' + str(args.subset) if args.subset else 'full MNIST'}"
          f"{'; Tune flushes subnormals' if args.tune_flush else ''}")  # fmt: skip
    found = {}

    def run_each(names: list[str]) -> None:
        for name in names:
            found[name] = r = one_run(name, args)
            print(f"{name:<9} {r['model_epochs']:>5} model-epochs in {r['seconds']:8.1f} s = "
                  f"{r['model_epochs'] / r['seconds']:6.3f} per s", flush=True)  # fmt: skip

    run_each(names)
    if joined:
        with running_ray(os.cpu_count() or 1) as started:
            print(f"ray start --head on this machine: {started:.1f} s (before the next "
                  "two, which join it)", flush=True)  # fmt: skip
            run_each(joined)
    rate = {n: r["model_epochs"] / r["seconds"] for n, r in found.items()}
    for name in ("ray", "ray-join"):
        if name in found:
            tasks = found[name]["tasks"]
            print(f"{name} tasks: {tasks['tasks']} (one per job and epoch), "
                  f"{tasks['task_seconds']:.1f} s inside them; overhead per task "
                  f"{tasks['overhead_seconds_median']:.3f} s median, "
                  f"{tasks['overhead_seconds_mean']:.3f} s mean (with the workers' starts)")  # fmt: skip
    if "ray" in found:
        print(f"ray start and stop on this machine: {ray_start_seconds():.1f} s")
    first = names[0] if names and names[0].startswith("local-") else None
    for name in rate:
        if first and name != first and not name.startswith("tune"):
            print(f"{name} / {first} speed: {rate[name] / rate[first]:.2f}x")
    for ray, tune in (("ray", "tune"), ("ray-join", "tune-join")):
        if ray in rate and tune in rate:
            print(f"{ray} / {tune} speed: {rate[ray] / rate[tune]:.2f}x "
                  f"(goal >= {TUNE_GOAL:g}x)")  # fmt: skip


if __name__ == "__main__":
    main()
