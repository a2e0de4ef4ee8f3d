"""Initialisation schemes against torch.nn.init, the recommended scheme of each activation,
and the settings that choose them."""

from __future__ import annotations

import math

import pytest
import torch
from rich.console import Console
from torch import nn

from actbench.activations import Activation, resolve_all
from actbench.catalog import CATALOG, catalog_table
from actbench.config import make_config
from actbench.errors import UsageError
from actbench.init import SCHEMES, make_linear, scheme_for
from actbench.model import MLP
from actbench.train import build_models

IN, HIDDEN, CLASSES, DEPTH, SEED = 784, 256, 10, 3, 7
WIDTHS = [IN, *[HIDDEN] * DEPTH, CLASSES]
# Each scheme's weight std for a layer with fan_in inputs and fan_out outputs, from the papers
STD = {
    "kaiming": lambda fan_in, fan_out: math.sqrt(2 / fan_in),  # He et al. 2015
    "xavier": lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out)),  # Glorot, Bengio 2010
    "lecun": lambda fan_in, fan_out: 1 / math.sqrt(fan_in),  # LeCun et al. 1998
}
# The same draws written with torch.nn.init directly, on a (fan_out, fan_in) weight
DIRECT = {
    "kaiming": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
    "xavier": lambda w: nn.init.xavier_normal_(w),
    "lecun": lambda w: nn.init.normal_(w, 0.0, 1 / math.sqrt(w.shape[1])),
}


def model(scheme, names=("relu",)):
    return build_models(resolve_all(list(names)), HIDDEN, IN, SEED, depth=DEPTH, init=scheme)


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "lecun"])
def test_each_scheme_draws_what_torch_nn_init_draws_from_the_same_generator_state(scheme):
    (built,) = model(scheme)
    torch.manual_seed(SEED)
    for i, linear in enumerate(built.linears()):
        expected = DIRECT[scheme](torch.empty(WIDTHS[i + 1], WIDTHS[i]))
        assert torch.equal(linear.weight, expected)
        assert torch.equal(linear.bias, torch.zeros(WIDTHS[i + 1]))


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "lecun"])
def test_each_scheme_has_the_papers_standard_deviation(scheme):
    (built,) = model(scheme)
    for i, linear in enumerate(built.linears()):
        fan_in, fan_out = WIDTHS[i], WIDTHS[i + 1]
        weight = linear.weight.detach().double()
        # the sample std of n normal draws is within 5 standard errors (std / sqrt(2n))
        n = weight.numel()
        assert abs(weight.mean().item()) < 5 * STD[scheme](fan_in, fan_out) / math.sqrt(n)
        assert weight.std().item() == pytest.approx(
            STD[scheme](fan_in, fan_out), rel=5 / math.sqrt(2 * n)
        )


@pytest.mark.parametrize("depth", [2, 3])
def test_torch_is_nn_linears_own_default_exactly(depth):
    """init=torch (the default) builds the layers as the classic network always did: nn.Linear
    after nn.Linear from the seeded generator, the activations after them."""
    (built,) = build_models(resolve_all(["prelu"]), HIDDEN, IN, SEED, depth=depth)
    torch.manual_seed(SEED)
    widths = [IN, *[HIDDEN] * depth, CLASSES]
    expected = [nn.Linear(widths[i], widths[i + 1]) for i in range(depth + 1)]
    slopes = [nn.PReLU() for _ in range(depth)]
    for linear, reference in zip(built.linears(), expected, strict=True):
        assert torch.equal(linear.weight, reference.weight)
        assert torch.equal(linear.bias, reference.bias)
    names = [f"fc{i + 1}.{p}" for i in range(depth + 1) for p in ("weight", "bias")]
    assert list(built.state_dict()) == names + [f"act{i + 1}.weight" for i in range(depth)]
    assert all(
        torch.equal(a.weight, b.weight) for a, b in zip(built.activations(), slopes, strict=True)
    )


def test_models_that_share_a_scheme_start_from_the_same_weights():
    names = ["relu", "leaky", "tanh", "prelu"]
    for scheme in SCHEMES:
        models = model(scheme, names)
        for other in models[1:]:
            for mine, theirs in zip(models[0].linears(), other.linears(), strict=True):
                assert torch.equal(mine.weight, theirs.weight)
                assert torch.equal(mine.bias, theirs.bias)
    kaiming, xavier = model("kaiming")[0], model("xavier")[0]
    assert not torch.equal(kaiming.fc1.weight, xavier.fc1.weight)


def test_auto_gives_each_activation_its_recommended_scheme():
    own = Activation("own", nn.ReLU)  # a user's own: torch's default
    activations = [*resolve_all(["relu", "gelu", "tanh", "sigmoid", "selu", "identity"]), own]
    auto = build_models(activations, HIDDEN, IN, SEED, depth=DEPTH, init="auto")
    expected = ["kaiming", "kaiming", "xavier", "xavier", "lecun", "xavier", "torch"]
    assert [a.recommended_init for a in activations] == expected
    for built, scheme in zip(auto, expected, strict=True):
        (reference,) = model(scheme)
        for mine, theirs in zip(built.linears(), reference.linears(), strict=True):
            assert torch.equal(mine.weight, theirs.weight)


def test_every_built_in_has_a_recommended_scheme_shown_by_actbench_activations():
    console = Console(record=True, width=80)
    console.print(catalog_table())
    lines = console.export_text().splitlines()
    for entry in CATALOG:
        assert entry.init in SCHEMES and entry.init != "torch"
        (row,) = [i for i, line in enumerate(lines) if line[:11].split() == [entry.name]]
        assert lines[row + 2].strip().split(";")[0] == f"init {entry.init}"  # its third line
    assert {e.name: e.init for e in CATALOG}["selu"] == "lecun"


def test_an_activation_that_draws_random_numbers_does_not_shift_the_weights():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.rand(1))

    for scheme in SCHEMES:
        torch.manual_seed(1)
        plain = MLP(nn.ReLU, 5, 4, depth=2, init=scheme)
        torch.manual_seed(1)
        noisy = MLP(Noisy, 5, 4, depth=2, init=scheme)
        for mine, theirs in zip(plain.linears(), noisy.linears(), strict=True):
            assert torch.equal(mine.weight, theirs.weight)


def test_unknown_schemes_are_refused():
    with pytest.raises(ValueError, match="unknown initialisation 'he'"):
        make_linear(3, 2, "he")
    with pytest.raises(ValueError, match="unknown initialisation"):
        scheme_for("auto", "orthogonal")
    assert scheme_for("auto", "lecun") == "lecun" and scheme_for("xavier", "lecun") == "xavier"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"depth": 0}, "depth must be from 1 to 32 hidden layers, got 0"),
        ({"depth": 33}, "depth must be from 1 to 32 hidden layers, got 33"),
        ({"depth": 2.5}, "depth must be an integer, got 2.5"),
        ({"depth": True}, "depth must be an integer, got True"),
        ({"init": "he"}, "init must be one of torch, kaiming, xavier, lecun, auto, got 'he'"),
        ({"init": 1}, "init must be a string, got 1"),
    ],
)
def test_bad_depth_or_init_is_a_one_line_usage_error(overrides, message):
    with pytest.raises(UsageError) as caught:
        make_config(overrides)
    assert str(caught.value) == message


def test_depth_and_init_settings():
    assert (make_config({}).depth, make_config({}).init) == (2, "torch")
    config = make_config({"depth": 32, "init": "Kaiming"})
    assert (config.depth, config.init) == (32, "kaiming")
    assert make_config(config.to_dict()) == config
    assert make_config({"depth": 1}).to_dict()["depth"] == 1
