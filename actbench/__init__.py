"""actbench: compare neural-network activation functions on MNIST."""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from actbench.config import RunConfig, load_config
from actbench.errors import ActbenchError, UsageError

try:
    __version__ = version("actbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from actbench.experiment import RunResult, resume_experiment, run_experiment
    from actbench.results import load_runs

# These need torch and pandas: they load on first use, so that `import actbench` (and the
# command line's --help) stays quick.
_LAZY = {
    "RunResult": "actbench.experiment",
    "resume_experiment": "actbench.experiment",
    "run_experiment": "actbench.experiment",
    "load_runs": "actbench.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'actbench' has no attribute {name!r}")


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
