"""Lockstep training gives every model exactly what training it alone would give."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actbench.activations import resolve_all
from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.lockstep import BACKWARDS, FORWARDS, LockstepMLP, _built_in
from actbench.model import MLP
from actbench.train import build_models, evaluate, train_lockstep


def train_alone(activation, data, config, seed):
    """The textbook loop, one model, same seed and batch order: the reference."""
    torch.manual_seed(seed)
    model = MLP(activation, hidden=config.hidden, in_features=data.train_x.shape[1])
    model = model.to(data.train_x.device)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(config.epochs):
        perm = torch.randperm(len(data.train_x), generator=order).to(data.train_x.device)
        total, correct = 0.0, 0
        for start in range(0, len(perm), config.batch_size):
            idx = perm[start : start + config.batch_size]
            logits = model(data.train_x[idx])
            loss = F.cross_entropy(logits, data.train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == data.train_y[idx]).sum().item()
        with torch.no_grad():
            test_logits = model(data.test_x)
            test_loss = F.cross_entropy(test_logits, data.test_y).item()
            test_acc = (test_logits.argmax(1) == data.test_y).float().mean().item()
        n = len(data.train_x)
        history.append((total / n, correct / n, test_loss, test_acc))
    return model, history


# Built-ins with a hand-written backward, then a mix that needs autograd (learned, coupled).
KNOWN = ["relu", "sigmoid", "tanh", "leaky:0.2", "elu", "selu", "gelu", "silu", "mish",
         "softplus", "identity"]  # fmt: skip
MIXED = ["relu", "tanh", "prelu", "softmax", "leaky:0.2"]

# Every device this machine has: the CPU always, a GPU where there is one.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"optimizer": "adam", "lr": 1e-3}, KNOWN),
        ({"optimizer": "adam", "lr": 1e-3}, MIXED),
        ({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}, MIXED),
    ],
)
def test_lockstep_equals_one_model_at_a_time(mnist_dir, settings, names, device):
    config = make_config(
        {"epochs": 3, "batch_size": 48, "hidden": 16, "data_dir": str(mnist_dir), **settings}
    )
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device(device))
    activations = resolve_all(names)
    rows = []
    net = train_lockstep(activations, data, config, seed=5, on_epoch=rows.extend)
    for k, activation in enumerate(activations):
        model, history = train_alone(activation, data, config, seed=5)
        mine = [r for r in rows if r.activation == activation.label]
        assert [r.epoch for r in mine] == [1, 2, 3]
        for row, (train_loss, train_acc, test_loss, test_acc) in zip(mine, history, strict=True):
            assert row.train_loss == pytest.approx(train_loss, rel=1e-4)
            assert row.train_accuracy == pytest.approx(train_acc, abs=1.5 / len(data.train_x))
            assert row.test_loss == pytest.approx(test_loss, rel=1e-4)
            assert row.test_accuracy == pytest.approx(test_acc, abs=1.5 / len(data.test_x))
        state = net.model_state(k)
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(state[name], tensor, rtol=1e-4, atol=1e-5)


def test_every_activation_starts_from_the_same_weights():
    models = build_models(resolve_all(["relu", "sigmoid", "prelu"]), 8, 784, seed=3)
    for model in models[1:]:
        torch.testing.assert_close(model.fc1.weight, models[0].fc1.weight, rtol=0, atol=0)
        torch.testing.assert_close(model.fc3.bias, models[0].fc3.bias, rtol=0, atol=0)
    other = build_models(resolve_all(["relu"]), 8, 784, seed=4)[0]
    assert not torch.equal(other.fc1.weight, models[0].fc1.weight)


def test_stacked_forward_matches_each_model():
    models = build_models(resolve_all(["gelu", "selu", "identity"]), 12, 20, seed=0)
    net = LockstepMLP(models)
    x = torch.randn(7, 20)
    out = net(x)
    assert out.shape == (3, 7, 10)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[k], model(x))


def test_same_seed_same_numbers_and_new_seed_new_numbers(mnist_dir):
    config = make_config({"epochs": 2, "hidden": 16, "data_dir": str(mnist_dir)})
    data = prepare(load_mnist(mnist_dir, download=False), None, 0, torch.device("cpu"))
    activations = resolve_all(["relu", "sigmoid"])
    first, second, third = [], [], []
    train_lockstep(activations, data, config, seed=1, on_epoch=first.extend)
    train_lockstep(activations, data, config, seed=1, on_epoch=second.extend)
    train_lockstep(activations, data, config, seed=2, on_epoch=third.extend)
    strip = lambda rows: [(r.activation, r.train_loss, r.test_loss, r.test_accuracy) for r in rows]  # noqa: E731
    assert strip(first) == strip(second)
    assert strip(first) != strip(third)


@pytest.mark.parametrize("module", [m for m in FORWARDS], ids=lambda m: m.__name__)
def test_out_kernels_match_the_module_and_autograd(module):
    """Each hand-wired activation kernel, writing into strided buffers, against torch itself."""
    assert set(FORWARDS) == set(BACKWARDS)
    act = module(dim=-1) if module is nn.Softmax else module()  # over a layer's units
    z_wide = torch.randn(6, 3, 9, dtype=torch.float64)  # model 1's slice is strided, like layer 1
    z = z_wide[:, 1]
    out = torch.full((6, 9), float("nan"), dtype=torch.float64)
    FORWARDS[module](act, z, out)
    leaf = z.detach().clone().requires_grad_()
    expected = act(leaf)
    # to the last bit or so: a strided slice may take another vectorised path than a whole one
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    g = torch.randn(6, 9, dtype=torch.float64)
    grad_wide = torch.full((6, 3, 9), float("nan"), dtype=torch.float64)
    BACKWARDS[module](act, g, z, out, grad_wide[:, 1])
    (reference,) = torch.autograd.grad(expected, leaf, g)
    torch.testing.assert_close(grad_wide[:, 1], reference, rtol=1e-12, atol=1e-12)
    assert grad_wide[:, [0, 2]].isnan().all()  # the other models' slices are untouched


def test_step_gradients_match_autograd_whatever_the_buffers_held_before():
    """Steps and test passes reuse buffers: each result depends on its own batch only."""
    torch.manual_seed(0)
    activations = resolve_all(["relu", "prelu", "tanh"])  # torch's kernels, and autograd
    models = build_models(activations, 6, 11, seed=2)
    net = LockstepMLP(models)
    # sizes repeat and exceed the four kept sets of buffers (steps and test passes apart),
    # so some are reused and some remade
    for size, train in [(5, True), (7, True), (5, False), (9, True), (5, True), (4, False),
                        (6, True), (7, False), (5, False), (8, True), (7, True), (5, True)]:  # fmt: skip
        x, y = torch.randn(size, 11), torch.randint(0, 10, (size,))
        scores = torch.empty(3, size), torch.empty(3, size, dtype=torch.long)
        if train:
            per_model = net.split_models([g.clone() for g in net.train_step(x, y, scores)])
        else:
            net.test_scores(x, y, scores)
        for k, model in enumerate(models):
            model.zero_grad()
            logits = model(x)
            if train:
                F.cross_entropy(logits, y).backward()
                for got, param in zip(per_model[k], model.parameters(), strict=True):
                    expected = param.grad.t() if param.dim() == 2 else param.grad
                    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
            log_probs = torch.log_softmax(logits.detach(), 1)
            torch.testing.assert_close(scores[0][k], log_probs[torch.arange(size), y])
            assert torch.equal(scores[1][k], logits.argmax(1))


@pytest.mark.parametrize("names", [["sigmoid", "relu", "leaky"], ["sigmoid", "prelu", "leaky"]])
@pytest.mark.parametrize("batch_size", [1000, 64, 7])
def test_test_pass_matches_each_model_at_any_batch_size(names, batch_size):
    """The test pass in chunks (a short last one included) gives each model's own loss and hits,
    through torch's kernels and through the modules alike."""
    torch.manual_seed(1)
    models = build_models(resolve_all(names), 9, 13, seed=3)
    net = LockstepMLP(models)
    x, y = torch.randn(150, 13), torch.randint(0, 10, (150,))
    losses, accuracies = evaluate(net, x, y, batch_size)
    for k, model in enumerate(models):
        with torch.no_grad():
            logits = model(x)
        assert losses[k] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
        assert accuracies[k] == (logits.argmax(1) == y).double().mean().item()


def test_per_model_tensors_are_each_models_own_and_join_back_exactly():
    """split_models gives every model its own tensors, 2-d ones laid out (in, out) whatever the
    stacked layout (checkpoints hold optimiser state that way); join_models undoes it."""
    models = build_models(resolve_all(["relu", "prelu", "tanh"]), 6, 11, seed=4)
    net = LockstepMLP(models)
    per_model = net.split_models(net.weights())
    for own, model in zip(per_model, models, strict=True):
        expected = [p.detach().t() if p.dim() == 2 else p.detach() for p in model.parameters()]
        assert len(own) == len(expected)
        for got, want in zip(own, expected, strict=True):
            assert torch.equal(got, want) and got.is_contiguous()
    joined = net.join_models(per_model)
    for got, want in zip(joined, net.weights(), strict=True):
        assert got.shape == want.shape and torch.equal(got, want) and got.is_contiguous()


def test_converting_the_network_remakes_the_buffers_that_view_its_weights():
    """Steps read the weights through views kept with their buffers; converting the network
    (here float -> double -> float: new tensors, same shapes) must not leave them stale."""
    models = build_models(resolve_all(["relu", "tanh"]), 6, 11, seed=5)
    net = LockstepMLP(models)
    x, y = torch.randn(4, 11), torch.randint(0, 10, (4,))
    net.train_step(x, y)
    net(x)  # buffers of a step and of a test pass, made for the first weights
    net.double().float()
    with torch.no_grad():
        net.w3.mul_(2.0)  # a change only the new weight tensors hold
    out = net(x)
    for k, model in enumerate(models):
        model.load_state_dict(net.model_state(k))
        torch.testing.assert_close(out[k], model(x))


def test_a_softmax_without_a_dimension_goes_through_autograd():
    """torch's softmax kernels serve only a softmax over a given dimension (actbench's own)."""
    assert _built_in(nn.Softmax(dim=-1)) and _built_in(nn.ReLU())
    assert not _built_in(nn.Softmax()) and not _built_in(nn.PReLU())


def test_training_flushes_subnormal_floats_to_zero_and_then_stops(mnist_dir):
    """Adam's moments of units that stopped learning decay into subnormal floats, on which a
    CPU computes many times slower: training flushes them to zero, and afterwards the process
    computes with them again (in a fresh process here, as the setting is the thread's)."""
    code = f"""
import torch
from actbench.activations import resolve_all
from actbench.config import make_config
from actbench.data import load_mnist, prepare
from actbench.train import train_lockstep
tiny = torch.tensor([1e-39])  # below float32's smallest normal number, about 1.18e-38
print((tiny * 3).item())
data = prepare(load_mnist({str(mnist_dir)!r}, download=False), None, 0, torch.device("cpu"))
during = []
train_lockstep(resolve_all(["relu"]), data, make_config({{"epochs": 1, "hidden": 8}}), 0,
               on_epoch=lambda rows: during.append((tiny * 3).item()))
print(during[0])
print((tiny * 3).item())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, during, after = map(float, done.stdout.split())
    assert during == 0.0
    assert before == after == pytest.approx(3e-39, rel=1e-3)
