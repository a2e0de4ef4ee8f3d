"""Where Ray tasks post how far their epoch is, for the progress bars of `--backend ray`.

A Ray actor of its own module, which imports nothing heavy: starting it costs its process no
torch import, on a machine whose cores are busy starting the training workers.
"""

from __future__ import annotations


class Board:
    """Each job's furthest (epoch, steps taken in that epoch) posted since the last `take`."""

    def __init__(self) -> None:
        self.progress: dict[int, tuple[int, int]] = {}

    def add(self, job: int, epoch: int, steps: int) -> None:
        self.progress[job] = max(self.progress.get(job, (0, 0)), (epoch, steps))

    def take(self) -> dict[int, tuple[int, int]]:
        taken, self.progress = self.progress, {}
        return taken
