"""Worker processes: the split, the thread policy, and the same rows as training in one process."""

from __future__ import annotations

import pytest
import torch

from actbench.activations import resolve_all
from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.jobs import Job, Unit, parts_per_group, plan_jobs, split, total_steps
from actbench.parallel import train_in_workers
from actbench.runtime import plan_workers
from actbench.train import train_lockstep


def test_split_is_contiguous_and_balanced():
    assert split([1, 2, 3, 4, 5], 2) == [[1, 2, 3], [4, 5]]
    assert split([1, 2], 4) == [[1], [2]]
    assert split(list(range(8)), 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_a_plan_groups_models_of_one_configuration_and_seed_and_shares_them_out():
    units = [Unit(0, i, name) for i, name in enumerate(["relu", "tanh", "gelu", "elu"])]
    relu, tanh, gelu, elu = units
    # one group, too few for two workers: split in two
    assert plan_jobs(units, {}, set(), 2) == [Job(0, 0, (relu, tanh)), Job(0, 0, (gelu, elu))]
    assert plan_jobs(units, {}, set(), 1) == [Job(0, 0, (relu, tanh, gelu, elu))]
    # resumed: relu finished epoch 3, tanh only 2 (interrupted between), gelu is done
    plans = plan_jobs(units, {relu: 3, tanh: 2, gelu: 5, elu: 4}, {gelu}, 2)
    assert plans == [Job(0, 3, (relu,)), Job(0, 2, (tanh,)), Job(0, 4, (elu,))]
    assert plan_jobs(units, {}, set(units), 2) == []


def test_groups_are_split_only_as_far_as_sharing_them_out_evenly_needs():
    # hand-worked: the fewest parts per group that make a job count the workers divide (or
    # eight jobs per worker)
    assert parts_per_group(4, 2) == 1 and parts_per_group(16, 2) == 1
    assert parts_per_group(1, 2) == 2 and parts_per_group(3, 2) == 2
    assert parts_per_group(6, 4) == 2  # 12 jobs: 3 per worker
    assert parts_per_group(10, 16) == 8  # 80 jobs: 5 per task slot
    assert parts_per_group(5, 64) == 64  # 5 has no factor in common with 64
    assert parts_per_group(70, 64) == 8  # 560 jobs: eight per slot before 32 parts
    assert parts_per_group(3, 1) == 1
    units = [Unit(s, i, a) for s in range(6) for i, a in enumerate("abcd")]
    jobs = plan_jobs(units, {}, set(), 4)  # six groups of four models on four workers
    assert len(jobs) == 12 and {len(j.units) for j in jobs} == {2}


def test_groups_enough_for_every_worker_stay_whole_and_the_heaviest_go_first():
    units = [Unit(s, p * 2 + i, a, point=p) for s in (0, 1) for p in (0, 1)
             for i, a in enumerate(["relu", "tanh"])]  # fmt: skip
    jobs = plan_jobs(units, {}, set(), 2, weight=lambda job: job.point)
    # four groups of (configuration, seed) for two workers: whole, configuration 1 first
    assert [(j.point, j.seed, len(j.units)) for j in jobs] == [
        (1, 0, 2), (1, 1, 2), (0, 0, 2), (0, 1, 2),
    ]  # fmt: skip


def test_thread_policy(monkeypatch):
    monkeypatch.setattr("actbench.runtime.cpu_cores", lambda: 4)
    cpu = torch.device("cpu")
    assert plan_workers(4, cpu, 0, 0) == (4, 1)  # one single-threaded worker per core
    # one thread each, always: more would make a model's numbers depend on its company
    assert plan_workers(2, cpu, 0, 0) == (2, 1)
    assert plan_workers(1, cpu, 0, 0) == (1, 1)
    assert plan_workers(8, cpu, 0, 0) == (4, 1)
    assert plan_workers(8, cpu, 1, 0) == (1, 1)  # --workers 1
    assert plan_workers(8, cpu, 2, 3) == (2, 3)  # both given
    assert plan_workers(8, torch.device("cuda"), 0, 0)[0] == 1


def test_workers_give_the_same_rows_as_one_process(mnist_dir):
    config = make_config({"epochs": 2, "hidden": 16, "batch_size": 32})
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    activations = resolve_all(["relu", "tanh", "gelu"])
    alone, parallel = [], []
    steps = []
    train_lockstep(activations, data, config, seed=3, on_epoch=alone.extend)
    units = [Unit(3, i, a.label) for i, a in enumerate(activations)]
    jobs = plan_jobs(units, {}, set(), 2)
    train_in_workers(
        jobs, [data], [config], None, 2, threads=1,
        on_epoch=lambda job, rows: parallel.extend(rows),
        on_steps=lambda job, n: steps.append(n),
    )  # fmt: skip
    key = lambda r: (r.epoch, r.activation)  # noqa: E731
    assert sorted(map(key, parallel)) == sorted(map(key, alone))
    by_key = {key(r): r for r in parallel}
    for row in alone:
        other = by_key[key(row)]
        assert other.train_loss == pytest.approx(row.train_loss, rel=1e-5)
        assert other.test_accuracy == pytest.approx(row.test_accuracy, abs=1.5 / len(data.test_x))
    assert sum(steps) == 2 * 2 * 8  # 2 jobs x 2 epochs x 256/32 steps


def test_a_failing_worker_is_reported(mnist_dir, monkeypatch):
    config = make_config({"epochs": 1, "hidden": 8})
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))

    def boom(*args, **kwargs):
        raise ValueError("broken on purpose")

    monkeypatch.setattr("actbench.jobs.train_lockstep", boom)
    jobs = plan_jobs([Unit(0, 0, "relu"), Unit(0, 1, "tanh")], {}, set(), 2)
    with pytest.raises(RuntimeError, match="broken on purpose"):
        train_in_workers(jobs, [data], [config], None, 2, threads=1)


def test_progress_counts_every_step_of_the_plan(mnist_dir):
    config = make_config({"epochs": 2, "hidden": 8, "batch_size": 32})
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    units = [Unit(seed, i, name) for seed in (0, 1) for i, name in enumerate(["relu", "tanh"])]
    jobs = plan_jobs(units, {}, set(), 2)
    steps = []
    train_in_workers(
        jobs, [data], [config], None, 2, threads=1, on_steps=lambda job, n: steps.append((job, n))
    )
    # one job per seed: 2 epochs x 256/32 steps each, and each step said which job took it
    samples = [len(data.train_x)]
    assert sum(n for _, n in steps) == total_steps(jobs, [config], samples) == 2 * 2 * 8
    for number, job in enumerate(jobs):
        mine = sum(n for j, n in steps if j == number)
        assert mine == total_steps([job], [config], samples)


def test_timing_the_workers_start_starts_each_with_the_data_and_ends_it(
    mnist_dir, tmp_path, monkeypatch
):
    """What a dry run adds for the worker processes a run starts: each started as a run's
    are, handed the data, ready, and ended before the time is taken."""
    import os

    import actbench.parallel
    from actbench.parallel import time_worker_start

    original = actbench.parallel._ready

    def ready(index, data, threads, messages):  # notes what it got, then reports as it would
        torch.set_num_threads(threads)
        seen = f"{os.getpid()} {len(data[0].train_x)} {torch.get_num_threads()}"
        (tmp_path / f"worker-{index}").write_text(seen)
        original(index, data, threads, messages)

    monkeypatch.setattr(actbench.parallel, "_ready", ready)
    data = [prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))]
    readings = iter([3.0, 4.5])
    assert time_worker_start(data, 2, 1, clock=lambda: next(readings)) == 1.5
    seen = [(tmp_path / f"worker-{i}").read_text().split() for i in range(2)]
    assert {pid for pid, _, _ in seen} - {str(os.getpid())} == {pid for pid, _, _ in seen}
    assert len({pid for pid, _, _ in seen}) == 2  # two processes, not this one
    assert {(rows, threads) for _, rows, threads in seen} == {("256", "1")}


def test_a_worker_that_dies_before_it_is_ready_is_one_error(mnist_dir, monkeypatch):
    import os

    import actbench.parallel
    from actbench.errors import ActbenchError
    from actbench.parallel import time_worker_start

    monkeypatch.setattr(actbench.parallel, "_ready", lambda *args: os._exit(3))
    data = [prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))]
    with pytest.raises(ActbenchError, match=r"stopped unexpectedly \(exit code 3\)"):
        time_worker_start(data, 2, 1)
