"""Gradient flow, dead and saturated units, and per-activation time, on hand-made networks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actbench.activations import Activation, resolve_all
from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.lockstep import LockstepMLP
from actbench.train import SATURATION_MARGIN, build_models, train_lockstep, unit_health


def fixed_network(names):
    """Hidden pre-activations that ignore the input: layer 1 gets b1, layer 2 gets b2."""
    activations = resolve_all(names)
    net = LockstepMLP(build_models(activations, hidden=4, in_features=3, seed=0))
    with torch.no_grad():
        net.w1.zero_()
        net.w2.zero_()
        net.b1.copy_(torch.tensor([-1.0, -2.0, 0.5, 3.0]))
        net.b2.copy_(torch.tensor([5.0, -5.0, 0.0, 0.0]))
    return net, activations


def test_dead_and_saturated_units_by_hand():
    net, activations = fixed_network(["relu", "tanh", "identity"])
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 4, 5])
    relu, tanh, identity = unit_health(net, activations, x, y)
    # relu: layer 1 outputs (0, 0, 0.5, 3): units 0 and 1 never fire
    assert relu["dead_layer1"] == 0.5
    # layer 2 outputs (5, 0, 0, 0): three units never give a positive output
    assert relu["dead_layer2"] == 0.75
    assert math.isnan(relu["saturated_layer1"])  # relu has no upper bound
    # tanh: layer 1 outputs tanh(-1, -2, 0.5, 3) = (-0.76, -0.96, 0.46, 0.995); within 0.1 of
    # a bound (5% of the range 2): the second and the fourth
    assert SATURATION_MARGIN == 0.05
    assert tanh["saturated_layer1"] == 0.5
    assert tanh["saturated_layer2"] == 0.5  # tanh(5), tanh(-5)
    assert math.isnan(tanh["dead_layer1"])
    assert math.isnan(identity["dead_layer2"]) and math.isnan(identity["saturated_layer2"])


def test_gradient_flow_matches_autograd(mnist_dir):
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    activations = resolve_all(["relu", "sigmoid", "prelu"])
    models = build_models(activations, hidden=16, in_features=784, seed=4)
    net = LockstepMLP(build_models(activations, hidden=16, in_features=784, seed=4))
    x, y = data.train_x[:100], data.train_y[:100]
    health = unit_health(net, activations, x, y)
    for model, row in zip(models, health, strict=True):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for layer, fc in ((1, model.fc1), (2, model.fc2), (3, model.fc3)):
            assert row[f"grad_layer{layer}"] == pytest.approx(fc.weight.grad.abs().mean().item())


class Clock:
    """A stand-in for the `time` module's `perf_counter`, moved by hand."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_each_model_is_charged_its_own_activation_time(mnist_dir, monkeypatch):
    # the timer reads a clock that only the slow activation moves, so what each model is
    # charged does not depend on how busy the machine is
    clock = Clock()
    monkeypatch.setattr("actbench.lockstep.time", clock)

    class Slow(nn.Module):
        def forward(self, x):
            clock.now += 0.005  # as if it took 5 ms
            return torch.relu(x)

    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    activations = [*resolve_all(["relu"]), Activation("slow", Slow)]
    rows = []
    config = make_config({"epochs": 1, "hidden": 8, "batch_size": 16})
    train_lockstep(activations, data, config, seed=0, on_epoch=rows.extend)
    fast, slow = rows
    steps = len(data.train_x) // 16
    # two layers' forward passes in each training step (the test pass is not timed)
    assert slow.activation_seconds == pytest.approx(steps * 2 * 0.005)
    assert fast.activation_seconds == 0
    assert not math.isnan(slow.grad_layer1) and math.isnan(slow.dead_layer1)  # not registered


def test_activation_order_rotates_so_no_model_is_always_first():
    net, _ = fixed_network(["relu", "tanh", "identity"])
    calls = []
    for _ in range(3):
        assert net._each(3, lambda k: calls.append(k) or k * 10) == [0, 10, 20]
    firsts = calls[::3]
    assert sorted(firsts) == [0, 1, 2]  # each model goes first once every three calls
