"""The critical-difference diagram of a ranking (Demšar 2006, figures 1 and 2).

The mean ranks lie on an axis (1 = best, on the left), each activation named beside its rank;
a thick bar joins activations that the Nemenyi test does not tell apart, and the length of the
critical difference is drawn above the axis. Drawn with matplotlib from an
`actbench.ranking.Ranking`.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: works headless, with no display or backend

from actbench.outputs import write_output
from actbench.ranking import FRIEDMAN, Ranking, p_phrase

WIDTH = 7.5  # inches: the width of a report page's figure
ROW = 0.32  # the vertical step between the names, in axis units
BAR = 0.16  # the vertical step between the bars


def groups(result: Ranking) -> list[tuple[int, int]]:
    """The bars of the diagram: (first, last) positions in rank order (0 = best) of each
    longest run of activations in which no pair differs (`Ranking.pairs`' `differs`); a run
    inside a longer one is left out.
    """
    order = list(result.mean_ranks.index)
    differ = {frozenset((a, b)) for a, b in result.differing()}
    found: list[tuple[int, int]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and not any(
            frozenset((order[m], order[j + 1])) in differ for m in range(i, j + 1)
        ):
            j += 1
        if j > i and (not found or j > found[-1][1]):
            found.append((i, j))
    return found


def caption(result: Ranking) -> str:
    """The sentence under the diagram: the test, alpha, N, k, the statistic and the CD."""
    if math.isnan(result.p):
        test = "no test: every activation ties in every configuration"
    else:
        test = (f"χ² = {result.statistic:.2f} ({result.activations - 1} degrees of freedom), "
                f"p {p_phrase(result.p)}")  # fmt: skip
    joined = "A bar joins activations not told apart"
    if not result.rejected:
        joined += " (all of them: the Friedman test does not reject)"
    return (
        f"{FRIEDMAN} (Demšar 2006), α = {result.alpha}, over {result.configs} configurations "
        f"({result.metric} averaged over seeds within each) and {result.activations} "
        f"activations: {test}; critical difference CD = {result.cd:.2f} mean ranks. {joined}."
    )


def cd_figure(result: Ranking) -> Figure:
    """The critical-difference diagram of `result` as a matplotlib Figure (`WIDTH` inches wide),
    with a title naming the metric and a caption (`caption`)."""
    ranks = result.mean_ranks
    k = len(ranks)
    bars = groups(result)
    left = math.ceil(k / 2)  # the better half is named on the left, the rest on the right
    top = 0.45 + BAR * len(bars)  # where the names start, below the axis and the bars
    rows = max(left, k - left)
    fig = Figure(figsize=(WIDTH, 1.5 + 0.3 * rows + 0.18 * len(bars)))
    ax = fig.add_axes((0.22, 0.02, 0.56, 0.82))
    ax.set_axis_off()
    ax.set_xlim(1, k)
    ax.set_ylim(top + ROW * rows, -1.0)  # y grows downwards
    line = {"color": "black", "linewidth": 1, "clip_on": False}
    ax.plot([1, k], [0, 0], **line)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, -0.12], **line)
        ax.text(tick, -0.18, str(tick), ha="center", va="bottom", fontsize=10)
    for half in range(1, 2 * k - 1, 2):
        ax.plot([1 + half / 2] * 2, [0, -0.06], **line)
    # the critical difference, measured from rank 1
    ax.plot([1, 1 + result.cd], [-0.75, -0.75], color="black", linewidth=1.5, clip_on=False)
    for x in (1, 1 + result.cd):
        ax.plot([x, x], [-0.82, -0.68], **line)
    ax.text(1 + result.cd / 2, -0.82, f"CD = {result.cd:.2f}", ha="center", va="bottom",
            fontsize=10)  # fmt: skip
    for n, (name, rank) in enumerate(ranks.items()):
        on_left = n < left
        y = top + ROW * (n if on_left else k - 1 - n)
        end = 1 - 0.06 * (k - 1) if on_left else k + 0.06 * (k - 1)
        ax.plot([rank, rank, end], [0, y, y], **line)
        ax.text(end - 0.01 * (k - 1) if on_left else end + 0.01 * (k - 1), y,
                f"{name} ({rank:.2f})", ha="right" if on_left else "left", va="center",
                fontsize=10)  # fmt: skip
    for b, (i, j) in enumerate(bars):
        y = 0.3 + BAR * b
        ax.plot([ranks.iloc[i] - 0.03, ranks.iloc[j] + 0.03], [y, y], color="black",
                linewidth=4, solid_capstyle="butt", clip_on=False)  # fmt: skip
    metric = result.metric.replace("_", " ")
    fig.suptitle(f"Mean rank of the activations by {metric} (1 = best)", fontsize=11, y=1.02)
    fig.text(0.5, -0.02, textwrap.fill(caption(result), 95), ha="center", va="top",
             fontsize=8.5, gid="caption")  # fmt: skip
    return fig


def critical_difference_figure(result: Ranking, path: Path) -> Path:
    """Write `cd_figure(result)` to `path` as a PNG at 150 dpi (the bounding box takes in the
    caption and the names); return `path`. A failing disk raises ActbenchError (one line).
    """
    buffer = io.BytesIO()
    cd_figure(result).savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    write_output(path, buffer.getvalue())
    return path
