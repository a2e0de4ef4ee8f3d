"""`actbench plot` over runs of different settings: one report per setting, never one pooled
report unless asked (`--together`); runs of one setting keep the single report in plots/."""

from __future__ import annotations

import json
import shutil

from runfolders import write_run, write_study
from typer.testing import CliRunner

from actbench.cli import app

DAY1, DAY2 = "2026-01-01T10:00:00+00:00", "2026-01-02T10:00:00+00:00"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="actbench")


def section(report, title):
    return report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def two_subsets(results):
    """A 3-epoch, 2-seed run on a 2000-sample subset and a quick 1-epoch one on 1000 samples,
    whose own --baseline is tanh; both draw their subsets with one seed, as runs now record."""
    write_run(results / "run-a", seeds=(0, 1), epochs=3, settings={"subset": 2000},
              started=DAY1)  # fmt: skip
    write_run(results / "run-b", epochs=1, settings={"subset": 1000, "baseline": "tanh"},
              started=DAY2)  # fmt: skip
    for run in ("run-a", "run-b"):
        path = results / run / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["data"]["subset_seed"] = 0
        path.write_text(json.dumps(manifest))


def test_runs_of_two_subsets_get_a_report_each_with_its_own_epoch_and_baseline(tmp_path):
    results = tmp_path / "results"
    two_subsets(results)
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    plots = results / "plots"
    assert result.stdout.splitlines()[:3] == [
        "The runs differ in subset: one report for each (--together compares them in one):",
        f"subset 2000: run-a compared at epoch 3 (final) against relu: 5 figures and report.md "
        f"in {plots / 'subset-2000'}",
        f"subset 1000: run-b compared at epoch 1 (final) against tanh: 5 figures and report.md "
        f"in {plots / 'subset-1000'}",
    ]
    # and the record of what this plot wrote (`actbench.outputs`)
    assert sorted(p.name for p in plots.iterdir()) == [
        ".actbench-plot.json",
        "subset-1000",
        "subset-2000",
    ]
    first = (plots / "subset-2000" / "report.md").read_text()
    assert "Runs used: `run-a`." in first and "run-b`." not in first.split("## Notes")[0]
    assert "Compared at epoch 3, the final epoch of every model." in first
    assert "Every activation has 2 seeds" in first
    # the seeds stay paired: two pairs, relu's own baseline
    assert "| tanh | 2 | +0.20 |" in section(first, "Differences from relu")
    assert (
        "- Reported apart, since their settings differ: `run-b` (subset 1000; in "
        "`../subset-1000/`)."
    ) in first
    second = (plots / "subset-1000" / "report.md").read_text()
    assert "Runs used: `run-b`." in second
    assert "Compared at epoch 1, the final epoch of every model." in second
    assert "| relu | 1 | -0.20 |" in section(second, "Differences from tanh")
    assert "(subset=" not in first + second  # each report's lines are plain activations


def test_together_compares_the_settings_in_one_report_as_before(tmp_path):
    results = tmp_path / "results"
    two_subsets(results)
    result = invoke("plot", results, "--together", "--baseline", "relu (subset=2000)")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        "Runs used: run-a, run-b",
        "Compared at epoch 1, the last epoch every model reached (epochs planned: 1 and 3): not "
        "a final result.",
    ]
    plots = results / "plots"
    assert not [p for p in plots.iterdir() if p.is_dir()]
    report = (plots / "report.md").read_text()
    assert (
        "relu (subset=1000) differs from relu (subset=2000) in more than the activation "
        "(subset 1000 vs 2000): its difference is not the activation's alone."
    ) in report
    assert "Reported apart" not in report


def test_a_baseline_of_another_settings_line_is_refused_before_anything_is_written(tmp_path):
    results = tmp_path / "results"
    two_subsets(results)
    result = invoke("plot", results, "--baseline", "relu (subset=1000)")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: baseline 'relu (subset=1000)' is not among the lines of the runs with subset "
        "2000 (relu, tanh); name one of them with --baseline, or compare runs of different "
        "settings in one report with --together"
    ]
    assert not (results / "plots").exists()


def test_runs_of_one_setting_keep_the_single_report_in_the_plots_folder(tmp_path):
    results = tmp_path / "results"
    write_run(results / "run-a", started=DAY1)
    write_run(results / "run-b", seeds=(1,), epochs=5, started=DAY2)  # same settings, longer
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "Runs used: run-a, run-b",
        "Compared at epoch 3, the last epoch every model reached (epochs planned: 3 and 5): not "
        "a final result.",
    ]
    assert lines[2] == f"Wrote 5 figures and report.md to {results / 'plots'}:"
    plots = results / "plots"
    assert not [p for p in plots.iterdir() if p.is_dir()]
    assert "Reported apart" not in (plots / "report.md").read_text()


def test_a_setting_with_no_finished_epoch_is_said_and_gets_no_report(tmp_path):
    results = tmp_path / "results"
    write_run(results / "run-a", started=DAY1)
    write_run(results / "run-b", settings={"lr": 0.01}, reached={("relu", 0): 0, ("tanh", 0): 0},
              status="interrupted", started=DAY2)  # fmt: skip
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:3] == [
        "The runs differ in lr: one report for each (--together compares them in one):",
        f"lr 0.001: run-a compared at epoch 3 (final) against relu: 5 figures and report.md in "
        f"{results / 'plots' / 'lr-0.001'}",
        "lr 0.01: run-b: no finished epoch, no report",
    ]
    assert sorted(p.name for p in (results / "plots").iterdir()) == [
        ".actbench-plot.json",
        "lr-0.001",
    ]


def test_replotting_runs_that_now_differ_in_a_setting_removes_the_single_report(tmp_path):
    results = tmp_path / "results"
    plots = results / "plots"
    write_run(results / "run-a", started=DAY1)
    assert invoke("plot", results).exit_code == 0
    single = sorted(p.name for p in plots.iterdir() if not p.name.startswith("."))
    assert "report.md" in single
    write_run(results / "run-b", settings={"lr": 0.01}, started=DAY2)
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"Removed {len(single)} files of an earlier plot in {plots} that no longer apply: "
        "differences.png, train_loss.png, test_loss.png, test_accuracy.png, activations.png, "
        "report.md"
    )
    assert sorted(p.name for p in plots.iterdir()) == [".actbench-plot.json", "lr-0.001", "lr-0.01"]
    shutil.rmtree(results / "run-b")  # one setting again: the per-setting reports go
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"Removed 12 files of an earlier plot in {plots} that no longer apply: "
        "lr-0.001/ (6 files), lr-0.01/ (6 files)"
    )
    assert sorted(p.name for p in plots.iterdir() if not p.name.startswith(".")) == single


def test_runs_that_became_a_study_leave_no_report_of_the_old_runs(tmp_path):
    results = tmp_path / "results"
    plots = results / "plots"
    write_run(results / "run-a", started=DAY1)
    assert invoke("plot", results).exit_code == 0
    write_study(results / "run-s1")
    write_study(results / "run-s2", grid={"lr": [0.1, 0.2]})
    # two studies plotted by name: their reports go into their own folders; results/plots
    # is the plots folder of other paths (results/), and stays as it is
    result = invoke("plot", results / "run-s1", results / "run-s2")
    assert result.exit_code == 0, result.output
    assert "Removed" not in result.stdout and (plots / "report.md").exists()
    shutil.rmtree(results / "run-a")  # now the results are the studies alone
    result = invoke("plot", results)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith(
        f"Removed 6 files of an earlier plot in {plots} that no longer apply: differences.png,"
    )
    assert list(plots.iterdir()) == []
    for study in ("run-s1", "run-s2"):
        assert (results / study / "plots" / "report.md").exists()
