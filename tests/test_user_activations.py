"""A user's own activation: checked as training uses it before anything is written, given a
short label, and drawn through the shapes training uses."""

from __future__ import annotations

import json
import re
import sys
import textwrap

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import actbench.plots
from actbench.activations import check_trainable, resolve, resolve_all
from actbench.cli import app
from actbench.errors import UsageError
from actbench.plots import activation_curve, plot_activations, plot_runs
from actbench.results import activation_specs, find_runs, load_runs

runner = CliRunner()
FAST = ["--epochs", "1", "--hidden", "8", "--batch-size", "32"]

MODULE = """
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class InplaceReLU(nn.Module):
    def forward(self, x):
        return F.relu(x, inplace=True)


def relu_in_place(x):
    return x.relu_()


def data_in_place(x):
    x.data.clamp_(min=0)
    return x * 1


def saved_then_changed(x):
    y = torch.sigmoid(x)
    y.mul_(2)  # sigmoid's backward needs its output: changed in place, it fails there
    return y


def through_numpy(x):
    return torch.from_numpy(np.maximum(x.detach().numpy(), 0))


def detached(x):
    return torch.relu(x.detach())


def constant(x):
    return torch.zeros_like(x)


def summed(x):
    return x.sum(dim=1)


def wrong_rows(x):
    return x.view(3, 16, -1).sum(0)


def float64(x):
    return torch.relu(x).double()


def as_list(x):
    return [x]


def log(x):
    return torch.log(x)


def fixed_batch(x):
    return x.view(16, -1).relu()


def no_backward(x):
    return _NoBackward.apply(x)


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward not written")


class NeedsArgument(nn.Module):
    def __init__(self, k):
        super().__init__()


def row_softmax(x):
    return torch.softmax(x, dim=1)


class LearnedSlope(nn.Module):
    def __init__(self):
        super().__init__()
        self.slope = nn.Parameter(torch.randn(1))  # draws from torch's global generator

    def forward(self, x):
        return torch.maximum(x, self.slope * x)


def only_for_training(x):
    if x.shape[0] == 401:  # the rows of the activation figure
        raise IndexError("not for drawing")
    return torch.tanh(x)
"""

# (attribute, what the one line says is wrong)
CANNOT_TRAIN = [
    ("InplaceReLU", "it changes its input in place (RuntimeError: a leaf Variable that requires "
                    "grad is being used in an in-place operation.); return a new tensor instead"),
    ("relu_in_place", "it changes its input in place"),
    ("data_in_place", "it changes its input in place; return a new tensor instead"),
    ("saved_then_changed", "it changes its input in place (RuntimeError: one of the variables "
                           "needed for gradient computation has been modified"),
    ("through_numpy", "carries no gradient back to it (it leaves autograd"),
    ("detached", "carries no gradient back to it (it leaves autograd"),
    ("constant", "its output does not depend on its input"),
    ("summed", "it returns shape (16,) for an input of shape (16, 8)"),
    ("wrong_rows", "calling it on a (16, 8) tensor that requires grad (as training does) failed "
                   "(RuntimeError:"),
    ("float64", "it returns torch.float64 for a torch.float32 input"),
    ("as_list", "it returns list, not a tensor"),
    ("log", "it returns NaN or infinite values for ordinary inputs"),
    ("fixed_batch", "calling it without gradients (as the test pass does) failed (RuntimeError: "
                    "shape '[16, -1]' is invalid"),
    ("no_backward", "its backward pass failed (RuntimeError: backward not written)"),
    ("NeedsArgument", "creating it failed (TypeError:"),
]  # fmt: skip


@pytest.fixture
def my_acts(tmp_path, monkeypatch):
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "my_acts.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("my_acts", None)


@pytest.mark.parametrize(("attr", "reason"), CANNOT_TRAIN, ids=[a for a, _ in CANNOT_TRAIN])
def test_an_activation_that_cannot_train_is_refused_with_its_reason(my_acts, attr, reason):
    activation = resolve(f"my_acts:{attr}")  # it imports: only the probe finds the fault
    with pytest.raises(UsageError) as caught:
        check_trainable(activation, batch_size=64, hidden=8)
    message = str(caught.value)
    assert message.startswith(f"activation 'my_acts:{attr}' cannot be trained: ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("spec", ["my_acts:row_softmax", "my_acts:LearnedSlope", "torch:sin",
                                  "torch:sign", "sq=my_acts:only_for_training"])  # fmt: skip
def test_activations_that_train_pass_the_probe(my_acts, spec):
    # torch.sign's gradient is 0 everywhere: a poor activation, but one that trains
    check_trainable(resolve(spec), batch_size=64, hidden=8)


def test_the_probe_leaves_the_global_random_state_alone(my_acts):
    torch.manual_seed(5)
    before = torch.get_rng_state()
    check_trainable(resolve("my_acts:LearnedSlope"), batch_size=64, hidden=8)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_probe_uses_the_training_width(my_acts):
    # a function written for (batch, units) tensors of one width fails at another
    (my_acts / "wide.py").write_text(
        "import torch\nW = torch.eye(8)\ndef mix(x):\n    return torch.tanh(x @ W)\n"
    )
    check_trainable(resolve("wide:mix"), batch_size=64, hidden=8)
    with pytest.raises(UsageError, match=r"calling it on a \(16, 16\) tensor .* failed"):
        check_trainable(resolve("wide:mix"), batch_size=64, hidden=16)
    sys.modules.pop("wide", None)


def test_a_module_that_fails_as_it_is_imported_is_one_usage_error(my_acts):
    (my_acts / "broken_acts.py").write_text("1 / 0\n")
    with pytest.raises(UsageError, match=r"importing 'broken_acts' .* failed \(ZeroDivisionError"):
        resolve("broken_acts:act")
    sys.modules.pop("broken_acts", None)


def test_the_issue_example_is_refused_before_any_run_folder(my_acts, mnist_dir, tmp_path):
    results = tmp_path / "results"
    result = runner.invoke(app, ["run", "-a", "relu,my_acts:InplaceReLU", *FAST, "--data-dir",
                                 str(mnist_dir), "--results-dir", str(results)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: activation 'my_acts:InplaceReLU' cannot be trained: it changes its input in "
        "place (RuntimeError: a leaf Variable that requires grad is being used in an in-place "
        "operation.); return a new tensor instead"
    ]
    assert not results.exists()


def test_a_short_label_names_the_activation_everywhere(my_acts, mnist_dir, tmp_path):
    results = tmp_path / "results"
    args = ["run", "-a", "relu,sin=torch:sin,soft=my_acts:row_softmax", *FAST, "--workers", "2",
            "--baseline", "sin", "--data-dir", str(mnist_dir), "--results-dir", str(results)]  # fmt: skip
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    (run_dir,) = results.iterdir()
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert frame["activation"].tolist() == ["relu", "sin", "soft"]
    assert pd.read_csv(run_dir / "cost.csv")["activation"].unique().tolist() == [
        "relu", "sin", "soft"
    ]  # fmt: skip
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["activations"] == [
        "relu",
        "sin=torch:sin",
        "soft=my_acts:row_softmax",
    ]
    assert manifest["activations"] == ["relu", "sin", "soft"]
    assert "minus sin's" in result.stdout  # the baseline, by its label
    # sin really is torch.sin: the same numbers as the same function without a label
    alone = runner.invoke(app, ["run", "-a", "relu,torch:sin,my_acts:row_softmax", *FAST,
                                "--workers", "1", "--data-dir", str(mnist_dir),
                                "--results-dir", str(tmp_path / "plain")])  # fmt: skip
    assert alone.exit_code == 0, alone.output
    plain = pd.read_csv(next((tmp_path / "plain").iterdir()) / "metrics.csv")
    assert plain["test_loss"].tolist() == frame["test_loss"].tolist()
    # and a labelled run resumes
    resumed = runner.invoke(app, ["run", "--resume", str(run_dir), "--epochs", "2"])
    assert resumed.exit_code == 0, resumed.output
    again = pd.read_csv(run_dir / "metrics.csv")
    assert again["activation"].tolist() == ["relu", "sin", "soft"] * 2


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["s n=torch:sin"], "cannot use 's n' as the label of activation 's n=torch:sin'"),
        (["a:b=torch:sin"], "cannot use 'a:b' as the label"),
        (["=torch:sin"], "cannot use '' as the label"),
        (["x" * 31 + "=torch:sin"], "a label is up to 30 letters"),
        (["relu=torch:sin"], "it names the built-in activation 'relu'"),
        (["Swish=torch:sin"], "it names the built-in activation 'silu'"),
        (["sin="], "has a label but no function"),
        (["sin=torch:sin", "sin=torch:cos"], "the label 'sin' is given twice"),
        (["sin=torch:sin", "torch:sin"], "activation 'torch:sin' is listed twice"),
        (["a=leaky:0.1", "Leaky_ReLU:0.10"], "is listed twice (as 'a=leaky:0.1')"),
    ],
)
def test_bad_labels_are_refused(specs, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        resolve_all(specs)


def test_labels_of_builtins_and_their_specs():
    (activation,) = resolve_all(["slope=leaky:0.1"])
    assert (activation.label, activation.spec, activation.function) == (
        "slope", "slope=leaky:0.1", "leaky:0.1"
    )  # fmt: skip
    assert activation().negative_slope == pytest.approx(0.1)


def _captured(monkeypatch):
    """The figures `plot_activations` saves, in order."""
    figures = []
    real = actbench.plots._save

    def save(fig, path):
        figures.append(fig)
        return real(fig, path)

    monkeypatch.setattr(actbench.plots, "_save", save)
    return figures


def _drawn(fig):
    return fig.axes[0].get_legend_handles_labels()[1]


def test_a_function_of_batch_by_units_tensors_is_drawn(my_acts, monkeypatch, tmp_path):
    x, y, dy, coupled = activation_curve(resolve("my_acts:row_softmax"), hidden=8)
    # unit 1 with the other 7 at 0: e^x / (e^x + 7), and its derivative s (1 - s)
    expected = torch.exp(x) / (torch.exp(x) + 7)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(dy, expected * (1 - expected))
    assert coupled
    x, y, dy, coupled = activation_curve(resolve("torch:tanh"), hidden=8)
    torch.testing.assert_close(y, torch.tanh(x))
    torch.testing.assert_close(dy, 1 - torch.tanh(x) ** 2)
    assert not coupled


def test_what_cannot_be_drawn_is_left_out_with_a_note(my_acts, monkeypatch, tmp_path):
    figures = _captured(monkeypatch)
    labels = ["relu", "my_acts:row_softmax", "my_acts:summed", "t",
              "not_installed_pkg:Act", "sin", "clash"]  # fmt: skip
    specs = {"sin": "sin=torch:sin", "t": "t=my_acts:only_for_training", "clash": None}
    path = plot_activations(labels, tmp_path / "a.png", specs=specs, hidden=8)
    assert path.exists()
    (fig,) = figures
    assert _drawn(fig) == ["relu", "my_acts:row_softmax (unit 1; the other 7 at 0)", "sin"]
    note = fig._suptitle.get_text()
    assert "my_acts:summed (drawing it failed: ValueError)" in note
    assert "t (drawing it failed: IndexError)" in note
    assert "not_installed_pkg:Act (cannot be imported here)" in note
    assert "clash (runs give this label to different functions)" in note


def test_plot_draws_a_function_of_batch_by_units_tensors(my_acts, mnist_dir, tmp_path):
    """The issue's example: a softmax over dim=1 trained, then `actbench plot` failed."""
    results = tmp_path / "results"
    result = runner.invoke(app, ["run", "-a", "relu,my_acts:row_softmax", *FAST, "--data-dir",
                                 str(mnist_dir), "--results-dir", str(results)])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plot", str(results)])
    assert result.exit_code == 0, result.output
    assert (results / "plots" / "activations.png").exists()
    assert (results / "plots" / "report.md").exists()


def test_labels_are_found_in_the_manifests(my_acts, mnist_dir, tmp_path, monkeypatch):
    results = tmp_path / "results"
    for name, spec in (("a", "sin=torch:sin"), ("b", "sin=torch:sin"), ("c", "cos=torch:cos")):
        result = runner.invoke(app, ["run", "-a", f"relu,{spec}", *FAST, "--data-dir",
                                     str(mnist_dir), "--results-dir", str(results / name)])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert activation_specs(find_runs(results)) == {"sin": "sin=torch:sin", "cos": "cos=torch:cos"}
    result = runner.invoke(app, ["run", "-a", "sin=torch:tanh", *FAST, "--data-dir",
                                 str(mnist_dir), "--results-dir", str(results / "d")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert activation_specs(find_runs(results))["sin"] is None  # two functions under one label
    figures = _captured(monkeypatch)
    runs = find_runs(results / "a")
    plot_runs(load_runs(results / "a"), tmp_path / "plots", specs=activation_specs(runs))
    assert _drawn(figures[-1]) == ["relu", "sin"]
