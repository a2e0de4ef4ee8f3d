"""Choosing the models a report uses: each model once, incomplete runs said, one epoch compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from runfolders import write_run

from actbench.results import RunFolder, find_runs
from actbench.selection import (
    data_shape,
    group_runs,
    identity,
    init_schemes,
    init_words,
    network_name,
    select_models,
)
from actbench.summary import compare, rows_at, summarize

DAY1, DAY2, DAY3 = (f"2026-01-0{d}T10:00:00+00:00" for d in (1, 2, 3))


def select(*paths):
    return select_models(find_runs(list(paths)))


def test_two_identical_one_seed_runs_count_once_from_the_newest(tmp_path):
    # the newer run sorts first by name: the start time decides, not the name
    write_run(tmp_path / "r" / "run-b", started=DAY1, seconds=1.0, accuracy=lambda i, s, e: 0.90)
    write_run(tmp_path / "r" / "run-a", started=DAY2, seconds=3.0, accuracy=lambda i, s, e: 0.92)
    selection = select(tmp_path / "r")
    assert [run.name for run in selection.runs] == ["run-a"]
    assert selection.notes == [
        "Left out as repeats: relu seed 0 and tanh seed 0 from `run-b`; the same models are "
        "used from `run-a` (newer)."
    ]
    assert len(selection.frame) == 2 * 3 and set(selection.frame["run"]) == {"run-a"}
    summary = summarize(selection.frame, "label", selection.epoch).set_index("label")
    # the newer run's numbers, not a blend of the two runs (0.91 accuracy, 2.0 s)
    assert summary.loc["relu", "test_accuracy"] == pytest.approx(0.92)
    assert summary.loc["relu", "seconds_per_epoch"] == pytest.approx(3.0)
    assert summary.loc["relu", "seeds"] == 1


def test_identical_copies_of_a_run_are_said_to_be_identical(tmp_path):
    """A run folder copied: the same start time and the same rows; neither is newer."""
    write_run(tmp_path / "r" / "run-a", started=DAY1)
    shutil.copytree(tmp_path / "r" / "run-a", tmp_path / "r" / "run-a-copy")
    selection = select(tmp_path / "r")
    assert [run.name for run in selection.runs] == ["run-a-copy"]
    assert selection.notes == [
        "Left out as repeats: relu seed 0 and tanh seed 0 from `run-a`; the same models are "
        "used from `run-a-copy` (identical copies, row for row; the one last by name is used)."
    ]


def test_runs_started_at_the_same_time_with_other_rows_are_not_called_newer(tmp_path):
    write_run(tmp_path / "r" / "run-a", started=DAY1)
    write_run(tmp_path / "r" / "run-b", started=DAY1, seconds=2.0)
    assert select(tmp_path / "r").notes == [
        "Left out as repeats: relu seed 0 and tanh seed 0 from `run-a`; the same models are "
        "used from `run-b` (started at the same time; the one last by name is used)."
    ]


def test_without_start_times_the_later_folder_name_is_newer(tmp_path):
    write_run(tmp_path / "run-20260101-100000", started="")
    write_run(tmp_path / "run-20260102-100000", started="")
    selection = select(tmp_path)
    assert [run.name for run in selection.runs] == ["run-20260102-100000"]


def test_a_two_seed_run_next_to_an_earlier_one_seed_run(tmp_path):
    write_run(tmp_path / "run-1", seeds=(0,), started=DAY1, accuracy=lambda i, s, e: 0.5)
    write_run(tmp_path / "run-2", seeds=(0, 1), started=DAY2)
    selection = select(tmp_path / "run-1", tmp_path / "run-2")
    assert selection.seeds() == {"relu": 2, "tanh": 2}
    assert selection.notes == [
        "Left out as repeats: relu seed 0 and tanh seed 0 from `run-1`; the same models are "
        "used from `run-2` (newer)."
    ]
    summary = summarize(selection.frame, "label", selection.epoch).set_index("label")
    # relu at epoch 3: seeds 0 and 1 of run-2 only, 0.830 and 0.831 (run-1's 0.5 left out)
    assert summary.loc["relu", "test_accuracy"] == pytest.approx(0.8305)
    assert compare(selection.frame, "relu", "label").loc[0, "seeds"] == 2


def test_a_complete_model_is_preferred_to_a_newer_incomplete_one(tmp_path):
    write_run(tmp_path / "old", epochs=3, started=DAY1)
    write_run(tmp_path / "new", epochs=3, started=DAY2, status="interrupted",
              reached={("relu", 0): 1, ("tanh", 0): 1})  # fmt: skip
    selection = select(tmp_path)
    assert [run.name for run in selection.runs] == ["old"]
    assert selection.epoch == 3 and selection.final
    assert selection.notes == [
        "Left out as repeats: relu seed 0 and tanh seed 0 from `new`; the same models are used "
        "from `old` (complete there)."
    ]


def test_an_interrupted_three_seed_run(tmp_path):
    # --seeds 3 --epochs 10, interrupted: seed 0 stopped at epoch 8, seed 1 reached 10 for
    # relu only (tanh and sigmoid never started it), seed 2 stopped at epoch 4
    reached = {(a, 0): 8 for a in ("relu", "tanh", "sigmoid")}
    reached.update({(a, 2): 4 for a in ("relu", "tanh", "sigmoid")})
    reached.update({("tanh", 1): 0, ("sigmoid", 1): 0})
    write_run(tmp_path / "run", activations=("relu", "tanh", "sigmoid"), seeds=(0, 1, 2),
              epochs=10, reached=reached, status="interrupted")  # fmt: skip
    selection = select(tmp_path / "run")
    assert selection.notes == [
        "Incomplete: `run` (interrupted, 10 epochs planned): seed 0 of relu, tanh and sigmoid "
        "stopped at epoch 8; seed 2 of relu, tanh and sigmoid stopped at epoch 4; seed 1 of "
        "tanh and sigmoid never started."
    ]
    assert selection.epoch == 4 and not selection.final
    assert selection.epoch_sentence() == (
        "Compared at epoch 4, the last epoch every model reached (epochs planned: 10): "
        "not a final result."
    )
    assert selection.seeds() == {"relu": 3, "tanh": 2, "sigmoid": 2}
    summary = summarize(selection.frame, "label", selection.epoch).set_index("label")
    # relu at epoch 4, seeds 0, 1, 2: 0.840, 0.841, 0.842 (not each seed's own last epoch)
    assert summary.loc["relu", "test_accuracy"] == pytest.approx(0.841)
    assert summary.loc["tanh", "seeds"] == 2 and summary.loc["tanh", "epoch"] == 4
    pairs = compare(selection.frame, "relu", "label", selection.epoch).set_index("label")
    assert pairs.loc["tanh", "seeds"] == 2  # seeds 0 and 2, the ones both have


def test_a_one_seed_run_stopped_early_is_not_final(tmp_path):
    write_run(tmp_path / "run", epochs=40, reached={("relu", 0): 15, ("tanh", 0): 15},
              status="interrupted")  # fmt: skip
    selection = select(tmp_path / "run")
    assert selection.epoch == 15 and not selection.final
    assert selection.notes == [
        "Incomplete: `run` (interrupted, 40 epochs planned): seed 0 of relu and tanh stopped "
        "at epoch 15."
    ]


def test_a_diverged_model_is_complete_and_said_apart(tmp_path):
    write_run(tmp_path / "run", seeds=(0, 1), epochs=3, diverged={("tanh", 1): 2})
    selection = select(tmp_path / "run")
    assert selection.epoch == 3 and selection.final  # divergence does not hold the others back
    assert selection.notes == [
        "tanh seed 1 diverged in epoch 2 (`run`): it stopped there on purpose, and counts with "
        "that epoch's numbers at every later epoch."
    ]
    at_three = rows_at(selection.frame, 3, "label").set_index(["label", "seed"])
    assert at_three.loc[("tanh", 1), "status"] == "diverged"
    assert at_three.loc[("tanh", 1), "test_accuracy"] == pytest.approx(0.80 + 0.02 + 0.001 + 0.002)
    summary = summarize(selection.frame, "label").set_index("label")
    assert summary.loc["tanh", "diverged_seeds"] == 1 and summary.loc["tanh", "diverged_epoch"] == 2


def test_runs_with_different_settings_are_different_models(tmp_path):
    write_run(tmp_path / "a", started=DAY1, settings={"lr": 0.001})
    write_run(tmp_path / "b", started=DAY2, settings={"lr": 0.01})
    selection = select(tmp_path)
    assert list(selection.seeds()) == ["relu (lr=0.001)", "tanh (lr=0.001)", "relu (lr=0.01)",
                                       "tanh (lr=0.01)"]  # fmt: skip
    assert selection.notes == []


def test_settings_that_do_not_change_the_model_are_not_its_identity(tmp_path):
    # a run extended to more epochs, momentum under Adam, the device, the workers
    write_run(tmp_path / "a", started=DAY1, epochs=3, settings={"momentum": 0.0})
    write_run(tmp_path / "b", started=DAY2, epochs=5,
              settings={"momentum": 0.9, "device": "cpu", "workers": 4})  # fmt: skip
    selection = select(tmp_path)
    assert list(selection.seeds()) == ["relu", "tanh"]
    assert [run.name for run in selection.runs] == ["b"]
    assert selection.epoch == 5 and selection.final
    # under SGD, momentum changes what is learned
    write_run(tmp_path / "c", started=DAY3, settings={"optimizer": "sgd", "momentum": 0.9})
    labels = list(select(tmp_path).seeds())
    assert labels == ["relu (optimizer=adam)", "tanh (optimizer=adam)",
                      "relu (optimizer=sgd, momentum=0.9)", "tanh (optimizer=sgd, momentum=0.9)"]  # fmt: skip


def test_in_runs_made_before_the_subset_had_its_own_seed_the_first_seed_picks_it(tmp_path):
    # `--subset 100 --seed 0,1` and `--subset 100 --seed 1` made before the manifest recorded
    # the subset's seed: their seed 1 models trained on different samples, so both are kept,
    # told apart by the seed that picked the data
    write_run(tmp_path / "a", seeds=(0, 1), started=DAY1, settings={"subset": 100})
    write_run(tmp_path / "b", seeds=(1,), started=DAY2, settings={"subset": 100})
    selection = select(tmp_path)
    assert selection.notes == []
    assert selection.seeds() == {"relu (data_seed=0)": 2, "tanh (data_seed=0)": 2,
                                 "relu (data_seed=1)": 1, "tanh (data_seed=1)": 1}  # fmt: skip
    assert identity({"subset": None, "seed": 3})["data_seed"] is None


def test_a_subset_drawn_with_its_own_seed_is_the_same_data_for_every_seed_list():
    data = {"subset_seed": 0}
    first = identity({"subset": 100, "seed": [0, 1]}, data)
    assert first == identity({"subset": 100, "seed": 1}, data)
    assert first["data_seed"] == 0
    assert identity({"subset": 100, "seed": 1}, {"subset_seed": 5})["data_seed"] == 5
    # the validation split has a fixed seed of its own: it never makes the seed part of identity
    assert identity({"val": 50, "seed": 4}, {"subset_seed": 0})["data_seed"] is None


def test_runs_given_twice_or_nested_are_read_once(tmp_path):
    write_run(tmp_path / "r" / "run-1")
    runs = find_runs([tmp_path / "r", tmp_path / "r" / "run-1"])
    assert [run.name for run in runs] == ["run-1"]


def test_a_run_without_a_manifest_is_never_final(tmp_path):
    write_run(tmp_path / "run")
    (tmp_path / "run" / "manifest.json").unlink()
    selection = select(tmp_path / "run")
    assert not selection.final
    assert selection.notes == [
        "`run` has no manifest.json: its settings and planned epochs are unknown, so none of "
        "its epochs is called final."
    ]


def test_summaries_refuse_repeats_of_a_model():
    rows = [{"activation": "relu", "seed": 0, "epoch": 1, "status": "ok", "test_accuracy": a}
            for a in (0.9, 0.8)]  # fmt: skip
    with pytest.raises(ValueError, match="relu seed 0 has several rows for epoch 1"):
        summarize(pd.DataFrame(rows))


def test_runs_with_the_same_folder_name_are_named_by_their_path(tmp_path):
    write_run(tmp_path / "x" / "run-1", activations=("relu",))
    write_run(tmp_path / "y" / "run-1", activations=("tanh",))
    runs = find_runs([tmp_path / "x", tmp_path / "y"])
    assert [run.name for run in runs] == [str(tmp_path / "x" / "run-1"),
                                          str(tmp_path / "y" / "run-1")]  # fmt: skip


def test_a_run_with_no_finished_epoch_is_named_in_a_note(tmp_path):
    write_run(tmp_path / "done", started=DAY1)
    write_run(tmp_path / "stopped", started=DAY2, activations=("gelu",), seeds=(0, 1),
              reached={("gelu", 0): 0, ("gelu", 1): 0}, status="interrupted")  # fmt: skip
    selection = select(tmp_path)
    assert [run.name for run in selection.runs] == ["done"]
    assert selection.notes == [
        "Incomplete: `stopped` (interrupted, 3 epochs planned): seed 0 of gelu never started; "
        "seed 1 of gelu never started."
    ]


def test_models_that_all_diverged_are_final_where_they_stopped(tmp_path):
    write_run(tmp_path / "run", epochs=10, diverged={("relu", 0): 2, ("tanh", 0): 3})
    selection = select(tmp_path / "run")
    assert selection.epoch == 3 and selection.final


def test_the_network_ends_come_from_the_manifest_else_the_data_set():
    # the manifest's record wins (numbers made up so that no table could give them)
    assert data_shape({"config": {"dataset": "mnist"}, "data": {"inputs": 12, "classes": 3}}) == (
        12,
        3,
    )
    assert data_shape({"config": {}, "data": {"train_samples": 60000}}) == (28 * 28, 10)  # older
    assert data_shape({"config": {"dataset": "cifar10"}}) == (3 * 32 * 32, 10)
    assert data_shape({"config": {"dataset": "mnist1d"}}) == (40, 10)
    assert data_shape({"config": {"dataset": "somebody-elses"}}) == (None, None)


def test_network_names_follow_the_depth():
    assert network_name(784, 2, 128, 10) == "784-128-128-10"
    assert network_name(40, 1, 64, 10) == "40-64-10"
    assert network_name(3072, 6, 8, 10) == "3072-8-8-8-8-8-8-10"
    assert network_name(784, 32, 128, 10) == "784-128-…-128-10 (32 hidden layers)"
    assert network_name(None, 2, 128, None) == "?-128-128-?"


def _run(config, activations=()):
    metrics = pd.DataFrame({"activation": list(activations)})
    return RunFolder("run", Path("run"), {"config": config}, metrics)


def test_init_auto_gives_each_activation_its_catalogue_scheme():
    specs = ["relu", "Tanh", "lk=leaky:0.1", "leaky_relu", "selu", "sin=torch:sin", "pkg.mod:F"]
    # the catalogue: kaiming for ReLU-like, xavier for saturating, lecun for SELU; a user's own
    # function gets torch's default, whatever its label
    assert init_schemes(_run({"activations": specs, "init": "auto"})) == {
        "relu": "kaiming",
        "tanh": "xavier",
        "lk": "kaiming",
        "leaky": "kaiming",
        "selu": "lecun",
        "sin": "torch",
        "pkg.mod:F": "torch",
    }
    assert set(init_schemes(_run({"activations": specs, "init": "xavier"})).values()) == {"xavier"}
    # a manifest without `init` (made before it existed) ran with torch's default
    assert init_schemes(_run({"activations": ["relu", "selu"]})) == {
        "relu": "torch",
        "selu": "torch",
    }
    # no manifest: the labels in the metrics, and torch's default
    assert init_schemes(_run({}, ["gelu"])) == {"gelu": "torch"}
    assert init_words("auto", {"relu": "kaiming", "tanh": "xavier"}) == (
        "auto (relu: kaiming, tanh: xavier)"
    )
    assert init_words("lecun", {"relu": "lecun"}) == "lecun"


def test_runs_are_grouped_by_their_settings(tmp_path):
    write_run(tmp_path / "r" / "run-a", seeds=(0, 1), settings={"subset": 2000}, started=DAY1)
    write_run(tmp_path / "r" / "run-b", epochs=1, settings={"subset": 1000}, started=DAY2)
    write_run(tmp_path / "r" / "run-c", seeds=(2,), epochs=5, settings={"subset": 2000},
              started=DAY3)  # fmt: skip
    for run in ("run-a", "run-b", "run-c"):  # as runs record it now: one seed draws subsets
        path = tmp_path / "r" / run / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["data"]["subset_seed"] = 0
        path.write_text(json.dumps(manifest))
    groups = group_runs(find_runs(tmp_path / "r"))
    assert [(g.name, g.settings, [r.name for r in g.runs]) for g in groups] == [
        ("subset-2000", "subset 2000", ["run-a", "run-c"]),
        ("subset-1000", "subset 1000", ["run-b"]),
    ]
    assert groups[0].differ == ("subset",)
    first, second = (g.selection for g in groups)
    # each group compared at its own epoch: 3 (run-a's last; run-c's seed 2 went on to 5), 1
    assert (first.epoch, first.final, second.epoch, second.final) == (3, False, 1, True)
    assert first.seeds() == {"relu": 3, "tanh": 3} and list(first.identities) == ["relu", "tanh"]
    assert groups[1].apart == (
        "Reported apart, since their settings differ: `run-a` (subset 2000; in "
        "`../subset-2000/`) and `run-c` (subset 2000; in `../subset-2000/`)."
    )
    assert groups[1].reported().notes == [groups[1].apart]
    (together,) = group_runs(find_runs(tmp_path / "r"), together=True)
    assert (together.name, together.apart) == ("", "")
    assert list(together.selection.identities) == [
        "relu (subset=2000)",
        "tanh (subset=2000)",
        "relu (subset=1000)",
        "tanh (subset=1000)",
    ]


def test_runs_of_one_setting_form_one_group_named_by_nothing(tmp_path):
    write_run(tmp_path / "r" / "run-a", started=DAY1)
    write_run(tmp_path / "r" / "run-b", epochs=5, seeds=(1,), started=DAY2)  # a longer run
    (group,) = group_runs(find_runs(tmp_path / "r"))
    assert (group.name, group.settings, group.apart, group.differ) == ("", "", "", ())
    assert group.reported() == group.selection


def test_a_group_without_a_finished_epoch_has_no_selection(tmp_path):
    write_run(tmp_path / "r" / "run-a", settings={"optimizer": "sgd", "momentum": 0.9})
    write_run(tmp_path / "r" / "run-b", reached={("relu", 0): 0, ("tanh", 0): 0},
              status="interrupted")  # fmt: skip
    sgd, adam = group_runs(find_runs(tmp_path / "r"))
    assert (sgd.name, adam.name) == ("optimizer-sgd_momentum-0.9", "optimizer-adam_momentum-none")
    assert adam.settings == "optimizer adam, momentum unused (Adam)"
    assert adam.selection is None
    assert sgd.apart == (
        "Reported apart, since their settings differ: `run-b` (optimizer adam, momentum unused "
        "(Adam); no finished epoch, so no report)."
    )


def repeat_rows(run, differing=False):
    """Append every row of relu seed 0 to the run's CSV again (with another test accuracy
    where `differing`)."""
    metrics = pd.read_csv(run / "metrics.csv", keep_default_na=False, dtype=str)
    again = metrics[(metrics["activation"] == "relu") & (metrics["seed"] == "0")].copy()
    if differing:
        again["test_accuracy"] = "0.5"
    pd.concat([metrics, again]).to_csv(run / "metrics.csv", index=False)


def test_a_model_whose_repeated_rows_differ_is_used_from_another_run_that_has_it(tmp_path):
    repeat_rows(write_run(tmp_path / "r" / "run-a", started=DAY2), differing=True)
    write_run(tmp_path / "r" / "run-b", activations=("relu",), started=DAY1,
              accuracy=lambda i, s, e: 0.7)  # fmt: skip
    selection = select(tmp_path / "r")
    assert selection.notes == [
        "Left out: relu seed 0 (epochs 1 to 3) of `run-a`, whose metrics.csv records those "
        "epochs more than once with different numbers, so which are the results cannot be "
        "told; restore its metrics.csv from a copy to use it."
    ]
    assert sorted(selection.models[["label", "run"]].values.tolist()) == [
        ["relu", "run-b"],
        ["tanh", "run-a"],
    ]
    relu = selection.frame[selection.frame["label"] == "relu"]
    assert relu["test_accuracy"].tolist() == [0.7, 0.7, 0.7]  # neither of run-a's, nor a mean


def test_identical_repeated_rows_count_once(tmp_path):
    repeat_rows(write_run(tmp_path / "run-a"))
    selection = select(tmp_path / "run-a")
    assert len(selection.frame) == 2 * 3
    assert selection.notes == [
        "Repeated rows: `run-a`'s metrics.csv records relu seed 0 (epochs 1 to 3) more than "
        "once, each repeat identical to the first, column for column: each row is counted once."
    ]


def test_when_every_model_s_repeats_differ_nothing_is_compared(tmp_path):
    from actbench.errors import ActbenchError

    run = write_run(tmp_path / "run-a", activations=("relu",))
    repeat_rows(run, differing=True)
    with pytest.raises(ActbenchError) as caught:
        select(run)
    assert str(caught.value) == (
        "every model of run-a records an epoch more than once with different numbers in "
        "metrics.csv, so none can be compared; restore metrics.csv from a copy"
    )
