"""Figures a student pastes into a report: one colour per activation in every figure and run,
losses on a log axis, intervals only from several seeds and readable with many lines, the
set-up in a caption, legends off the curves, and overlapping functions all visible."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.container import ErrorbarContainer
from matplotlib.image import imread

from actbench.catalog import CATALOG
from actbench.config import RunConfig
from actbench.plots import (
    BANDS_UP_TO,
    EXTRA,
    PALETTE,
    activation_style,
    curve_figure,
    forest_figure,
    line_styles,
    plot_activations,
    plot_health,
    setup_line,
)
from actbench.results import RunWriter, find_runs
from actbench.selection import select_models
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
