"""The report and `actbench plot` over several paths: what they say must be true of the runs."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from runfolders import write_run, write_study
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


def test_plot_out_to_a_file_is_a_usage_error_that_writes_nothing(tmp_path):
    run = write_run(tmp_path / "run-a")
    (tmp_path / "notes.txt").write_text("mine")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = invoke("plot", run, "--out", tmp_path / "notes.txt")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: --out {tmp_path / 'notes.txt'} is a file; give a folder, new or existing, "
        "with --out"
    ]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_compare_takes_its_numbers_at_the_selected_epoch(tmp_path):
    write_run(tmp_path / "run", seeds=(0, 1), epochs=5, reached={("tanh", 1): 2},
              status="interrupted")  # fmt: skip
    selection = select_models(find_runs(tmp_path / "run"))
    pairs = compare(selection.frame, "relu", "label", selection.epoch)
    # at epoch 2 every tanh seed is 0.2 points above relu's
    assert selection.epoch == 2 and pairs.loc[0, "difference"] == pytest.approx(0.002)


def with_validation(folder, started=DAY1):
    return write_run(folder, val_accuracy=lambda i, s, e: 0.85, settings={"val": 5000},
                     started=started)  # fmt: skip


def test_a_second_plot_removes_what_the_first_wrote_and_no_longer_applies(tmp_path):
    results = tmp_path / "results"
    with_validation(results / "run-a")
    assert invoke("plot", results).exit_code == 0
    plots = results / "plots"
    assert {"val_loss.png", "val_accuracy.png"} <= {p.name for p in plots.iterdir()}
    (plots / "notes.md").write_text("mine")  # the user's own file beside the figures
    shutil.rmtree(results / "run-a")
    write_run(results / "run-b", started=DAY2)  # no validation split: no val_* figures
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"Removed 2 files of an earlier plot in {plots} that no longer apply: val_loss.png, "
        "val_accuracy.png"
    )
    assert sorted(p.name for p in plots.iterdir()) == [
        ".actbench-plot.json", "activations.png", "differences.png", "notes.md", "report.md",
        "test_accuracy.png", "test_loss.png", "train_loss.png",
    ]  # fmt: skip
    assert (plots / "notes.md").read_text() == "mine"
    assert "run-b" in (plots / "report.md").read_text()
    assert sorted(p.name for p in (results / "run-b").iterdir()) == ["manifest.json", "metrics.csv"]
    again = invoke("plot", results)  # nothing stale now: nothing removed, nothing said
    assert again.exit_code == 0 and "Removed" not in again.stdout


def test_a_figure_changed_since_the_plot_wrote_it_is_kept_and_named(tmp_path):
    results = tmp_path / "results"
    with_validation(results / "run-a")
    assert invoke("plot", results).exit_code == 0
    plots = results / "plots"
    (plots / "val_loss.png").write_bytes(b"edited by hand")
    shutil.rmtree(results / "run-a")
    write_run(results / "run-b", started=DAY2)
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == [
        f"Removed 1 file of an earlier plot in {plots} that no longer applies: val_accuracy.png",
        f"Kept 1 file of an earlier plot in {plots} that no longer applies, as it changed "
        "after that plot wrote it: val_loss.png",
    ]
    assert (plots / "val_loss.png").read_bytes() == b"edited by hand"
    assert not (plots / "val_accuracy.png").exists()


def test_a_plot_never_replaces_a_file_it_did_not_write(tmp_path):
    results = tmp_path / "results"
    write_run(results / "run-a")
    plots = results / "plots"
    plots.mkdir()
    (plots / "report.md").write_text("my own notes")  # a name a plot writes, not by a plot
    result = invoke("plot", results)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {plots / 'report.md'} is in the way: actbench plot did not write it there, or "
        "it changed since; move it elsewhere, or choose another folder with --out"
    ]
    assert (plots / "report.md").read_text() == "my own notes"
    assert [p.name for p in plots.iterdir()] == ["report.md"]  # refused before any figure
    (plots / "report.md").unlink()
    assert invoke("plot", results).exit_code == 0  # what the first wrote is its own now
    again = invoke("plot", results)
    assert again.exit_code == 0, again.output
    (plots / "test_loss.png").write_bytes(b"edited by hand")  # a plot's file, changed since
    figures = {p.name: p.stat().st_mtime_ns for p in plots.iterdir()}
    edited = invoke("plot", results)
    assert edited.exit_code == 1 and "test_loss.png is in the way" in edited.output
    assert (plots / "test_loss.png").read_bytes() == b"edited by hand"
    # the figures drawn before the one in the way were not rewritten either
    assert {p.name: p.stat().st_mtime_ns for p in plots.iterdir()} == figures


def test_a_plot_that_fails_removes_nothing_and_the_next_one_does(tmp_path, monkeypatch):
    import actbench.report
    from actbench.errors import ActbenchError

    results = tmp_path / "results"
    with_validation(results / "run-a")
    assert invoke("plot", results).exit_code == 0
    plots = results / "plots"
    before = {p.name: p.read_bytes() for p in plots.iterdir() if p.name.startswith("val_")}
    shutil.rmtree(results / "run-a")
    write_run(results / "run-b", started=DAY2)

    def full_disk(*args, **kwargs):  # the figures are drawn, then the report fails
        raise ActbenchError("cannot write report.md (No space left on device)")

    with monkeypatch.context() as patch:
        patch.setattr(actbench.report, "write_report", full_disk)
        failed = invoke("plot", results)
    assert failed.exit_code == 1
    assert "Removed" not in failed.stdout
    assert {p.name: p.read_bytes() for p in plots.iterdir() if p.name in before} == before
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("Removed 2 files of an earlier plot")
    assert not [p for p in plots.iterdir() if p.name.startswith("val_")]


def test_a_plot_whose_writing_fails_part_way_records_what_it_wrote(tmp_path, monkeypatch):
    import actbench.outputs
    from actbench.errors import ActbenchError
    from actbench.outputs import read_record

    results = tmp_path / "results"
    with_validation(results / "run-a")
    assert invoke("plot", results).exit_code == 0
    plots = results / "plots"
    earlier = read_record(plots)["files"]
    shutil.rmtree(results / "run-a")
    write_run(results / "run-b", started=DAY2)
    written: list = []
    write = actbench.outputs.write_or_explain

    def disk_fills(path, data, fix):  # two outputs fit, the third does not
        if len(written) == 2:
            raise ActbenchError(f"cannot write {path} (No space left on device); {fix}")
        write(path, data, fix)
        written.append(path)

    with monkeypatch.context() as patch:
        patch.setattr(actbench.outputs, "write_or_explain", disk_fills)
        failed = invoke("plot", results)
    assert failed.exit_code == 1
    assert (
        failed.output.strip()
        .splitlines()[-1]
        .endswith("(No space left on device); choose another folder with --out")
    )
    assert "Removed" not in failed.output and "Wrote" not in failed.output
    files = read_record(plots)["files"]
    assert {p.name for p in written} <= set(files) and set(earlier) <= set(files)
    assert all((plots / name).exists() for name in earlier)  # nothing removed
    again = invoke("plot", results)
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1].startswith("Removed 2 files of an earlier plot")


def test_rows_a_csv_records_twice_are_said_and_never_averaged(tmp_path):
    run = write_run(tmp_path / "run-a", seeds=(0, 1))
    metrics = (run / "metrics.csv").read_text()
    lines = metrics.splitlines(keepends=True)
    changed = lines[1].replace("0.81,", "0.51,", 1)  # relu seed 0, epoch 1: another number
    assert changed != lines[1]
    # every row of seed 1 twice, identical; relu seed 0's epoch 1 twice, differing
    seed_1 = [line for line in lines[1:] if line.split(",")[1] == "1"]
    (run / "metrics.csv").write_text(metrics + "".join(seed_1) + changed)
    result = invoke("plot", run)
    assert result.exit_code == 0, result.output
    notes = [
        "Repeated rows: `run-a`'s metrics.csv records relu seed 1 (epochs 1 to 3) and tanh "
        "seed 1 (epochs 1 to 3) more than once, each repeat identical to the first, column for "
        "column: each row is counted once.",
        "Left out: relu seed 0 (epoch 1) of `run-a`, whose metrics.csv records that epoch more "
        "than once with different numbers, so which are the results cannot be told; restore "
        "its metrics.csv from a copy to use it.",
    ]
    assert result.stdout.splitlines()[1:3] == [f"Note: {n.replace('`', '')}" for n in notes]
    report = (run / "plots" / "report.md").read_text()
    assert "".join(f"- {n}\n" for n in notes) in section(report, "Notes")
    summary = section(report, "Summary")
    assert "| relu | 1 | 83.10% |" in summary  # seed 1 alone, counted once: 0.831
    assert "| tanh | 2 | 83.25% ± 0.64 |" in summary  # 0.832 and 0.833, not weighted 1:2
    assert "never started" not in report


def test_two_copies_of_a_study_are_each_reported_and_said_to_repeat_the_other(tmp_path):
    results = tmp_path / "results"
    write_study(results / "run-s")
    shutil.copytree(results / "run-s", results / "run-s-copy")
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output

    def note(other):
        return (
            "Repeated in another study: 8 of this study's 8 models (the same settings and "
            f"seeds) are also in `{other}`, which is reported on its own: nothing is pooled "
            "with them or left out."
        )

    lines = result.stdout.splitlines()
    assert f"Note: {note('run-s-copy').replace('`', '')}" in lines
    assert f"Note: {note('run-s').replace('`', '')}" in lines
    for run, other in (("run-s", "run-s-copy"), ("run-s-copy", "run-s")):
        report = (results / run / "plots" / "report.md").read_text()
        assert f"## Notes\n\n- {note(other)}\n" in report


def test_studies_of_one_name_in_two_folders_get_a_report_each_under_out(tmp_path):
    write_study(tmp_path / "x" / "run-s")
    write_study(tmp_path / "y" / "run-s", grid={"lr": [0.1, 0.2]})
    result = invoke("plot", tmp_path / "x", tmp_path / "y", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    first = (tmp_path / "o" / "x_run-s" / "report.md").read_text()
    second = (tmp_path / "o" / "y_run-s" / "report.md").read_text()
    assert "lr=0.001" in first and "lr=0.1" in second


def test_a_run_of_a_study_s_configuration_is_said_in_both_reports(tmp_path):
    results = tmp_path / "results"
    write_study(results / "run-s", seeds=(0,))
    write_run(results / "run-p", epochs=2, settings={"lr": 0.01})
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    study = (results / "run-s" / "plots" / "report.md").read_text()
    assert (
        "- Repeated in another run: 2 of this study's 4 models (the same settings and seeds) "
        "are also in `run-p`, which is reported on its own: nothing is pooled with them or "
        "left out.\n"
    ) in study
    plain = (results / "plots" / "report.md").read_text()
    line = (
        "Repeated in another study: 2 of these 2 models (the same settings and seeds) are also "
        "in `run-s`, which is reported on its own: nothing is pooled with them or left out."
    )
    assert f"- {line}\n" in section(plain, "Notes")
    assert f"Note: {line.replace('`', '')}" in result.stdout.splitlines()
