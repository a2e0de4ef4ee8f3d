"""The report and `actbench plot` over several paths: what they say must be true of the runs."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from runfolders import write_run
from typer.testing import CliRunner

from actbench.cli import app
from actbench.plots import forest_figure, setup_line
from actbench.report import NO_VALIDATION, make_report
from actbench.results import find_runs
from actbench.selection import select_models
from actbench.summary import compare

DAY1, DAY2 = "2026-01-01T10:00:00+00:00", "2026-01-02T10:00:00+00:00"
runner = CliRunner()


def report_of(*paths, out=None, baseline=None):
    selection = select_models(find_runs(list(paths)))
    path, figures = make_report(selection, out or paths[0] / "plots", baseline)
    return path.read_text(), figures


def section(report, title):
    """The text of one `## title` section."""
    return report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_an_interrupted_run_is_reported_as_incomplete(tmp_path):
    reached = {(a, 0): 8 for a in ("relu", "tanh", "sigmoid")}
    reached.update({(a, 2): 4 for a in ("relu", "tanh", "sigmoid")})
    reached.update({("tanh", 1): 0, ("sigmoid", 1): 0})
    write_run(tmp_path / "run", activations=("relu", "tanh", "sigmoid"), seeds=(0, 1, 2),
              epochs=10, reached=reached, status="interrupted")  # fmt: skip
    report, _ = report_of(tmp_path / "run")
    assert (
        "Compared at epoch 4, the last epoch every model reached (epochs planned: 10): not a "
        "final result. Seeds (one model each): relu 3, tanh 2 and sigmoid 2;"
    ) in report
    assert (
        "- Incomplete: `run` (interrupted, 10 epochs planned): seed 0 of relu, tanh and " in report
    )
    assert "final test accuracy" not in report and "(final)" not in report
    assert "3 seeds" not in report
    summary = section(report, "Summary")
    # relu at epoch 4 over seeds 0, 1, 2: 0.840, 0.841, 0.842 -> 84.10% ± 4.303 * 0.1 / sqrt 3
    assert "| activation | seeds | test accuracy at epoch 4 |" in summary
    assert "| relu | 3 | 84.10% ± 0.25 |" in summary
    settings = section(report, "Settings")
    assert "| epochs | 10 planned; models reached 4 to 10; 2 never started |" in settings
    assert "| status | interrupted |" in settings


def test_a_one_seed_run_stopped_at_15_of_40(tmp_path):
    write_run(tmp_path / "run", epochs=40, reached={("relu", 0): 15, ("tanh", 0): 15},
              status="interrupted")  # fmt: skip
    report, _ = report_of(tmp_path / "run")
    assert "| epochs | 40 planned; models reached 15 |" in report
    assert "| epochs | 40 |" not in report
    assert "Compared at epoch 15, the last epoch every model reached" in report
    assert "test accuracy at epoch 15" in report and "final" not in section(report, "Summary")


def test_a_complete_run_is_final(tmp_path):
    write_run(tmp_path / "run", seeds=(0, 1, 2))
    report, _ = report_of(tmp_path / "run")
    assert "Compared at epoch 3, the final epoch of every model." in report
    assert "| activation | seeds | final test accuracy |" in report
    assert "## Notes" not in report


def test_the_settings_show_what_ran(tmp_path):
    write_run(tmp_path / "run", device="cpu")  # the config says device "auto", Adam, momentum 0
    report, _ = report_of(tmp_path / "run")
    settings = section(report, "Settings")
    assert "| device | cpu |" in settings and "auto" not in report
    assert "| optimizer | Adam, lr 0.001 |" in settings and "momentum" not in settings
    assert "| network | 784-128-128-10 |" in settings
    assert "784-128-128-10 network trained on MNIST" in report
    assert "| torch | 2.5.1 |" in settings
    assert "| samples | 60000 training, 10000 test |" in settings
    assert "| validation split | none |" in settings
    assert "None" not in report and "nan" not in report


def edit_manifest(folder, edit):
    """Change a run's manifest.json in place: `edit(manifest)`."""
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_deeper_network_on_another_data_set_is_labelled_as_it_ran(tmp_path):
    run = write_run(tmp_path / "run", seeds=(0, 1),
                    settings={"dataset": "mnist1d", "depth": 4, "init": "auto"})  # fmt: skip
    edit_manifest(run, lambda m: m["data"].update(dataset="mnist1d", inputs=40, classes=10))
    report, _ = report_of(run)
    settings = section(report, "Settings")
    assert "| dataset | MNIST-1D |" in settings
    assert "| network | 40-128-128-128-128-10 |" in settings
    # the catalogue recommends kaiming for relu (He et al.), xavier for tanh (Glorot)
    assert "| initialisation | auto (relu: kaiming, tanh: xavier) |" in settings
    assert "Each model is a 40-128-128-128-128-10 network trained on MNIST-1D," in report
    assert "784" not in report and "trained on MNIST," not in report
    caption = setup_line(select_models(find_runs(run)).frame)
    assert caption == (
        "MNIST-1D, 40-128-128-128-128-10, Adam lr 0.001, batch 64, "
        "init auto (relu: kaiming, tanh: xavier), 2 seeds"
    )


def test_the_network_ends_are_the_manifests_inputs_and_classes(tmp_path):
    run = write_run(tmp_path / "run", settings={"dataset": "cifar10", "depth": 1, "hidden": 32,
                                                "init": "xavier"})  # fmt: skip
    edit_manifest(run, lambda m: m["data"].update(inputs=3072, classes=10))
    report, _ = report_of(run)
    settings = section(report, "Settings")
    assert "| dataset | CIFAR-10 |" in settings
    assert "| network | 3072-32-10 |" in settings
    assert "| initialisation | xavier |" in settings
    assert setup_line(select_models(find_runs(run)).frame).startswith(
        "CIFAR-10, 3072-32-10, Adam lr 0.001, batch 64, init xavier, seed 0"
    )


def test_a_manifest_from_before_data_sets_depth_and_init_means_mnist(tmp_path):
    run = write_run(tmp_path / "run")

    def older(manifest):
        for key in ("dataset", "depth", "init"):
            del manifest["config"][key]

    edit_manifest(run, older)
    report, _ = report_of(run)
    settings = section(report, "Settings")
    assert "| dataset | MNIST |" in settings
    assert "| network | 784-128-128-10 |" in settings
    assert "| initialisation | torch |" in settings
    caption = setup_line(select_models(find_runs(run)).frame)
    assert caption == "MNIST, 784-128-128-10, Adam lr 0.001, batch 64, seed 0"


def test_runs_of_different_data_sets_each_show_their_own(tmp_path):
    a = write_run(tmp_path / "a", started=DAY1)
    b = write_run(tmp_path / "b", started=DAY2, settings={"dataset": "mnist1d", "depth": 3})
    edit_manifest(b, lambda m: m["data"].update(inputs=40, classes=10))
    selection = select_models(find_runs([a, b]))
    report, _ = report_of(a, b, out=tmp_path / "plots")
    settings = section(report, "Settings")
    assert "| dataset | MNIST | MNIST-1D |" in settings
    assert "| network | 784-128-128-10 | 40-128-128-128-10 |" in settings
    assert "| initialisation | torch | torch |" in settings
    assert (
        "Each model is a 784-128-128-10 or 40-128-128-128-10 network (as in the settings) "
        "trained on MNIST or MNIST-1D,"
    ) in report
    assert setup_line(selection.frame).startswith(
        "MNIST/MNIST-1D, 784-128-128-10/40-128-128-128-10,"
    )


def test_sgd_settings_show_momentum_and_each_run_has_a_column(tmp_path):
    write_run(tmp_path / "a", started=DAY1)
    write_run(tmp_path / "b", started=DAY2, settings={"optimizer": "sgd", "momentum": 0.9,
                                                      "lr": 0.1})  # fmt: skip
    settings = section(report_of(tmp_path)[0], "Settings")
    assert "| setting | `a` | `b` |" in settings
    assert "| optimizer | Adam, lr 0.001 | SGD, lr 0.1, momentum 0.9 |" in settings


def test_same_start_is_claimed_only_where_the_models_share_it(tmp_path):
    write_run(tmp_path / "a", started=DAY1, settings={"hidden": 128})
    write_run(tmp_path / "b", started=DAY2, settings={"hidden": 64})
    report, _ = report_of(tmp_path, baseline="relu (hidden=128)")
    differences = section(report, "Differences from relu (hidden=128)")
    assert (
        "For a given seed, tanh (hidden=128) and relu (hidden=128) start from the same initial "
        "weights and see the same batches, so this difference is the activation's alone."
    ) in differences
    assert (
        "relu (hidden=64) differs from relu (hidden=128) in more than the activation "
        "(hidden 64 vs 128): its difference is not the activation's alone."
    ) in differences
    assert (
        "Each model is a 784-128-128-10 or 784-64-64-10 network (as in the settings) trained on "
        "MNIST, one per activation and seed."
    ) in report


def test_no_same_start_claim_across_optimisers(tmp_path):
    write_run(tmp_path / "a", activations=("relu",), started=DAY1)
    write_run(tmp_path / "b", activations=("tanh",), started=DAY2,
              settings={"optimizer": "sgd", "momentum": 0.5})  # fmt: skip
    report, _ = report_of(tmp_path)
    assert "same initial weights" not in report
    assert (
        "tanh (optimizer=sgd, momentum=0.5) differs from relu (optimizer=adam) in more than the "
        "activation (optimizer sgd vs adam; momentum 0.5 vs unused (Adam))"
    ) in report


def test_the_differences_name_holm_effect_sizes_and_scipy(tmp_path):
    write_run(tmp_path / "run", activations=("relu", "tanh", "sigmoid"), seeds=(0, 1, 2))
    report, _ = report_of(tmp_path / "run")
    differences = section(report, "Differences from relu")
    assert (
        "| activation | seeds | test accuracy minus relu (points) | 95% interval | d_z | p | "
        in differences
    )
    assert "p (Holm) | real difference? |" in differences
    assert "With 2 comparisons against relu, the verdicts use Holm's correction" in differences
    assert "scipy.stats.ttest_rel" in differences and "Cohen's d_z" in differences


def test_the_report_opens_with_the_forest_plot(tmp_path):
    write_run(tmp_path / "run", seeds=(0, 1, 2))
    report, figures = report_of(tmp_path / "run")
    assert figures[0].name == "differences.png"
    first_image = report.index("![")
    assert report[first_image:].startswith("![Difference from relu](differences.png)")
    assert report.count("differences.png") == 1
    assert first_image < report.index("Runs used:") < report.index("## Differences")


def test_the_forest_plot_marks_the_verdicts():
    pairs = pd.DataFrame(
        {"label": ["a", "b"], "baseline": "r", "seeds": 5, "difference": [0.01, 0.002],
         "low": [0.005, -0.003], "high": [0.015, 0.007], "t": [4.0, 1.0], "p": [0.01, 0.3],
         "p_holm": [0.02, 0.3], "d_z": [1.8, 0.4], "significant": [True, False]}
    )  # fmt: skip
    fig = forest_figure(pairs, "r", "at epoch 10 (final)")
    ax, right = fig.axes
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert [to_rgba(m.get_markerfacecolor()) for m in markers] == [to_rgba("black"),
                                                                   to_rgba("white")]  # fmt: skip
    assert [m.get_xdata()[0] for m in markers] == pytest.approx([1.0, 0.2])  # points
    assert [m.get_ydata()[0] for m in markers] == [2, 1]  # the first line on top
    assert [t.get_text() for t in right.get_yticklabels()] == [
        "d_z +1.80, Holm p 0.020: real",
        "d_z +0.40, Holm p 0.300: noise",
    ]
    assert "Difference from r at epoch 10 (final)" in ax.get_title()
    assert "Holm-adjusted p < 0.05 over 2 comparisons" in ax.get_title()


def test_the_best_epoch_uses_the_validation_split(tmp_path):
    # validation accuracy peaks at epoch 2; test accuracy rises to epoch 3
    val = {1: 0.85, 2: 0.90, 3: 0.88}
    write_run(tmp_path / "run", seeds=(0, 1), val_accuracy=lambda i, s, e: val[e],
              settings={"val": 5000})  # fmt: skip
    report, figures = report_of(tmp_path / "run")
    summary = section(report, "Summary")
    assert "best epoch by validation (val accuracy) | test accuracy at that epoch |" in summary
    # relu at epoch 2: test 0.8200 (seed 0) and 0.8210 (seed 1) -> 82.05% ± 12.706 * 0.05 / 1.41
    assert "| relu | 2 | 83.05% ± 0.64 | 2 (90.00%) | 82.05% ± 0.64 |" in summary
    assert NO_VALIDATION not in report
    assert "| validation split | 5000 samples held out of the training data |" in report
    assert {"val_accuracy.png", "val_loss.png"} <= {f.name for f in figures}


def test_without_validation_nothing_is_chosen(tmp_path):
    write_run(tmp_path / "run", seeds=(0, 1))
    report, figures = report_of(tmp_path / "run")
    assert NO_VALIDATION in report
    assert "best" not in section(report, "Summary").split("\n\n")[0]  # not in the table
    assert "val_accuracy.png" not in {f.name for f in figures}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="actbench")


def test_plot_takes_several_run_folders(tmp_path):
    write_run(tmp_path / "results" / "run-a", started=DAY1, accuracy=lambda i, s, e: 0.5)
    write_run(tmp_path / "results" / "run-b", seeds=(0, 1), started=DAY2)
    result = invoke("plot", tmp_path / "results" / "run-a", tmp_path / "results" / "run-b")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "Runs used: run-b",
        "Note: Left out as repeats: relu seed 0 and tanh seed 0 from run-a; the same models "
        "are used from run-b (newer).",
        "Compared at epoch 3, the final epoch of every model.",
    ]
    out = tmp_path / "results" / "plots"  # the folder holding both
    report = (out / "report.md").read_text()
    assert "Runs used: `run-b`." in report
    assert "from `run-a`; the same models are used from `run-b` (newer)." in report
    assert "Every activation has 2 seeds" in report


def test_plot_lists_every_run_it_uses(tmp_path):
    write_run(tmp_path / "x" / "run-1", activations=("relu",), started=DAY1)
    write_run(tmp_path / "y" / "run-2", activations=("tanh",), started=DAY2)
    result = invoke("plot", tmp_path / "x", tmp_path / "y", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Runs used: run-1, run-2"
    assert "Runs used: `run-1`, `run-2`." in (tmp_path / "o" / "report.md").read_text()


def test_plot_with_a_missing_path_writes_nothing(tmp_path):
    write_run(tmp_path / "run-a")
    result = invoke("plot", tmp_path / "run-a", tmp_path / "nope", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {tmp_path / 'nope'} does not exist; give the results folder or a run folder"
    ]
    assert not (tmp_path / "o").exists()


def test_plot_of_paths_with_no_shared_folder_needs_out(tmp_path):
    write_run(tmp_path / "run-a")
    other = "/" + os.path.relpath(tmp_path, "/").split(os.sep)[0] + "-elsewhere"
    result = invoke("plot", tmp_path / "run-a", other)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "these paths share no folder to put the plots in; choose one with --out FOLDER" in line


def test_compare_takes_its_numbers_at_the_selected_epoch(tmp_path):
    write_run(tmp_path / "run", seeds=(0, 1), epochs=5, reached={("tanh", 1): 2},
              status="interrupted")  # fmt: skip
    selection = select_models(find_runs(tmp_path / "run"))
    pairs = compare(selection.frame, "relu", "label", selection.epoch)
    # at epoch 2 every tanh seed is 0.2 points above relu's
    assert selection.epoch == 2 and pairs.loc[0, "difference"] == pytest.approx(0.002)
