"""Per-model checkpoints in a run folder: written atomically after every epoch, read safely."""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path

import torch

from actbench.errors import ActbenchError
from actbench.results import resume_hint, write_or_explain
from actbench.train import ModelState

FOLDER = "checkpoints"


class CheckpointStore:
    """One file per (activation, seed) under `run_dir/checkpoints`, holding its latest epoch.

    Files hold tensors and plain containers only and are loaded with `weights_only=True`, so
    opening a checkpoint never runs code from it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.folder = Path(run_dir) / FOLDER

    def path(self, index: int, label: str, seed: int) -> Path:
        """Activation number `index` of the run (its label alone may not be a safe file name)."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:40]
        return self.folder / f"{index:02d}-{slug}-seed{seed}.pt"

    def save(self, index: int, state: ModelState) -> None:
        buffer = io.BytesIO()
        torch.save(state.to_dict(), buffer)
        path = self.path(index, state.activation, state.seed)
        write_or_explain(path, buffer.getvalue(), resume_hint(self.folder.parent))

    def load(self, index: int, label: str, seed: int) -> ModelState | None:
        """The saved state, or None when this model has no checkpoint yet."""
        path = self.path(index, label, seed)
        if not path.exists():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            state = ModelState.from_dict(data)
        except (
            pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, KeyError,
            TypeError, ValueError,
        ) as err:  # fmt: skip
            reason = " ".join(str(err).split())[:120]
            raise ActbenchError(
                f"checkpoint {path} is unreadable ({reason}); delete it to retrain that model "
                "from the start"
            ) from None
        if state.activation != label or state.seed != seed:
            raise ActbenchError(f"checkpoint {path} belongs to another model; delete it")
        return state
