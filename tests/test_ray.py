"""The Ray backend: the same study on a real (local) Ray as on the local workers, number for
number; a worker lost mid-group costs one retried epoch and nothing else; failures, an
unreachable cluster and a missing GPU are one line each.

One Ray per module (two CPUs), started by a fixture with a fault hook in every worker
(`ray_faults`): a test names the task whose worker must die, so no test depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_interrupt import start_run, wait_for_epochs
from typer.testing import CliRunner

from actbench.cli import app, retry_line
from actbench.config import load_config, make_config
from actbench.errors import UsageError
from actbench.experiment import Hooks, resume_experiment, run_experiment
from actbench.results import read_metrics

try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(
    ray is None, reason="Ray is not installed (pip install 'actbench[ray]')"
)
runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray on this machine with two CPUs; returns the path of its fault file."""
    faults = tmp_path_factory.mktemp("faults") / "fault.json"
    paths = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={
        "env_vars": {"ACTBENCH_TEST_RAY_FAULTS": str(faults),
                     "PYTHONPATH": os.pathsep.join(p for p in paths if p)},
        "worker_process_setup_hook": "ray_faults.install",
    })  # fmt: skip
    yield faults
    ray.shutdown()


def fault(path: Path, markers: Path, times: int = 1, **task) -> None:
    """Make the worker that takes `task` (seed, epoch, hidden, lr) die, `times` times; each
    death leaves a file markers/fired.N."""
    marker = str(markers / "fired")
    path.write_text(json.dumps({**task, "times": times, "marker": marker}))


def study(mnist_dir, results, **extra):
    values = {"activations": "relu,tanh", "hidden": "8,12", "lr": "0.001,0.01", "seeds": 2,
              "batch_size": 16, "epochs": 2, "data_dir": str(mnist_dir),
              "results_dir": str(results), **extra}  # fmt: skip
    return load_config(None, **values)


def without_times(frame):
    return frame.drop(columns=["epoch_seconds"]).reset_index(drop=True)


def csv(run_dir):
    return without_times(read_metrics(run_dir / "metrics.csv"))


def manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def local_study(tmp_path_factory):
    """The study trained by the local backend: the numbers every Ray run must give."""
    from conftest import write_mnist

    folder = tmp_path_factory.mktemp("local")
    data = write_mnist(folder / "data", gz=True)
    return data, run_experiment(study(data, folder / "results", workers=2)).run_dir


@needs_ray
def test_a_study_on_ray_gives_the_local_csv_number_for_number(
    cluster, local_study, tmp_path, monkeypatch
):
    import actbench.cost

    def not_here(*args, **kwargs):
        raise AssertionError("the cost of a run on Ray is measured where it trained")

    monkeypatch.setattr(actbench.cost, "measure_config_cost", not_here)  # in this process only
    data, local = local_study
    steps = []
    hooks = Hooks(on_steps=lambda group, n: steps.append((group.job, n)))
    config = study(data, tmp_path, backend="ray")
    result = run_experiment(config, hooks)
    pd.testing.assert_frame_equal(csv(result.run_dir), csv(local), check_exact=True)
    record = manifest(result.run_dir)
    assert record["status"] == "completed" and record["retries"] == []
    assert record["backend"]["name"] == "ray"
    host, _, port = record["backend"]["head"].rpartition(":")  # the head Ray reports
    assert host and port.isdigit()
    assert record["backend"]["resources"]["CPU"] == 2
    assert [n["CPU"] for n in record["backend"]["nodes"]] == [2]
    assert record["backend"]["tasks"] == 4 * 2 * 2  # configurations x seeds x epochs
    assert record["config"]["backend"] == "ray"
    # progress: every step of every group, each once (256 samples / batch 16 = 16 per epoch)
    assert sum(n for _, n in steps) == 4 * 2 * 2 * 16
    for job in {j for j, _ in steps}:
        assert sum(n for j, n in steps if j == job) == 2 * 16
    # the checkpoints came back here: one per model, each after its last epoch
    assert len(list((result.run_dir / "checkpoints").glob("*-seed[01].pt"))) == 16
    # the activations' cost, measured in a Ray task on the device the models trained on
    cost = pd.read_csv(result.run_dir / "cost.csv")
    assert set(cost["activation"]) == {"relu", "tanh"} and set(cost["device"]) == {"cpu"}
    assert set(cost["hidden"]) == {8} and set(cost["batch_size"]) == {16}


@needs_ray
def test_a_worker_lost_mid_group_costs_one_retried_epoch(cluster, local_study, tmp_path):
    data, local = local_study
    fault(cluster, tmp_path, seed=1, epoch=2, hidden=12, lr=0.01)
    told = []
    result = run_experiment(study(data, tmp_path / "r", backend="ray"), Hooks(on_retry=told.append))
    assert (tmp_path / "fired.0").exists()  # the worker did die
    pd.testing.assert_frame_equal(csv(result.run_dir), csv(local), check_exact=True)
    record = manifest(result.run_dir)
    assert record["status"] == "completed"
    (retry,) = record["retries"]
    assert {k: retry[k] for k in ("activations", "hidden", "lr", "seed", "epoch", "attempt")} == {
        "activations": ["relu", "tanh"], "hidden": 12, "lr": 0.01, "seed": 1, "epoch": 2,
        "attempt": 2,
    }  # fmt: skip
    assert retry["cause"].startswith("WorkerCrashedError")
    assert record["backend"]["tasks"] == 4 * 2 * 2  # the lost task is not counted as done
    assert told == [retry]  # said as it happened, too
    assert retry_line(retry) == (
        "Ray lost the worker training relu, tanh (seed 1, hidden=12 lr=0.01): epoch 2 runs "
        f"again from the last saved one, attempt 2 of 3 ({retry['cause']})"
    )


@needs_ray
@pytest.mark.parametrize("activations", ["relu,identity,tanh", "identity"])
def test_a_diverging_model_stops_alone_on_ray_as_it_does_here(
    cluster, mnist_dir, tmp_path, activations
):
    """Plain SGD at a huge learning rate: the linear control diverges in epoch 1 and stops;
    the others of its group train on (none are left where it trains alone)."""
    values = {"activations": activations, "optimizer": "sgd", "lr": 100.0, "epochs": 3,
              "hidden": 8, "workers": 1, "data_dir": str(mnist_dir)}  # fmt: skip
    steps = []
    hooks = Hooks(on_steps=lambda group, n: steps.append(n))
    ray_run = run_experiment(
        make_config({**values, "backend": "ray", "results_dir": str(tmp_path / "ray")}), hooks
    )
    here = run_experiment(make_config({**values, "results_dir": str(tmp_path / "local")}))
    pd.testing.assert_frame_equal(csv(ray_run.run_dir), csv(here.run_dir), check_exact=True)
    assert manifest(ray_run.run_dir)["diverged"] == [
        {"activation": "identity", "seed": 0, "epoch": 1}
    ]
    assert sum(steps) == 3 * 256 // 64  # every step of the plan shown, those never taken too
    assert ray_run.manifest["backend"]["tasks"] == (3 if "," in activations else 1)


@needs_ray
def test_a_group_that_keeps_failing_stops_the_run_with_one_line(cluster, mnist_dir, tmp_path):
    fault(cluster, tmp_path, times=3, seed=0, epoch=2, hidden=8, lr=0.001)
    args = ["run", "-a", "relu", "--hidden", "8", "--batch-size", "16", "--epochs", "3",
            "--backend", "ray", "--data-dir", str(mnist_dir), "--results-dir",
            str(tmp_path / "r")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "training the group relu (seed 0) on Ray failed 3 times at epoch 2 " in line
    assert "WorkerCrashedError" in line and "continue with actbench run --resume" in line
    assert sorted(p.name for p in tmp_path.glob("fired.*")) == ["fired.0", "fired.1", "fired.2"]
    (run_dir,) = (tmp_path / "r").iterdir()
    record = manifest(run_dir)
    assert record["status"] == "failed"
    assert [r["attempt"] for r in record["retries"]] == [2, 3]
    # the epoch before the failures is kept, and the run resumes from it, on Ray again (the
    # fault has had its three crashes), to the numbers of a run never disturbed
    assert read_metrics(run_dir / "metrics.csv")["epoch"].tolist() == [1]
    resumed = resume_experiment(run_dir, {"backend": "ray"})
    assert resumed.manifest["resumed"][0]["backend"]["tasks"] == 2  # epochs 2 and 3
    whole = run_experiment(make_config({"activations": "relu", "hidden": 8, "batch_size": 16,
                                        "epochs": 3, "data_dir": str(mnist_dir),
                                        "results_dir": str(tmp_path / "whole")}))  # fmt: skip
    pd.testing.assert_frame_equal(csv(run_dir), csv(whole.run_dir), check_exact=True)


@needs_ray
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "cuda"], "device cuda: this Ray has no GPU (2 CPUs); use --device cpu or auto"),
        (["--threads", "4"], "threads 4: no node of the Ray cluster has 4 CPUs (the largest has "
         "2); use --threads 2 or fewer"),
    ],
)  # fmt: skip
def test_what_the_cluster_lacks_is_one_line_before_anything_is_written(
    cluster, mnist_dir, tmp_path, flags, message
):
    args = ["run", "-a", "relu", "--epochs", "1", "--backend", "ray", *flags,
            "--data-dir", str(mnist_dir), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"Error: {message}"
    assert not (tmp_path / "r").exists()


@needs_ray
def test_ctrl_c_stops_a_ray_study_and_it_resumes_on_the_local_backend(
    cluster, mnist_dir, tmp_path, monkeypatch
):
    # the run starts a Ray of its own, whatever other Ray runs on this machine
    monkeypatch.setenv("RAY_ADDRESS", "local")
    proc = start_run(mnist_dir, tmp_path / "a", 0, extra=["--batch-size", "16", "--backend",
                     "ray"])  # fmt: skip
    run_dir = wait_for_epochs(tmp_path / "a", 6, proc).parent
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"Interrupted; finished epochs are kept in {run_dir}" in stderr
    assert manifest(run_dir)["status"] == "interrupted"
    stopped = pd.read_csv(run_dir / "metrics.csv")
    epochs = int(stopped["epoch"].max()) + 2
    result = runner.invoke(app, ["run", "--resume", str(run_dir), "--epochs", str(epochs),
                                 "--backend", "local"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = manifest(run_dir)
    assert record["status"] == "completed"
    assert record["backend"]["name"] == "ray" and record["resumed"][0]["backend"]["name"] == "local"
    whole = run_experiment(make_config({"activations": "relu,tanh,sigmoid", "hidden": 8,
                                        "batch_size": 16, "epochs": epochs,
                                        "data_dir": str(mnist_dir),
                                        "results_dir": str(tmp_path / "b")}))  # fmt: skip
    pd.testing.assert_frame_equal(csv(run_dir), csv(whole.run_dir), check_exact=True)
    kept = stopped.merge(pd.read_csv(run_dir / "metrics.csv"), how="left", indicator=True)
    assert (kept["_merge"] == "both").all()


@needs_ray
def test_an_unreachable_cluster_is_one_line_and_writes_nothing(mnist_dir, tmp_path):
    command = [sys.executable, "-m", "actbench", "run", "-a", "relu", "--epochs", "1",
               "--backend", "ray", "--address", "10.255.255.1:6379", "--data-dir",
               str(mnist_dir), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: cannot reach a Ray cluster at 10.255.255.1:6379 (")
    assert line.endswith("or run here with --backend local")
    assert not (tmp_path / "r").exists()


@needs_ray
@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (ConnectionError("Failed to connect to Ray cluster at {address}."),
         "Error: cannot connect to the Ray cluster at {address} (Failed to connect to Ray "
         "cluster at {address}); if its `ray start` said 'Token authentication is enabled', set "
         "RAY_AUTH_MODE=token here, with the head's token (`ray get-auth-token` there) in "
         "RAY_AUTH_TOKEN; or run with --backend local"),
        (ValueError("Ray Client requires pip package `ray[client]`."),
         "Error: the address {address} needs Ray Client, which is not installed; install it "
         "with: pip install 'ray[client]' (or 'actbench[ray]')"),
    ],
)  # fmt: skip
def test_a_cluster_that_answers_but_refuses_is_one_line_naming_the_fix(
    raised, line, mnist_dir, tmp_path, monkeypatch
):
    """Ray's own failures where something listens at the address: token authentication (which
    `ray start` may require) and Ray Client missing for a ray:// address, as Ray raises them."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # answers, as a cluster's head would
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    if isinstance(raised, ValueError):
        address = f"ray://{address}"
    raised = type(raised)(str(raised.args[0]).format(address=address))

    def refuse(*args, **kwargs):
        raise raised

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    args = ["run", "-a", "relu", "--backend", "ray", "--address", address, "--data-dir",
            str(mnist_dir), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    with listener:
        result = runner.invoke(app, args)
    assert result.exit_code == (1 if isinstance(raised, ConnectionError) else 2), result.output
    assert result.output.strip() == line.format(address=address)
    assert not (tmp_path / "r").exists()


def test_without_ray_the_ray_backend_names_the_install(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    args = ["run", "-a", "relu", "--backend", "ray", "--data-dir", str(mnist_dir),
            "--results-dir", str(tmp_path / "r")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "Error: --backend ray needs Ray, which is not installed; install it with: "
        "pip install 'actbench[ray]'"
    )
    assert not (tmp_path / "r").exists()


def test_the_local_backend_never_imports_ray(mnist_dir, tmp_path):
    script = (
        "import sys\n"
        "from actbench.config import make_config\n"
        "from actbench.experiment import run_experiment\n"
        f"run_experiment(make_config({{'activations': 'relu', 'epochs': 1, 'hidden': 8,"
        f" 'data_dir': {str(mnist_dir)!r}, 'results_dir': {str(tmp_path)!r}}}))\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', "
        "'actbench.ray'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"address": "auto"}, "address auto is a Ray cluster's, and backend is local: add "
         "--backend ray or drop --address"),
        ({"backend": "dask"}, "backend must be one of local, ray, got 'dask'"),
        ({"backend": "ray", "address": " "}, "address is empty"),
    ],
)  # fmt: skip
def test_backend_settings_are_checked(values, message):
    with pytest.raises(UsageError) as caught:
        make_config(values)
    assert message in str(caught.value)


def test_the_backend_does_not_change_what_a_run_is(mnist_dir, tmp_path):
    """A run may resume on either backend: neither setting is one of the results'."""
    from actbench.experiment import RESULT_KEYS

    assert "backend" not in RESULT_KEYS and "address" not in RESULT_KEYS
    config = make_config({"backend": "ray", "address": "ray://head:10001"})
    assert make_config(config.to_dict()) == config  # the manifest reads back to it


def test_a_task_asks_for_the_gpu_share_that_fills_every_gpu_node():
    from actbench.ray_cluster import Cluster, gpu_share

    nodes = [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 2.0}, {"CPU": 32.0, "GPU": 0.0}]
    cluster = Cluster("head:6379", 56.0, 3.0, nodes, False)
    assert gpu_share(cluster, 1) == 1 / 16  # 16 tasks on the first node's one GPU
    assert gpu_share(cluster, 2) == 1 / 8
    assert gpu_share(Cluster("", 3.0, 1.0, [{"CPU": 3.0, "GPU": 1.0}], False), 1) == 0.3333


class FakeRay:
    """Stands in for joining Ray (`ray_cluster._connect`), its workers' warm-up and its
    shutdown, recording what the run asked of each."""

    def __init__(self, monkeypatch, started_here: bool = True, error: Exception | None = None):
        import actbench.ray_cluster as ray_cluster

        self.joined: list[str | None] = []
        self.warmed: list[int] = []
        self.shut = 0
        self.cluster = ray_cluster.Cluster("", 2.0, 0.0, [{"CPU": 2.0, "GPU": 0.0}], started_here)

        def connect(address):
            self.joined.append(address)
            if error is not None:
                raise error
            return self.cluster

        monkeypatch.setattr(ray_cluster, "_connect", connect)
        monkeypatch.setattr(ray_cluster, "_warm_workers", self.warmed.append)
        if ray is not None:
            monkeypatch.setattr(ray, "shutdown", lambda: setattr(self, "shut", self.shut + 1))


def connecting_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "actbench-ray-connect"]


@needs_ray
def test_a_connection_begun_early_is_the_one_the_run_takes(monkeypatch):
    from actbench import ray_cluster

    fake = FakeRay(monkeypatch)
    ray_cluster.connect_soon(None, 5)
    assert ray_cluster.connect(None) is fake.cluster
    assert fake.joined == [None]  # started once, in the background
    ray_cluster.disconnect(fake.cluster)
    for thread in connecting_threads():
        thread.join()
    assert fake.warmed == [2]  # as many workers as the cluster has CPUs, not 5
    assert fake.shut == 1


@needs_ray
def test_an_early_connection_s_error_is_raised_by_the_run(monkeypatch):
    from actbench import ray_cluster
    from actbench.errors import ActbenchError

    for address in (None, "auto"):  # started in the background, or joined at once
        FakeRay(monkeypatch, error=ActbenchError(f"cannot reach a Ray cluster at {address}"))
        ray_cluster.connect_soon(address, 1)
        with pytest.raises(ActbenchError, match=f"cannot reach a Ray cluster at {address}"):
            ray_cluster.connect(address)


@needs_ray
def test_a_ray_run_that_fails_before_training_stops_the_ray_it_began(monkeypatch, tmp_path):
    fake = FakeRay(monkeypatch)
    (tmp_path / "empty").mkdir()
    args = ["run", "-a", "relu", "--epochs", "1", "--backend", "ray", "--no-download",
            "--data-dir", str(tmp_path / "empty"), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ") and "MNIST" in line, line
    assert fake.joined == [None]  # Ray was begun at once, while the data were looked for
    assert fake.shut == 1 and not connecting_threads()  # ... and left before the error line
    assert not (tmp_path / "r").exists()


@needs_ray
def test_a_run_stopped_while_its_ray_starts_leaves_ray_once_the_start_is_over():
    """A run stopped (Ctrl-C, an error) while the Ray it started in the background still warms
    its workers up leaves Ray only after that: left before, Ray's next call from the warm-up
    ended the process, or started a second Ray. The warm-up here waits (up to 5 s) for Ray to
    be left, so that nothing depends on timing: it comes after only where it is waited for."""
    code = """
import threading
import ray
from actbench import ray_cluster
left = threading.Event()
shutdown, warm = ray.shutdown, ray_cluster._warm_workers
def shutdown_then_say():
    shutdown()
    left.set()
def late_warm(count):
    left.wait(timeout=5)
    warm(count)
ray.shutdown, ray_cluster._warm_workers = shutdown_then_say, late_warm
ray_cluster.connect_soon(None, 2)
ray_cluster.abandon_pending()
print("still connected:", ray.is_initialized())
"""
    env = {**os.environ, "RAY_ADDRESS": "local"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.splitlines()[-1] == "still connected: False"


def test_a_ray_start_that_never_ends_is_given_up_on(monkeypatch):
    """An interrupt can leave Ray's start stuck for good (inside an import whose lock the
    interrupted thread held): a run stopping before it trained waits for it a bounded time."""
    import threading
    from concurrent.futures import Future

    from actbench import ray_cluster

    monkeypatch.setattr(ray_cluster, "ABANDON_SECONDS", 0.05)
    stuck = threading.Event()
    start = threading.Thread(target=stuck.wait, daemon=True)  # a start that never ends
    start.start()
    monkeypatch.setitem(ray_cluster._pending, "head:6379",
                        ray_cluster._Connecting(Future(), start))  # fmt: skip
    stopping = threading.Thread(target=ray_cluster.abandon_pending, daemon=True)
    stopping.start()
    stopping.join(timeout=120)  # far beyond the wait it is given; without a bound: forever
    finished = not stopping.is_alive()
    stuck.set()
    assert finished and "head:6379" not in ray_cluster._pending
