"""Joining a Ray cluster (or starting a Ray here) for `actbench run --backend ray`, and what
a run asks of it: the device, the task slots, the share of a GPU per task.

Ray is imported only here and in `actbench.ray_backend` (and in a Ray worker, by
`actbench.ray_tasks`), and only when that backend is used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actbench.errors import ActbenchError, UsageError

if TYPE_CHECKING:  # torch is imported where a device is chosen: not to start Ray sooner
    import torch

CONNECT_SECONDS = 5  # how long to wait for a cluster's head to answer
ABANDON_SECONDS = 30.0  # how long a run that stops before training waits for Ray's start
UNREAD = "RAY_IGNORE_UNHANDLED_ERRORS"  # Ray's switch for its line about a task left unread
_unread_ours = threading.Event()  # set: UNREAD was set here on connecting, unset on leaving
INSTALL = "install it with: pip install 'actbench[ray]'"


@dataclass(frozen=True)
class Cluster:
    """The Ray cluster a run trains on, as it was when the run connected."""

    address: str  # the address given ('' for a Ray started on this machine)
    cpus: float
    gpus: float
    nodes: list[dict[str, Any]]  # the alive nodes: host, CPUs, GPUs, memory
    started_here: bool  # this process started (or connected to) Ray and so shuts it down
    head: str = ""  # the cluster's head (its GCS address) as Ray reports it, where it does

    def record(self) -> dict[str, Any]:
        """The manifest's entry: backend, address, resources and nodes."""
        return {
            "name": "ray",
            "address": self.address or "local",
            "head": self.head,
            "ray": _ray_version(),
            "resources": {"CPU": self.cpus, "GPU": self.gpus},
            "nodes": self.nodes,
        }


def _ray_version() -> str:
    import ray

    return ray.__version__


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--backend ray needs Ray, which is not installed; {INSTALL}") from None
    return ray


def _probe(address: str) -> None:
    """Fail within seconds where nothing answers at `address` ('host:port' or 'ray://...')."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"the Ray address {address!r} is not host:port, ray://host:port or auto; "
            "give the head node's address, e.g. --address 10.0.0.5:6379"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else err.strerror or str(err)
        raise ActbenchError(_unreachable(address, reason)) from None


def _unreachable(address: str, reason: str) -> str:
    return (
        f"cannot reach a Ray cluster at {address} ({reason}); start one with `ray start "
        "--head` and give its address, or run here with --backend local"
    )


def _refused(address: str, reason: str) -> str:
    """Something answers at `address` but Ray could not connect: often token authentication,
    which a Ray started with `ray start` may require (Ray 2.59 and later)."""
    return (
        f"cannot connect to the Ray cluster at {address} ({reason}); if its `ray start` said "
        "'Token authentication is enabled', set RAY_AUTH_MODE=token here, with the head's "
        "token (`ray get-auth-token` there) in RAY_AUTH_TOKEN; or run with --backend local"
    )


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Hold back what Ray's C++ core prints while it retries a connection (one line at most)."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables the user has not set, for the duration of the block."""
    added = [key for key in values if key not in os.environ]
    for key in added:
        os.environ[key] = values[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@dataclass
class _Connecting:
    """A connection `connect_soon` began: its outcome, and the thread that makes it."""

    outcome: Future[Cluster]
    thread: threading.Thread | None  # None: made in the calling thread


# connections begun by `connect_soon`, by address, for `connect` to take
_pending: dict[str | None, _Connecting] = {}
# set by `disconnect`: a thread that started a Ray may end. It must live until then: a Ray
# started on this machine ends with the thread that started it (its processes are started to
# be killed when their parent thread ends, so that none outlives its driver).
_released = threading.Event()
# clear while a connection's thread still calls Ray (its start, the workers' warm-up): Ray
# must not be left before, or the process ends at that thread's next call (Ray's own abort)
_settled = threading.Event()
_settled.set()


def connect_soon(address: str | None, tasks: int) -> None:
    """Begin `connect(address)` now, for `connect(address)` to take later.

    Starting a Ray on this machine (`address` None) takes seconds, and each of its workers'
    first import of torch and of the training code takes a second or two: both can go on
    while this process imports torch and reads its data set, so the start runs in the
    background. Joining a running cluster is quick, and is made here, in the calling thread
    (where Ray's own lines about a head that does not answer can be held back); the workers'
    imports then go on in the background all the same. Once connected, up to `tasks` workers
    (no more than the cluster's CPUs) are started on that import. Nothing is reported here:
    `connect` raises what went wrong (Ray not installed, no cluster at `address`), and
    `abandon_pending` leaves a connection no run took.
    """
    if address in _pending:
        return
    outcome: Future[Cluster] = Future()

    def work(hold: bool) -> None:
        try:
            try:
                cluster = _connect(address)
            except BaseException as err:  # raised again by `connect`, in the run's thread
                outcome.set_exception(err)
                return
            _released.clear()
            outcome.set_result(cluster)
            with contextlib.suppress(Exception):  # a failure here is the tasks' to report
                _warm_workers(min(tasks, int(cluster.cpus)))
        finally:
            _settled.set()
        if hold and cluster.started_here:
            _released.wait()

    _settled.clear()
    if address is not None:
        work(hold=False)
        _pending[address] = _Connecting(outcome, None)
        return
    thread = threading.Thread(target=work, args=(True,), name="actbench-ray-connect", daemon=True)
    _pending[address] = _Connecting(outcome, thread)
    thread.start()


def _warm_workers(count: int) -> None:
    """Start `count` Ray workers on importing the training code, without waiting for them."""
    import ray

    warm = ray.remote(num_cpus=1, max_retries=0)(_import_training)
    for _ in range(count):
        warm.remote()


def _import_training() -> None:
    """Run in a Ray worker: import what its first task needs (torch and actbench's training)."""
    import actbench.ray_tasks  # noqa: F401


def abandon_pending() -> None:
    """Wait for any connection `connect_soon` began that no run took, and leave it (a run that
    stopped on an error or an interrupt before it trained): a Ray it started stops, and so
    does its thread.

    Each wait lasts `ABANDON_SECONDS` at most, and another interrupt ends it at once: an
    interrupt can leave the start stuck for good (one that struck this thread inside an
    import can leave Python's import lock held, which the start then waits on). A start given
    up on ends with this process, as does the Ray it may have started.
    """
    while _pending:
        _, connecting = _pending.popitem()
        try:
            cluster = connecting.outcome.result(timeout=ABANDON_SECONDS)
        except Exception:  # failed (nothing to leave), or still starting: given up on
            continue
        with contextlib.suppress(Exception):
            disconnect(cluster)
        if connecting.thread is not None:
            connecting.thread.join(timeout=ABANDON_SECONDS)


@contextlib.contextmanager
def connecting(address: str | None, tasks: int) -> Iterator[None]:
    """`connect_soon(address, tasks)` for the block, and `abandon_pending()` at its end."""
    connect_soon(address, tasks)
    try:
        yield
    finally:
        abandon_pending()


def connect(address: str | None) -> Cluster:
    """Join the Ray cluster at `address` ('auto', 'host:port', 'ray://host:port'), or start a
    Ray on this machine (None: Ray's default, which also finds `RAY_ADDRESS`).

    A Ray this process is already connected to is used as it is; a connection `connect_soon`
    began is waited for. Returns what the cluster holds; raises ActbenchError (one line) where
    no cluster answers within seconds, and UsageError where Ray is not installed or the
    address is malformed.
    """
    connecting = _pending.pop(address, None)
    if connecting is not None:
        return connecting.outcome.result()
    return _connect(address)


def _connect(address: str | None) -> Cluster:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,  # a failing task is reported here, in one line
            "logging_level": logging.ERROR,
        }
        # ray.init installs its own SIGTERM handler (in the main thread; elsewhere it warns,
        # at a level below the one set here): the run's own way to stop must stay
        main = threading.current_thread() is threading.main_thread()
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            if address is None:
                ray.init(**options)
            else:
                if address != "auto":
                    _probe(address)
                # Ray waits 20 s (ray:// 30 s) for a head that does not answer, printing a
                # line a second: wait less, and quietly (from the main thread only: in the
                # background, the run's own lines must not be held back with Ray's)
                quiet = _quiet_stderr() if main else contextlib.nullcontext()
                with _environment(RAY_gcs_server_port_wait_time_s=str(CONNECT_SECONDS)), \
                        quiet:  # fmt: skip
                    ray.init(address=address, **options)
        except ConnectionError as err:
            reason = " ".join(str(err).split()).rstrip(".")
            if address not in (None, "auto") and os.environ.get("RAY_AUTH_MODE") != "token":
                raise ActbenchError(_refused(address, reason)) from None
            raise ActbenchError(_unreachable(address or "RAY_ADDRESS", reason)) from None
        except ValueError as err:
            if "Ray Client requires" not in str(err):
                raise
            raise UsageError(
                f"the address {address} needs Ray Client, which is not installed; install "
                "it with: pip install 'ray[client]' (or 'actbench[ray]')"
            ) from None
        finally:
            for signum, handler in handlers.items():
                if handler is not None:
                    signal.signal(signum, handler)
        started = True
        # a lost worker is this backend's to report (a retry in the manifest, or one error
        # line), not Ray's: its notices printed over the progress bars would garble them,
        # and so would its line for each task left unread (the workers' warm-up, a task
        # cancelled at a stop), which Ray prints unless this is set
        with contextlib.suppress(AttributeError):
            ray._private.worker._worker_logs_enabled = False
        if UNREAD not in os.environ:
            os.environ[UNREAD] = "1"
            _unread_ours.set()
    return _describe(ray, address or "", started)


def _describe(ray: Any, address: str, started: bool) -> Cluster:
    total = ray.cluster_resources()
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        held = node.get("Resources", {})
        nodes.append(
            {
                "host": node.get("NodeManagerHostname", ""),
                "address": node.get("NodeManagerAddress", ""),
                "CPU": held.get("CPU", 0.0),
                "GPU": held.get("GPU", 0.0),
                "memory_gb": round(held.get("memory", 0.0) / 2**30, 1),
            }
        )
    try:
        head = str(ray.get_runtime_context().gcs_address)
    except Exception:  # not known through every kind of connection (Ray Client)
        head = ""
    return Cluster(address, total.get("CPU", 0.0), total.get("GPU", 0.0), nodes, started, head)


def disconnect(cluster: Cluster) -> None:
    """Leave Ray if this process joined or started it (a Ray started here stops with it)."""
    if cluster.started_here:
        import ray

        # a Ray started in the background is left only once it is idle there
        _settled.wait(timeout=ABANDON_SECONDS)
        try:
            ray.shutdown()
        finally:
            _released.set()
        with contextlib.suppress(AttributeError):
            ray._private.worker._worker_logs_enabled = True
        if _unread_ours.is_set():
            os.environ.pop(UNREAD, None)
            _unread_ours.clear()


def choose_device(name: str, cluster: Cluster) -> torch.device:
    """The device the tasks train on: 'auto' is cuda where the cluster has GPUs, else cpu."""
    import torch

    where = f"the Ray cluster at {cluster.address}" if cluster.address else "this Ray"
    if name == "auto":
        return torch.device("cuda" if cluster.gpus else "cpu")
    if name == "cuda" and not cluster.gpus:
        raise UsageError(
            f"device cuda: {where} has no GPU ({cluster.cpus:g} CPUs); use --device cpu or auto"
        )
    if name == "mps":
        raise UsageError("device mps trains on this machine only; use --backend local")
    return torch.device(name)


def plan_workers(
    cluster: Cluster, models: int, device: torch.device, workers: int, threads: int
) -> tuple[int, int]:
    """Groups trained at a time (`workers`, 0: one per task slot of the cluster) and threads.

    A task takes `threads` CPUs (default one: the condition of bit-identical numbers); a
    thread count no node has is refused, since such a task would wait forever.
    """
    threads = threads or 1
    largest = max((n["CPU"] for n in cluster.nodes), default=0.0)
    if threads > largest:
        raise UsageError(
            f"threads {threads}: no node of the Ray cluster has {threads} CPUs (the largest "
            f"has {largest:g}); use --threads {max(1, int(largest))} or fewer"
        )
    if device.type == "cuda" and not any(n["GPU"] for n in cluster.nodes if n["CPU"] >= threads):
        raise UsageError(
            f"no node of the Ray cluster has both a GPU and {threads} CPUs; use --device cpu"
        )
    slots = max(1, int(cluster.cpus // threads))
    return min(workers or slots, models), threads


def gpu_share(cluster: Cluster, threads: int) -> float:
    """The share of a GPU each task asks for: a node's GPUs over its task slots, on the node
    with the fewest GPUs per slot, so that every slot of every GPU node can hold a task."""
    shares = [n["GPU"] * threads / n["CPU"] for n in cluster.nodes if n["GPU"] and n["CPU"]]
    share = min(1.0, min(shares, default=1.0))
    return max(1e-4, math.floor(share * 1e4) / 1e4)  # Ray counts resources in 1/10,000ths
