"""Per-model checkpoints in a run folder: written atomically after every epoch, read safely."""

from __future__ import annotations

import io
import os
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

    def path(self, index: int, label: str, seed: int, previous: bool = False) -> Path:
        """Activation number `index` of the run (its label alone may not be a safe file name).

        `previous` names the generation before the latest, kept so that a run killed while
        saving a group of models can roll the ones already saved back to the others' epoch.
        """
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:40]
        return self.folder / f"{index:02d}-{slug}-seed{seed}{'.prev' if previous else ''}.pt"

    def save(self, index: int, state: ModelState) -> None:
        buffer = io.BytesIO()
        torch.save(state.to_dict(), buffer)
        path = self.path(index, state.activation, state.seed)
        if path.exists():  # the latest becomes the previous generation
            os.replace(path, self.path(index, state.activation, state.seed, previous=True))
        write_or_explain(path, buffer.getvalue(), resume_hint(self.folder.parent))

    def load(self, index: int, label: str, seed: int, previous: bool = False) -> ModelState | None:
        """The latest saved state (or the one before), or None when there is none.

        A model whose latest file is missing (a crash between the two steps of a save) falls
        back to the previous generation.
        """
        path = self.path(index, label, seed, previous)
        if not path.exists():
            return None if previous else self.load(index, label, seed, previous=True)
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

    def load_at(self, index: int, label: str, seed: int, epoch: int) -> ModelState:
        """The saved state of this model after `epoch`, from either generation."""
        for previous in (False, True):
            state = self.load(index, label, seed, previous)
            if state is not None and state.epoch == epoch:
                return state
        raise ActbenchError(
            f"no checkpoint of {label} (seed {seed}) after epoch {epoch} in {self.folder}; "
            "delete the checkpoints folder to train from the start"
        )
