"""The built-in activations described without importing torch: names, formulas, notes.

`actbench activations` prints this catalogue at once; `actbench.activations.REGISTRY` pairs
each entry with the module that computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Entry:
    """One built-in activation as a reader sees it."""

    name: str
    formula: str
    output_range: str
    note: str  # one short line: what it is good or bad for
    aliases: tuple[str, ...] = ()
    parameter: str | None = None  # what the number in `name:NUMBER` sets, if anything
    elementwise: bool = True  # False when a unit's output depends on the other units
    # The initialisation `--init auto` gives it (`actbench.init`): kaiming (He et al. 2015) for
    # ReLU-like functions, xavier (Glorot and Bengio 2010) for saturating and linear ones,
    # lecun (LeCun et al. 1998) for SELU, as Klambauer et al. 2017 prescribe.
    init: str = "torch"


CATALOG: tuple[Entry, ...] = (
    Entry("relu", "max(0, x)", "[0, ∞)",
          "cheap, the usual default; a unit stuck below 0 dies (no gradient)", init="kaiming"),
    Entry("leaky", "max(αx, x), α = 0.01", "(-∞, ∞)",
          "ReLU with a small slope below 0: a negative unit still learns",
          ("leaky_relu",), "negative slope α", init="kaiming"),
    Entry("sigmoid", "1 / (1 + e^-x)", "(0, 1)",
          "saturates at both ends, so gradients vanish; not zero-centred", init="xavier"),
    Entry("tanh", "(e^x - e^-x) / (e^x + e^-x)", "(-1, 1)",
          "zero-centred sigmoid; still saturates", init="xavier"),
    Entry("softmax", "e^x_i / Σ_j e^x_j over the hidden units", "(0, 1), sums to 1",
          "couples a layer's units; meant for outputs, here as a contrast",
          elementwise=False, init="xavier"),
    Entry("elu", "x if x > 0 else α(e^x - 1), α = 1", "(-α, ∞)",
          "smooth below 0 with negative outputs that push means toward 0",
          (), "α", init="kaiming"),
    Entry("gelu", "x · Φ(x), Φ the normal CDF", "[-0.17, ∞)",
          "smooth ReLU weighted by a Gaussian; the transformer default", init="kaiming"),
    Entry("silu", "x · σ(x)", "[-0.28, ∞)",
          "x times its own sigmoid; smooth, non-monotonic near 0", ("swish",), init="kaiming"),
    Entry("mish", "x · tanh(softplus(x))", "[-0.31, ∞)",
          "smooth, non-monotonic; close to silu", init="kaiming"),
    Entry("selu", "λ(x if x > 0 else α(e^x - 1)), λ ≈ 1.05, α ≈ 1.67", "(-1.76, ∞)",
          "needs LeCun-normal init to self-normalise: --init lecun or auto",
          init="lecun"),
    Entry("softplus", "ln(1 + e^(βx)) / β, β = 1", "(0, ∞)",
          "a smooth ReLU; never exactly 0", (), "β", init="kaiming"),
    Entry("prelu", "max(ax, x), a learned (starts at 0.25)", "(-∞, ∞)",
          "leaky ReLU whose slope is trained, one per layer", (), "initial slope a",
          init="kaiming"),
    Entry("identity", "x", "(-∞, ∞)",
          "no non-linearity: the network is a linear model; the control",
          ("linear", "none"), init="xavier"),
)  # fmt: skip


INIT_CAPTION = (
    "init: the start --init auto gives it: kaiming (He et al. 2015), xavier (Glorot and "
    "Bengio 2010), lecun (LeCun et al. 1998); your own functions: torch's default"
)


def catalog_table() -> Table:
    """The catalogue as `actbench activations` prints it: one entry per activation, its name
    beside three lines (formula and output range; note; the initialisation `--init auto`
    gives it, with its aliases and parameter), so that every line fits an 80-column terminal
    whole."""
    table = Table(
        title="Built-in activations (names are case-insensitive)",
        caption=INIT_CAPTION,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    table.add_column("name", no_wrap=True)
    table.add_column("f(x); output range; note; init (--init auto), aliases, parameter")
    for entry in CATALOG:
        text = Text(f"{entry.formula}; range {entry.output_range}\n")
        text.append(entry.note, style="dim")
        more = [f"init {entry.init}"]
        if entry.aliases:
            more.append(f"also {', '.join(entry.aliases)}")
        if entry.parameter:
            more.append(f"{entry.name}:X sets {entry.parameter}")
        text.append("\n" + "; ".join(more))
        table.add_row(entry.name, text)
    return table
