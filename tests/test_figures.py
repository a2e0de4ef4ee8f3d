"""Figures a student pastes into a report: one colour per activation in every figure and run,
losses on a log axis, intervals only from several seeds and readable with many lines, the
set-up in a caption, legends off the curves, and overlapping functions all visible."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.container import ErrorbarContainer
from matplotlib.image import imread
from runfolders import write_study
from scipy import stats

import actbench.plots
from actbench.catalog import CATALOG
from actbench.colours import delta_e, distance, lab
from actbench.config import RunConfig
from actbench.cost import COLUMNS as COST_COLUMNS
from actbench.cost import COST
from actbench.plots import (
    BANDS_UP_TO,
    EXTRA,
    PALETTE,
    SEPARATION,
    activation_style,
    activation_styles,
    curve_figure,
    curves,
    forest_figure,
    line_styles,
    plot_activations,
    plot_health,
    setup_line,
)
from actbench.report import make_report
from actbench.results import RunWriter, find_runs
from actbench.selection import select_models
from actbench.study_report import depth_sweep_figure, study_data
from actbench.train import EpochResult


def make_run(folder, activations, seeds=(0,), epochs=4, **settings):
    """A run folder with a full manifest (as `actbench run` writes it) and made-up numbers."""
    config = RunConfig(activations=tuple(activations), seed=tuple(seeds), epochs=epochs,
                       **settings).to_dict()  # fmt: skip
    folder.mkdir(parents=True)
    manifest = {"config": config, "activations": list(activations), "status": "completed",
                "started": folder.name}  # fmt: skip
    writer = RunWriter(folder, list(activations), manifest)
    for seed in seeds:
        for epoch in range(1, epochs + 1):
            writer.add([_result(a, i, seed, epoch) for i, a in enumerate(activations)])
    return folder


def _result(activation, i, seed, epoch):
    """Numbers that differ by activation (its place i), seed and epoch."""
    accuracy = 0.8 + 0.02 * epoch + 0.003 * seed * (i + 1)
    return EpochResult(activation, seed, epoch, 1.5 / epoch**2 + 0.01 * i, 0.9, 0.4 / epoch,
                       accuracy, 1.0, grad_layer1=1e-3 * (i + 1), grad_layer2=2e-3,
                       grad_layer3=1e-2, dead_layer1=0.1 * seed, dead_layer2=0.05)  # fmt: skip


PALETTE_NAMES = {entry.name for entry in CATALOG}


def selection_frame(*folders):
    return select_models(find_runs(list(folders))).frame


def _line_colours(fig):
    ax = fig.axes[0]
    return {line.get_label(): to_hex(line.get_color()) for line in ax.lines}


def test_an_activation_has_one_colour_in_every_run_and_figure(tmp_path):
    one = selection_frame(make_run(tmp_path / "a", ["relu", "sigmoid", "tanh", "leaky"]))
    two = selection_frame(make_run(tmp_path / "b", ["tanh", "my_acts:Square", "relu"]))
    first, second = line_styles(one), line_styles(two)
    for name in ("relu", "tanh"):
        assert first[name].colour == second[name].colour
    assert first["relu"].colour == PALETTE[0]  # relu is blue wherever it stands in the list
    assert second["my_acts:Square"].colour in EXTRA
    assert len({s.colour for s in first.values()}) == 4  # and the four differ
    # in the figures themselves: a curve, a unit-health figure
    a, b = (
        _line_colours(curve_figure(one, "train_loss")),
        _line_colours(curve_figure(two, "test_accuracy")),
    )
    assert a["relu"] == b["relu"] == PALETTE[0] and a["tanh"] == b["tanh"]
    paths = plot_health(one, tmp_path / "plots")
    assert paths  # the health figures use the same styles: drawn from line_styles(one)


def test_the_built_in_colours_follow_the_catalogue_and_differ():
    styles = [activation_style(entry.name) for entry in CATALOG]
    assert [s.colour for s in styles] == list(PALETTE)
    assert len(set(PALETTE)) == len(PALETTE) == len(CATALOG)
    assert not set(EXTRA) & set(PALETTE)
    assert len({(s.marker, s.dash) for s in styles[:4]}) == 4  # the classic four look apart
    # CIEDE2000: tab10's own closest pair (red, brown) is 16.2 apart; the others as far
    assert min(distance(a, b) for a, b in itertools.combinations(PALETTE, 2)) > 16
    assert min(distance(a, b) for a, b in itertools.combinations(EXTRA, 2)) > 25
    assert min(distance(c, PALETTE[0]) for c in EXTRA) > SEPARATION  # none taken for relu's


def test_another_activation_keeps_its_colour_from_process_to_process():
    code = "from actbench.plots import activation_style; print(activation_style('my_acts:Swish'))"
    shown = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, env=env)  # fmt: skip
        shown.add(proc.stdout.strip())
    assert len(shown) == 1
    assert str(activation_style("my_acts:Swish")) in shown


def test_two_other_activations_never_share_a_colour_in_one_figure(tmp_path):
    names = [f"my_acts:F{i}" for i in range(len(EXTRA))]  # some hash to the same colour
    frame = selection_frame(make_run(tmp_path / "r", names))
    assert len({s.colour for s in line_styles(frame).values()}) == len(EXTRA)


def test_settings_that_differ_keep_the_colour_and_change_the_dash(tmp_path):
    frame = selection_frame(make_run(tmp_path / "a", ["relu"], lr=0.001),
                            make_run(tmp_path / "b", ["relu"], lr=0.01))  # fmt: skip
    styles = line_styles(frame)
    assert set(styles) == {"relu (lr=0.001)", "relu (lr=0.01)"}
    first, second = styles.values()
    assert first.colour == second.colour == PALETTE[0]
    assert first.dash != second.dash and first.marker != second.marker
    assert "lr 0.001/0.01" in setup_line(frame)


def test_losses_are_drawn_on_a_log_axis(tmp_path):
    frame = selection_frame(make_run(tmp_path / "r", ["relu", "leaky"]))
    for column in ("train_loss", "test_loss"):
        assert curve_figure(frame, column).axes[0].get_yscale() == "log"
    assert curve_figure(frame, "test_accuracy").axes[0].get_yscale() == "linear"


def _bands(fig):
    ax = fig.axes[0]
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _bars(fig):
    return [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]


def test_one_seed_draws_no_interval(tmp_path):
    for names in (["relu", "tanh"], ["relu", "sigmoid", "tanh", "leaky", "gelu"]):
        frame = selection_frame(make_run(tmp_path / "-".join(names), names, seeds=(0,)))
        for column in ("train_loss", "test_accuracy"):
            fig = curve_figure(frame, column)
            assert not _bands(fig) and not _bars(fig), (names, column)
            assert "one seed: no interval" in _caption(fig)


def test_a_line_with_one_seed_has_no_interval_beside_one_with_three(tmp_path):
    frame = selection_frame(make_run(tmp_path / "a", ["relu"], seeds=(0, 1, 2)),
                            make_run(tmp_path / "b", ["tanh"], seeds=(0,)))  # fmt: skip
    fig = curve_figure(frame, "test_accuracy")
    (band,) = _bands(fig)
    assert to_hex(band.get_facecolor()[0][:3]) == PALETTE[0]  # relu's, not tanh's
    assert "1 to 3 seeds per line (none for one seed)" in _caption(fig)


def test_many_lines_over_seeds_show_their_intervals_as_bars_side_by_side(tmp_path):
    few = ["relu", "sigmoid", "tanh"][:BANDS_UP_TO]
    many = ["relu", "sigmoid", "tanh", "leaky", "gelu"]
    frame = selection_frame(make_run(tmp_path / "few", few, seeds=(0, 1, 2)))
    fig = curve_figure(frame, "test_accuracy")
    assert len(_bands(fig)) == len(few) and not _bars(fig)
    frame = selection_frame(make_run(tmp_path / "many", many, seeds=(0, 1, 2)))
    fig = curve_figure(frame, "test_accuracy")
    assert not _bands(fig) and len(_bars(fig)) == len(many)
    # each line sits at its own small shift from the epochs, the same at every epoch
    shifts = [np.round(np.asarray(line.get_xdata(), float) - np.arange(1, 5), 6)
              for line in fig.axes[0].lines]  # fmt: skip
    assert all(len(set(s)) == 1 for s in shifts)
    assert len({s[0] for s in shifts}) == len(many)
    assert max(abs(s[0]) for s in shifts) < 0.25
    assert "lines set slightly apart" in _caption(fig)


def _caption(fig):
    (caption,) = [t for t in fig.texts if t.get_gid() == "caption"]
    return caption.get_text()


def test_every_figure_says_its_set_up(tmp_path):
    frame = selection_frame(make_run(tmp_path / "r", ["relu", "tanh"], seeds=(0, 1, 2),
                                     hidden=64, subset=3000, val=500))  # fmt: skip
    expected = "MNIST (3000-sample subset), 784-64-64-10, Adam lr 0.001, batch 64"
    assert setup_line(frame).startswith(expected)
    assert setup_line(frame).endswith("500 held out for validation, 3 seeds")
    fig = curve_figure(frame, "train_loss")
    assert fig.get_suptitle() == "Training loss"
    assert _caption(fig).splitlines() == [setup_line(frame), "mean and 95% interval over 3 seeds"]
    pairs = pd.DataFrame({"label": ["tanh"], "baseline": "relu", "seeds": 3, "difference": [0.01],
                          "low": [0.0], "high": [0.02], "t": [3.0], "p": [0.1], "p_holm": [0.1],
                          "d_z": [1.2], "significant": [False]})  # fmt: skip
    forest = forest_figure(pairs, "relu", "at epoch 4 (final)", setup=setup_line(frame))
    assert _caption(forest) == setup_line(frame)
    sgd = selection_frame(make_run(tmp_path / "s", ["relu"], optimizer="sgd", lr=0.1,
                                   momentum=0.9))  # fmt: skip
    assert "SGD lr 0.1, momentum 0.9" in setup_line(sgd) and "seed 0" in setup_line(sgd)


def test_a_caption_names_the_data_set_depth_and_initialisation_the_runs_used(tmp_path):
    frame = selection_frame(make_run(tmp_path / "r", ["relu", "tanh", "selu"], seeds=(0, 1),
                                     dataset="mnist1d", depth=4, init="auto"))  # fmt: skip
    expected = (
        "MNIST-1D, 40-128-128-128-128-10, Adam lr 0.001, batch 64, "
        "init auto (relu: kaiming, tanh: xavier, selu: lecun), 2 seeds"
    )
    assert setup_line(frame) == expected
    for column in ("train_loss", "test_accuracy"):  # the caption, wrapped to the figure
        words = " ".join(_caption(curve_figure(frame, column)).split())
        assert words.startswith(expected + " mean and 95% interval over 2 seeds")
    deep = selection_frame(make_run(tmp_path / "d", ["relu"], depth=12, hidden=32,
                                    dataset="fashion-mnist", init="lecun"))  # fmt: skip
    assert setup_line(deep) == (
        "Fashion-MNIST, 784-32-…-32-10 (12 hidden layers), Adam lr 0.001, batch 64, init lecun, "
        "seed 0"
    )


def _overlap(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_the_legend_covers_no_curve(tmp_path):
    names = ["relu", "sigmoid", "tanh", "leaky", "gelu", "my_acts:AVeryLongActivationName"]
    frame = selection_frame(make_run(tmp_path / "r", names, seeds=(0, 1)))
    fig = curve_figure(frame, "test_accuracy", epoch=3)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = fig.legends
    assert fig.axes[0].get_legend() is None
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not _overlap(box, ax.get_window_extent(renderer))
    assert len(legend.get_texts()) == len(names) + 1  # every line, and the compared epoch


def _where(path, colour, tolerance=0.12):
    """The columns and the rows of a PNG in which `colour` shows (a boolean mask each)."""
    image = imread(path)[..., :3]
    mask = np.abs(image - np.array(to_rgb(colour))).max(axis=-1) < tolerance
    return mask.any(axis=0), mask.any(axis=1)


def test_leaky_relu_does_not_hide_relu_in_the_functions_figure(tmp_path):
    alone = plot_activations(["relu"], tmp_path / "alone.png")
    both = plot_activations(["relu", "leaky"], tmp_path / "both.png")
    blue, orange = PALETTE[0], activation_style("leaky").colour
    for seen, full in zip(_where(both, blue), _where(alone, blue), strict=True):
        # relu still shows along (nearly) all of its length, under leaky's coinciding curve
        assert (seen & full).sum() > 0.85 * full.sum()
    assert _where(both, orange)[0].sum() > 0.5 * _where(alone, blue)[0].sum()  # and leaky, dashed


# --- Layout: long legend labels leave the title, the caption and the axes clear ---------------


def _captured(monkeypatch):
    """The figures the plotting functions save, as (file name, figure), in order."""
    figures = []
    real = actbench.plots._save

    def save(fig, path):
        figures.append((path.name, fig))
        return real(fig, path)

    monkeypatch.setattr(actbench.plots, "_save", save)
    return figures


def _long_label_frames(tmp_path):
    """An interrupted 3-seed run (each label carries a note), and two unrelated runs plotted
    together (each label carries the settings that differ), with a long user's name."""
    names = ["relu", "sigmoid", "tanh", "leaky", "gelu", "my_acts:AVeryLongActivationName"]
    run = selection_frame(make_run(tmp_path / "int", names, seeds=(0, 1, 2), epochs=4))
    cut = run["seed"].eq(2) & run["epoch"].gt(2) | run["seed"].eq(1) & run["epoch"].gt(3)
    interrupted = run[~cut]
    together = selection_frame(make_run(tmp_path / "a", names, seeds=(0, 1), hidden=64),
                               make_run(tmp_path / "b", names[:4], seeds=(0, 1), lr=0.01,
                                        subset=2000))  # fmt: skip
    return {"interrupted": interrupted, "together": together}


def _inside(inner, outer):
    return (inner.x0 >= outer.x0 - 1 and inner.x1 <= outer.x1 + 1
            and inner.y0 >= outer.y0 - 1 and inner.y1 <= outer.y1 + 1)  # fmt: skip


def _check_layout(fig, name):
    """The legend, the title and the caption lie in the figure, apart from one another and
    from the axes; the axes keep most of the width and a good height."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = fig.legends
    boxes = {"legend": legend.get_window_extent(renderer),
             "title": fig._suptitle.get_window_extent(renderer),
             "caption": next(t for t in fig.texts if t.get_gid() == "caption")
             .get_window_extent(renderer)}  # fmt: skip
    axes = [ax.get_tightbbox(renderer) for ax in fig.axes]  # with tick labels and titles
    for key, box in boxes.items():
        assert _inside(box, fig.bbox), (name, key)
        for ax_box in axes:
            assert not _overlap(box, ax_box), (name, key)
        for other, other_box in boxes.items():
            assert other == key or not _overlap(box, other_box), (name, key, other)
    panels = [ax.get_window_extent(renderer) for ax in fig.axes]
    width = max(b.x1 for b in panels) - min(b.x0 for b in panels)
    assert width > 0.75 * fig.bbox.width, name  # not squeezed sideways by the legend
    assert min(b.height for b in panels) > 2.4 * fig.dpi, name  # inches: nor from below
    assert max(len(line) for t in legend.get_texts() for line in t.get_text().splitlines()) <= (
        actbench.plots.LEGEND_WRAP
    )


def test_long_legend_labels_go_below_the_axes_and_cover_nothing(tmp_path, monkeypatch):
    figures = _captured(monkeypatch)
    for kind, frame in _long_label_frames(tmp_path).items():
        labels = [line.label for line in curves(frame, "train_loss")]  # with their notes
        assert max(len(label) for label in labels) > 50, kind  # long enough to wrap
        for column in ("train_loss", "test_accuracy"):
            fig = curve_figure(frame, column, epoch=2)
            shown = [t.get_text().replace("\n", " ") for t in fig.legends[0].get_texts()]
            assert len(shown) == len(labels) + 1  # every line, and the compared epoch
            _check_layout(fig, (kind, column))
        figures.clear()
        plot_health(frame, tmp_path / kind)
        assert [name for name, _ in figures] == ["gradient_flow.png", "dead_units.png"]
        for name, fig in figures:
            _check_layout(fig, (kind, name))


def test_the_legend_takes_as_many_columns_as_fit(tmp_path):
    short = selection_frame(make_run(tmp_path / "s", ["relu", "sigmoid", "tanh", "leaky"]))
    (legend,) = curve_figure(short, "train_loss").legends
    assert legend._ncols == 4  # four short labels side by side: one row
    frame = _long_label_frames(tmp_path)["together"]
    (legend,) = curve_figure(frame, "train_loss").legends
    assert 1 < legend._ncols < 6  # wrapped labels, more than one column, not all in one row


# --- Intervals cut to what a measure can be --------------------------------------------------


def _spread_run(folder, activations):
    """Two seeds far apart: a t interval with one degree of freedom reaches past 100% accuracy
    and below 0 loss. Seed 0: accuracy 99%, loss 0.05; seed 1: 90% and 1.0."""
    folder.mkdir(parents=True)
    config = RunConfig(activations=tuple(activations), seed=(0, 1), epochs=2).to_dict()
    writer = RunWriter(folder, list(activations), {"config": config, "status": "completed"})
    for seed, (accuracy, loss) in enumerate(((0.99, 0.05), (0.90, 1.0))):
        for epoch in (1, 2):
            writer.add([EpochResult(a, seed, epoch, loss, accuracy, loss, accuracy, 1.0)
                        for a in activations])  # fmt: skip
    return selection_frame(folder)


def _interval_ys(fig):
    """Every y value of the drawn intervals: bands' outlines and error bars' ends."""
    ax = fig.axes[0]
    ys = [p.vertices[:, 1] for band in _bands(fig) for p in band.get_paths()]
    ys += [np.asarray(s)[:, 1] for bar in _bars(fig) for s in bar.lines[2][0].get_segments()]
    return np.concatenate(ys), ax


def test_intervals_are_cut_to_what_the_measure_can_be(tmp_path):
    t = stats.t.ppf(0.975, 1)
    accuracy_sem, loss_sem = 100 * stats.sem([0.99, 0.90]), stats.sem([0.05, 1.0])
    low_accuracy, high_loss = 94.5 - t * accuracy_sem, 0.525 + t * loss_sem  # the uncut ends
    for names in (["relu", "tanh"], ["relu", "sigmoid", "tanh", "leaky", "gelu"]):  # bands, bars
        frame = _spread_run(tmp_path / str(len(names)), names)
        fig = curve_figure(frame, "test_accuracy")
        ys, ax = _interval_ys(fig)
        assert ys.max() == 100 and ys.min() == pytest.approx(low_accuracy)  # cut above only
        assert 94.5 + t * accuracy_sem > 100
        assert "intervals cut to the possible 0–100%" in _caption(fig)
        fig = curve_figure(frame, "train_loss")
        FigureCanvasAgg(fig).draw()
        ys, ax = _interval_ys(fig)
        assert 0.525 - t * loss_sem < 0 < ys.min()  # a loss cannot be negative: cut above 0
        assert ys.min() == pytest.approx(ax.get_ylim()[0])  # at the axis's bottom edge
        assert ys.max() == pytest.approx(high_loss)
        assert "intervals reaching 0 or below cut at the bottom edge" in _caption(fig)
    narrow = selection_frame(make_run(tmp_path / "narrow", ["relu", "tanh"], seeds=(0, 1, 2)))
    assert "cut" not in _caption(curve_figure(narrow, "test_accuracy"))  # said only if done


# --- One colour per activation in every figure of a report, well apart ----------------------


def _labelled_run(folder, specs):
    """A completed two-seed run of `specs` (`label=module:function` for a user's own), as
    `actbench run` writes it: rows by label, a cost file, the specs in the manifest."""
    folder.mkdir(parents=True)
    labels = [spec.split("=")[0] for spec in specs]
    config = RunConfig(activations=tuple(specs), seed=(0, 1), epochs=3).to_dict()
    writer = RunWriter(folder, labels, {"config": config, "activations": list(specs),
                                        "status": "completed", "started": folder.name})  # fmt: skip
    for seed in (0, 1):
        for epoch in (1, 2, 3):
            writer.add([_result(a, i, seed, epoch) for i, a in enumerate(labels)])
    rows = [[a, r, 0, 8, (i + 1) * r * 1e-6, 64, 128, 2, "cpu", 1, 10, 65536, 0]
            for i, a in enumerate(labels) for r in range(1, 21)]  # fmt: skip
    (folder / COST).write_text(pd.DataFrame(rows, columns=COST_COLUMNS).to_csv(index=False))
    return folder


def _colours_by_label(name, fig):
    """{label: colour} of the lines (or, in the cost chart, the bars) of a figure."""
    if name == "activation_cost.png":
        ax = fig.axes[0]
        at = {y: t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}
        return {at[round(p.get_y() + p.get_height() / 2)]: to_hex(p.get_facecolor())
                for p in ax.patches}  # fmt: skip
    return {line.get_label(): to_hex(line.get_color()) for ax in fig.axes for line in ax.lines
            if not line.get_label().startswith(("_", "compared"))}  # fmt: skip


def test_a_report_gives_each_activation_one_colour_in_every_figure(tmp_path, monkeypatch):
    # sin's preferred colour is too close to selu's, cos and exp prefer the same one
    assert distance(activation_style("sin").colour, activation_style("selu").colour) < SEPARATION
    assert activation_style("cos").colour == activation_style("exp").colour
    specs = ["relu", "sigmoid", "tanh", "leaky", "gelu", "selu", "sin=torch:sin",
             "cos=torch:cos", "exp=torch:exp"]  # fmt: skip
    selection = select_models(find_runs(_labelled_run(tmp_path / "run", specs)))
    figures = _captured(monkeypatch)
    make_report(selection, tmp_path / "plots")
    drawn = {name: _colours_by_label(name, fig) for name, fig in figures}
    assert {"activations.png", "activation_cost.png", "test_accuracy.png"} <= set(drawn)
    labels = [spec.split("=")[0] for spec in specs]
    for label in labels:
        seen = {name: colours[label] for name, colours in drawn.items() if label in colours}
        assert len(seen) >= 5 and len(set(seen.values())) == 1, (label, seen)
    for name, colours in drawn.items():
        for (a, first), (b, second) in itertools.combinations(colours.items(), 2):
            built_in = a in PALETTE_NAMES and b in PALETTE_NAMES
            floor = 16 if built_in else SEPARATION  # tab10's own closest pair is 16.2
            assert distance(first, second) >= floor, (name, a, b, first, second)
    assert drawn["activations.png"]["relu"] == PALETTE[0]  # built-ins keep their own


def test_an_activation_keeps_its_colour_from_report_to_report():
    one = activation_styles(["relu", "sin"])
    two = activation_styles(["my_acts:Square", "tanh", "sin", "relu", "leaky"])
    assert one["sin"] == two["sin"] == activation_style("sin")  # nothing too close: its own
    assert one["relu"].colour == two["relu"].colour == PALETTE[0]
    forward = activation_styles(["cos", "exp", "relu"])
    assert forward == activation_styles(["relu", "exp", "cos"])  # the order plays no part
    assert forward["cos"].colour != forward["exp"].colour
    with_selu = activation_styles(["selu", "sin"])  # now sin's own is too close to selu's
    assert distance(with_selu["sin"].colour, with_selu["selu"].colour) >= SEPARATION


def test_colour_differences_match_the_published_test_data():
    # CIEDE2000 test pairs of Sharma, Wu and Dalal (2005), table 1: L*a*b* twice, then ΔE00
    pairs = """50 2.6772 -79.7751 50 0 -82.7485 2.0425 | 50 -1.3802 -84.2814 50 0 -82.7485 1.0000
    | 50 0 0 50 -1 2 2.3669 | 50 2.49 -0.001 50 -2.49 0.0009 7.1792
    | 50 2.49 -0.001 50 -2.49 0.0011 7.2195 | 50 -0.001 2.49 50 0.0009 -2.49 4.8045
    | 50 -0.001 2.49 50 0.0011 -2.49 4.7461 | 50 2.5 0 50 0 -2.5 4.3065
    | 50 2.5 0 73 25 -18 27.1492 | 50 2.5 0 61 -5 29 22.8977 | 50 2.5 0 56 -27 -3 31.9030
    | 50 2.5 0 58 24 15 19.4535 | 60.2574 -34.0099 36.2677 60.4626 -34.1751 39.4387 1.2644
    | 22.7233 20.0904 -46.6940 23.0331 14.9730 -42.5619 2.0373
    | 90.9257 -0.5406 -0.9208 88.6381 -0.8985 -0.7239 1.5381
    | 2.0776 0.0795 -1.1350 0.9033 -0.0636 -0.5514 0.9082"""
    for pair in pairs.split("|"):
        values = [float(v) for v in pair.split()]
        first, second, expected = tuple(values[:3]), tuple(values[3:6]), values[6]
        assert delta_e(first, second) == pytest.approx(expected, abs=5e-5)
        assert delta_e(second, first) == pytest.approx(expected, abs=5e-5)
    # sRGB reaches CIELAB as D65 white: white is L* 100, greys have no colour
    assert lab("white") == pytest.approx((100, 0, 0), abs=1e-3)
    assert lab("#808080")[1:] == pytest.approx((0, 0), abs=1e-3)


def test_epochs_left_with_one_seed_draw_no_interval_on_a_log_axis(tmp_path):
    frame = _long_label_frames(tmp_path)["interrupted"]  # epoch 4 has seed 0 alone
    fig = curve_figure(frame, "train_loss")
    ends = [np.asarray(s).reshape(-1, 2)[:, 0] for bar in _bars(fig)
            for s in bar.lines[2][0].get_segments() if len(s)]  # fmt: skip
    assert ends and all(abs(x - 4).min() > 0.5 for x in ends)  # error bars up to epoch 3 only


# --- A study's depth sweep: every activation shows, its log axis labelled readably ----------


def _depth_study(folder, activations, grad, stuck):
    """A study over depth 2 and 8 whose layer-1 gradient and saturated-or-dead share are
    `grad[activation]` and `stuck[activation]` at every depth, seed and epoch."""
    write_study(folder, grid={"depth": [2, 8]}, activations=activations)
    rows = pd.read_csv(folder / "metrics.csv")
    rows["grad_layer1"] = rows["activation"].map(grad)
    bounded = rows["activation"].isin(["sigmoid", "tanh"])
    rows["saturated_layer1"] = rows["activation"].map(stuck).where(bounded)
    rows["dead_layer1"] = rows["activation"].map(stuck).where(~bounded)
    rows.to_csv(folder / "metrics.csv", index=False, na_rep="nan")
    (run,) = find_runs(folder)
    return study_data(run)


def test_a_depth_sweep_shows_activations_that_coincide_apart_in_every_panel(tmp_path):
    # relu and gelu have no dead unit at any depth: the same points, one on the other
    names = ("relu", "tanh", "gelu")
    data = _depth_study(tmp_path / "run-s", names, {"relu": 2e-3, "tanh": 3e-3, "gelu": 2e-3},
                        {"relu": 0.0, "tanh": 0.05, "gelu": 0.0})  # fmt: skip
    fig = depth_sweep_figure(data)
    FigureCanvasAgg(fig).draw()
    left, middle, right = fig.axes
    shifts = {}
    for ax in (left, middle, right):
        lines = {line.get_label(): line for line in ax.lines}
        assert set(lines) == set(names)
        for name, line in lines.items():
            shift = np.asarray(line.get_xdata(), float) - [2, 8]
            assert len(set(np.round(shift, 9))) == 1  # the same shift at every depth
            assert shifts.setdefault(name, shift[0]) == shift[0]  # and in every panel
    assert len(set(shifts.values())) == len(names)
    # relu's and gelu's markers, at the same height, lie more than a marker's width apart
    lines = {line.get_label(): line for line in middle.lines}
    relu, gelu = (middle.transData.transform(lines[n].get_xydata()) for n in ("relu", "gelu"))
    np.testing.assert_allclose(relu[:, 1], gelu[:, 1])
    marker = max(lines[n].get_markersize() for n in ("relu", "gelu")) * fig.dpi / 72
    assert (np.abs(relu[:, 0] - gelu[:, 0]) > marker).all()
    for line in middle.lines:  # and inside the axes, not past its edges
        x, _ = middle.transData.transform(line.get_xydata()).T
        assert (middle.bbox.x0 < x).all() and (x < middle.bbox.x1).all()
    assert [t.get_text() for t in right.get_legend().get_texts()] == list(names)
    assert "set slightly apart at each depth" in fig.texts[0].get_text()


def test_a_depth_sweep_labels_its_gradient_axis_at_whole_decades_only(tmp_path):
    # gradients within one decade: matplotlib would label 2×10⁻³, 3×10⁻³, ... and no decade
    data = _depth_study(tmp_path / "run-s", ("relu", "tanh"), {"relu": 2e-3, "tanh": 6e-3},
                        {"relu": 0.0, "tanh": 0.05})  # fmt: skip
    fig = depth_sweep_figure(data)
    FigureCanvasAgg(fig).draw()
    left = fig.axes[0]
    assert left.get_yscale() == "log"
    assert not [t.get_text() for t in left.get_yticklabels(minor=True) if t.get_text()]
    low, high = left.get_ylim()
    shown = [(tick, label.get_text()) for tick, label in
             zip(left.get_yticks(), left.get_yticklabels(), strict=True)
             if low <= tick <= high and label.get_text()]  # fmt: skip
    assert [tick for tick, _ in shown] == pytest.approx([1e-3, 1e-2])
    for line in left.lines:  # every point still inside the axis
        y = np.asarray(line.get_ydata(), float)
        assert (low < y).all() and (y < high).all()
