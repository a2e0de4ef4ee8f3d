"""A model's numbers depend only on its own settings and seed, never on its company.

The same model (activation, seed, settings) is trained alone and in several different runs:
with other activations before and after it, with activations that need autograd (which run
model by model beside torch's kernels for the others), with other seeds, in one process and
in two. Every metric column of its rows must be bit for bit the same; only the times may
differ.
"""

from __future__ import annotations

import pandas as pd
import pytest

from actbench.config import make_config
from actbench.experiment import run_experiment

TIMES = ["epoch_seconds"]  # the only columns allowed to differ


def rows_of(mnist_dir, tmp_path, name, activations, seeds, workers, settings, who="leaky"):
    config = make_config(
        {"activations": activations, "seed": seeds, "workers": workers, "epochs": 2,
         "subset": 200, "data_dir": str(mnist_dir), "results_dir": str(tmp_path / name),
         **settings}
    )  # fmt: skip
    frame = run_experiment(config).metrics
    mine = frame[(frame["activation"] == who) & (frame["seed"] == 3)]
    return mine.drop(columns=TIMES).sort_values("epoch").reset_index(drop=True)


# odd widths and batch sizes (a short last batch too) leave partial vectors everywhere
SETTINGS = [
    {"hidden": 13, "batch_size": 24, "optimizer": "adam", "lr": 3e-3, "val": 40},
    {"hidden": 16, "batch_size": 37, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    {"hidden": 11, "batch_size": 29, "depth": 3, "init": "auto", "lr": 3e-3},
]

COMPANIES = [
    ("classic four, two workers", ["relu", "sigmoid", "tanh", "leaky"], [3], 2),
    ("first of two, one worker", ["leaky", "relu"], [3], 1),
    ("beside autograd activations", ["prelu", "leaky", "softmax"], [3], 1),
    ("with another seed, two workers", ["tanh", "leaky"], [2, 3], 2),
    ("two seeds, one worker", ["leaky", "sigmoid", "gelu"], [3, 7], 1),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=["adam", "sgd", "depth 3"])
def test_a_model_gives_the_same_rows_in_any_company(mnist_dir, tmp_path, settings):
    alone = rows_of(mnist_dir, tmp_path, "alone", ["leaky"], [3], 1, settings)
    assert len(alone) == 2 and alone["train_loss"].notna().all()
    assert alone["val_loss"].notna().all() == ("val" in settings)
    for i, (label, activations, seeds, workers) in enumerate(COMPANIES):
        together = rows_of(mnist_dir, tmp_path, f"c{i}", activations, seeds, workers, settings)
        try:
            pd.testing.assert_frame_equal(together, alone, check_exact=True)
        except AssertionError as err:
            raise AssertionError(f"leaky seed 3 {label} differs from leaky alone: {err}") from None


@pytest.mark.parametrize("who", ["prelu", "softmax"])
def test_an_autograd_model_gives_the_same_rows_beside_built_in_ones(mnist_dir, tmp_path, who):
    settings = {**SETTINGS[2], "val": 40}  # depth 3: an autograd layer between kernel layers
    alone = rows_of(mnist_dir, tmp_path, "alone", [who], [3], 1, settings, who)
    assert len(alone) == 2 and alone["train_loss"].notna().all()
    company = ["relu", "prelu", "gelu", "softmax", "leaky"]
    together = rows_of(mnist_dir, tmp_path, "mixed", company, [3], 1, settings, who)
    pd.testing.assert_frame_equal(together, alone, check_exact=True)
