"""actbench: compare neural-network activation functions on MNIST."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("actbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from actbench.config import RunConfig, load_config
from actbench.errors import ActbenchError, UsageError
from actbench.experiment import RunResult, resume_experiment, run_experiment
from actbench.results import load_runs

__all__ = [
    "ActbenchError",
    "RunConfig",
    "RunResult",
    "UsageError",
    "__version__",
    "load_config",
    "load_runs",
    "resume_experiment",
    "run_experiment",
]
