"""Networks of any depth: the lockstep step against a textbook network, unit health of every
layer, the CSV columns deeper layers add, and checkpoints that continue exactly."""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from actbench.activations import resolve_all
from actbench.cli import app
from actbench.config import make_config
from actbench.cost import read_cost
from actbench.data import load_mnist, prepare
from actbench.errors import UsageError
from actbench.experiment import resume_experiment, run_experiment
from actbench.lockstep import LockstepMLP
from actbench.optim import make_optimizer
from actbench.results import COLUMNS, METRICS, SETTINGS, RunWriter, read_metrics
from actbench.train import (
    EpochResult,
    ModelState,
    build_models,
    deeper_columns,
    health_columns,
    train_lockstep,
    unit_health,
)

NAMES = ["relu", "tanh", "prelu"]  # torch's kernels, and autograd (a learned slope)


def textbook(make_activation, depth, hidden, in_features, classes, seed):
    """nn.Sequential of nn.Linear and activations, its linear layers made first (as MLP does)."""
    torch.manual_seed(seed)
    widths = [in_features, *[hidden] * depth, classes]
    linears = [nn.Linear(widths[i], widths[i + 1]) for i in range(depth + 1)]
    acts = [make_activation() for _ in range(depth)]
    layers = []
    for linear, act in zip(linears, acts, strict=False):
        layers += [linear, act]
    return nn.Sequential(*layers, linears[-1])


def textbook_weights(model, depth):
    """The Sequential's parameters in lockstep's order: each layer's weight (in, out, as
    `split_models` gives it) and bias, then the activations' parameters."""
    linears, acts = list(model)[0::2], list(model)[1::2]
    out = []
    for linear in linears:
        out += [linear.weight.detach().t(), linear.bias.detach()]
    for act in acts:
        out += [p.detach() for p in act.parameters()]
    return out


@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize(
    "settings",
    [{"optimizer": "adam", "lr": 1e-2}, {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}],
)
def test_lockstep_steps_match_a_textbook_network_of_that_depth(depth, settings):
    """Same initial weights, same losses step by step, same weights after the steps (float64,
    so that any difference in the arithmetic shows far above the rounding)."""
    hidden, in_features, classes, seed, steps, batch = 7, 11, 5, 3, 6, 9
    activations = resolve_all(NAMES)
    config = make_config(settings)
    net = LockstepMLP(
        build_models(activations, hidden, in_features, seed, classes=classes, depth=depth)
    ).double()
    optimizer = make_optimizer(net.weights(), config)
    references = [
        textbook(a, depth, hidden, in_features, classes, seed).double() for a in activations
    ]
    if config.optimizer == "sgd":
        torch_optimizers = [
            torch.optim.SGD(m.parameters(), lr=config.lr, momentum=config.momentum)
            for m in references
        ]
    else:
        torch_optimizers = [torch.optim.Adam(m.parameters(), lr=config.lr) for m in references]
    for own, model in zip(net.split_models(net.weights()), references, strict=True):
        for got, want in zip(own, textbook_weights(model, depth), strict=True):
            assert torch.equal(got, want.double())  # built from the same draws
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(batch, in_features, generator=generator, dtype=torch.float64)
        y = torch.randint(0, classes, (batch,), generator=generator)
        scores = (
            torch.empty(net.k, batch, dtype=torch.float64),
            torch.empty(net.k, batch, dtype=torch.long),
        )
        optimizer.step(net.train_step(x, y, scores))
        for k, (model, torch_optimizer) in enumerate(
            zip(references, torch_optimizers, strict=True)
        ):
            torch_optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            torch_optimizer.step()
            assert -scores[0][k].mean().item() == pytest.approx(loss.item(), rel=1e-12)
    assert len(net.split_models(net.weights())[2]) == 2 * (depth + 1) + depth  # prelu's slopes
    for own, model in zip(net.split_models(net.weights()), references, strict=True):
        expected = textbook_weights(model, depth)
        assert len(own) == len(expected)
        for got, want in zip(own, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 4, 32])
def test_the_stacked_forward_and_state_match_each_model(depth):
    models = build_models(resolve_all(["gelu", "selu", "softmax"]), 6, 9, 2, depth=depth)
    net = LockstepMLP(models)
    x = torch.randn(5, 9)
    out = net(x)
    hidden = net.hidden_layers(x)
    assert out.shape == (3, 5, 10) and len(hidden) == depth
    for k, model in enumerate(models):
        torch.testing.assert_close(out[k], model(x))
        state = net.model_state(k)
        assert list(state) == list(model.state_dict())
        for name, tensor in model.state_dict().items():
            assert torch.equal(state[name], tensor)
        h = x
        for i, (linear, act) in enumerate(zip(model.linears(), model.activations(), strict=False)):
            h = act(linear(h))
            torch.testing.assert_close(hidden[i][k], h)


def test_models_of_different_depths_are_refused_in_one_group():
    acts = resolve_all(["relu"])
    models = build_models(acts, 4, 3, 0, depth=2) + build_models(acts, 4, 3, 0, depth=3)
    with pytest.raises(ValueError, match="same layers"):
        LockstepMLP(models)


def test_health_columns_of_each_depth():
    assert health_columns(1) == ["grad_layer1", "grad_layer2", "dead_layer1", "saturated_layer1"]
    assert health_columns(2) == [c for c in COLUMNS if "_layer" in c]  # today's columns
    assert deeper_columns(health_columns(4)) == [
        "grad_layer4", "grad_layer5", "dead_layer3", "dead_layer4", "saturated_layer3",
        "saturated_layer4",
    ]  # fmt: skip
    # several depths: the union, grad columns by layer first (layer 10 after layer 9)
    mixed = deeper_columns([*health_columns(9), *health_columns(3), "grad_layer10", "bonus"])
    assert mixed[:7] == [f"grad_layer{i}" for i in range(4, 11)]
    assert mixed[-1] == "saturated_layer9" and "bonus" not in mixed


def test_unit_health_of_every_layer_at_depth_4_by_hand_and_against_autograd():
    """Hidden layers 2 to 4 ignore their input (zero weights): their outputs are the
    activations of their biases, so dead and saturated shares are known by hand."""
    activations = resolve_all(["relu", "tanh", "identity"])
    models = build_models(activations, hidden=4, in_features=3, seed=0, depth=4)
    net = LockstepMLP(models)
    biases = {2: [5.0, -5.0, 0.0, 0.0], 3: [-1.0, -2.0, 0.5, 3.0], 4: [4.0, 1.0, -3.0, 0.2]}
    with torch.no_grad():
        for layer, bias in biases.items():
            getattr(net, f"w{layer}").zero_()
            getattr(net, f"b{layer}").copy_(torch.tensor(bias))
    for k, model in enumerate(models):
        model.load_state_dict(net.model_state(k))
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 4, 5])
    relu, tanh, identity = unit_health(net, activations, x, y)
    assert list(relu) == health_columns(4)
    # relu: layer 2 outputs (5, 0, 0, 0), layer 3 (0, 0, 0.5, 3), layer 4 (4, 1, 0, 0.2)
    assert (relu["dead_layer2"], relu["dead_layer3"], relu["dead_layer4"]) == (0.75, 0.5, 0.25)
    # tanh within 0.1 of ±1: layer 2 tanh(±5) two of four; layer 3 tanh(-2), tanh(3);
    # layer 4 tanh(4), tanh(-3)
    assert [tanh[f"saturated_layer{i}"] for i in (2, 3, 4)] == [0.5, 0.5, 0.5]
    assert all(math.isnan(relu[f"saturated_layer{i}"]) for i in range(1, 5))
    assert all(math.isnan(tanh[f"dead_layer{i}"]) for i in range(1, 5))
    assert all(math.isnan(identity[c]) for c in health_columns(4) if not c.startswith("grad"))
    for model, row in zip(models, (relu, tanh, identity), strict=True):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for i, linear in enumerate(model.linears(), start=1):
            assert row[f"grad_layer{i}"] == pytest.approx(linear.weight.grad.abs().mean().item())


def test_a_depth_1_row_has_nan_where_its_layers_end(mnist_dir):
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    rows = []
    config = make_config({"epochs": 1, "hidden": 8, "depth": 1})
    train_lockstep(resolve_all(["relu"]), data, config, seed=0, on_epoch=rows.extend)
    (row,) = rows
    assert row.grad_layer2 > 0 and row.dead_layer1 >= 0 and row.deeper_health == {}
    assert math.isnan(row.grad_layer3) and math.isnan(row.dead_layer2)


def test_a_deeper_run_writes_and_reads_back_its_extra_columns(mnist_dir, tmp_path):
    config = make_config(
        {"activations": ["relu", "sigmoid"], "epochs": 2, "hidden": 8, "depth": 4,
         "subset": 128, "data_dir": str(mnist_dir), "results_dir": str(tmp_path), "workers": 1}
    )  # fmt: skip
    run = run_experiment(config)
    frame = read_metrics(run.run_dir / METRICS)
    assert list(frame.columns) == COLUMNS + deeper_columns(health_columns(4))
    relu = frame[frame["activation"] == "relu"]
    assert relu[["grad_layer5", "dead_layer4"]].notna().all().all()
    assert relu["saturated_layer4"].isna().all()  # relu is not bounded
    assert frame[frame["activation"] == "sigmoid"]["saturated_layer3"].notna().all()
    assert run.manifest["config"]["depth"] == 4


def test_rows_of_two_depths_share_one_csv_with_nan_in_the_deeper_columns(tmp_path):
    shallow = EpochResult("relu", 0, 1, 0.5, 0.8, 0.6, 0.75, 0.1, grad_layer1=1.0)
    deep = EpochResult(
        "tanh", 0, 1, 0.5, 0.8, 0.6, 0.75, 0.1, grad_layer1=2.0,
        deeper_health={"grad_layer4": 4.0, "dead_layer3": math.nan, "saturated_layer3": 0.25},
    )  # fmt: skip
    deeper = deeper_columns(health_columns(3))  # the deepest network's: known from the start
    writer = RunWriter(tmp_path, ["relu", "tanh"], {}, columns=[*COLUMNS, *deeper])
    writer.add([shallow, deep])
    frame = read_metrics(tmp_path / METRICS)
    assert list(frame.columns) == [*COLUMNS, "grad_layer4", "dead_layer3", "saturated_layer3"]
    assert frame["grad_layer4"].tolist()[1] == 4.0 and math.isnan(frame["grad_layer4"][0])
    assert frame["saturated_layer3"].tolist()[1] == 0.25
    back = [EpochResult.from_row(r) for r in frame.drop(columns=list(SETTINGS)).to_dict("records")]
    assert back[1].deeper_health["grad_layer4"] == 4.0
    assert back[1].as_row().keys() == deep.as_row().keys()
    # a classic run's file keeps exactly today's columns
    (tmp_path / "classic").mkdir()
    only = RunWriter(tmp_path / "classic", ["relu"], {})
    only.add([shallow])
    assert pd.read_csv(tmp_path / "classic" / METRICS).columns.tolist() == COLUMNS


def test_a_checkpoint_of_a_deep_model_round_trips_and_continues_exactly(mnist_dir, tmp_path):
    """Two epochs in one go equal one epoch, a checkpoint through torch.save and
    torch.load(weights_only=True), and a second epoch from it."""
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    activations = resolve_all(NAMES)
    settings = {"hidden": 8, "depth": 3, "init": "auto", "batch_size": 32}
    whole, first, rest, states = [], [], [], []
    train_lockstep(activations, data, make_config({"epochs": 2, **settings}), 1,
                   on_epoch=whole.extend)  # fmt: skip
    train_lockstep(activations, data, make_config({"epochs": 1, **settings}), 1,
                   on_epoch=first.extend, on_checkpoint=states.extend)  # fmt: skip
    path = tmp_path / "state.pt"
    torch.save([s.to_dict() for s in states], path)
    loaded = [ModelState.from_dict(d) for d in torch.load(path, weights_only=True)]
    for state, back in zip(states, loaded, strict=True):
        pd.testing.assert_frame_equal(frame(back.rows), frame(state.rows), check_exact=True)
        assert list(back.rows[0].deeper_health) == [
            "grad_layer4",
            "dead_layer3",
            "saturated_layer3",
        ]
        assert back.model.keys() == state.model.keys()
        assert all(torch.equal(back.model[n], state.model[n]) for n in state.model)
    assert "fc4.weight" in loaded[0].model and "act3.weight" in loaded[2].model  # prelu's slope
    train_lockstep(activations, data, make_config({"epochs": 2, **settings}), 1,
                   on_epoch=rest.extend, start=loaded)  # fmt: skip
    pd.testing.assert_frame_equal(
        frame(first + rest).drop(columns="epoch_seconds"),
        frame(whole).drop(columns="epoch_seconds"),
        check_exact=True,
    )


def frame(rows):
    return pd.DataFrame([row.as_row() for row in rows])


def test_the_command_line_takes_depth_and_init_and_the_manifest_records_them(mnist_dir, tmp_path):
    runner = CliRunner()
    args = ["run", "-a", "relu,selu", "--depth", "3", "--init", "auto", "--epochs", "1",
            "--hidden", "8", "--data-dir", str(mnist_dir), "--results-dir", str(tmp_path / "r"),
            "--workers", "1"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "r").iterdir()
    config = json.loads((run_dir / "manifest.json").read_text())["config"]
    assert (config["depth"], config["init"]) == (3, "auto")
    assert "grad_layer4" in read_metrics(run_dir / METRICS).columns
    assert read_cost(run_dir)["layers"].unique().tolist() == [3]  # measured at the run's depth
    bad = runner.invoke(app, [*args[:3], "--depth", "0", *args[5:]])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "Error: --depth must be from 1 to 32 hidden layers, got 0"
    assert len(list((tmp_path / "r").iterdir())) == 1  # nothing written


def test_a_resume_keeps_depth_and_init_and_reads_runs_recorded_before_them(mnist_dir, tmp_path):
    settings = {"activations": ["relu"], "epochs": 1, "hidden": 8, "workers": 1,
                "data_dir": str(mnist_dir), "results_dir": str(tmp_path)}  # fmt: skip
    run = run_experiment(make_config(settings))
    for change, message in [({"depth": 3}, "depth 3 (the run used 2)"),
                            ({"init": "xavier"}, "init xavier (the run used torch)")]:  # fmt: skip
        with pytest.raises(UsageError, match=re.escape(message)):
            resume_experiment(run.run_dir, change)
    # a manifest written before depth and init were settings: the classic network, torch's init
    path = run.run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["config"]["depth"], manifest["config"]["init"]
    path.write_text(json.dumps(manifest))
    resumed = resume_experiment(run.run_dir, {"epochs": 2})
    assert sorted(resumed.metrics["epoch"]) == [1, 2]


values = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def deep_rows(draw):
    """A row of a network of depth 1 to 6: every health column of its depth drawn."""
    depth = draw(st.integers(1, 6))
    health = {column: draw(values) for column in health_columns(depth)}
    fixed = {k: v for k, v in health.items() if k in COLUMNS}
    deeper = {k: v for k, v in health.items() if k not in COLUMNS}
    label = draw(st.sampled_from(["relu", "tanh", "sin"]))
    return EpochResult(label, draw(st.integers(0, 3)), draw(st.integers(1, 3)), 0.5, 0.5, 0.5,
                       0.5, 1.0, **fixed, deeper_health=deeper)  # fmt: skip


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(deep_rows(), max_size=8))
def test_rows_of_any_depths_round_trip_through_the_csv_exactly(written):
    with tempfile.TemporaryDirectory() as folder:
        columns = [*COLUMNS, *deeper_columns(k for row in written for k in row.as_row())]
        writer = RunWriter(Path(folder), ["relu", "tanh", "sin"], {}, columns=columns)
        writer.add(written)
        writer.finish()
        frame = read_metrics(Path(folder) / METRICS).drop(columns=list(SETTINGS))
    expected = pd.DataFrame([row.as_row() for row in written], columns=frame.columns)
    order = ["seed", "epoch", "activation"]
    rank = {"relu": 0, "tanh": 1, "sin": 2}
    expected = expected.sort_values(
        order, key=lambda s: s.map(rank) if s.name == "activation" else s, kind="stable"
    )
    pd.testing.assert_frame_equal(
        frame.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False,
        check_exact=True,
    )  # fmt: skip
