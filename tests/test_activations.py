"""The activation registry: every function against torch's own, names, parameters, custom specs."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from actbench.activations import REGISTRY, known_names, resolve, resolve_all
from actbench.errors import UsageError

# Each built-in name with torch's functional reference for the same maths.
REFERENCES = {
    "relu": F.relu,
    "leaky": lambda x: F.leaky_relu(x, 0.01),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: F.softmax(x, dim=-1),
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "mish": F.mish,
    "selu": F.selu,
    "softplus": F.softplus,
    "prelu": lambda x: F.prelu(x, torch.tensor([0.25])),
    "identity": lambda x: x,
}


def test_every_builtin_has_a_reference():
    assert set(REFERENCES) == set(known_names())


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_values_and_gradients_match_torch(name):
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0)) * 3
    x_ours = x.clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    weights = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    ours = resolve(name)()(x_ours)
    ref = REFERENCES[name](x_ref)
    torch.testing.assert_close(ours, ref)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad)


def test_hand_computed_values():
    x = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(resolve("relu")()(x), torch.tensor([0.0, 0.0, 3.0]))
    torch.testing.assert_close(resolve("leaky:0.1")()(x), torch.tensor([-0.2, 0.0, 3.0]))
    torch.testing.assert_close(resolve("identity")()(x), x)
    torch.testing.assert_close(resolve("sigmoid")()(torch.tensor([0.0])), torch.tensor([0.5]))


def test_names_are_case_insensitive_and_aliases_fold():
    assert resolve("ReLU").label == "relu"
    assert resolve(" TANH ").label == "tanh"
    assert resolve("leaky_relu").label == "leaky"
    assert resolve("Leaky_ReLU:0.2").label == "leaky:0.2"


def test_parameter_sets_the_slope():
    module = resolve("leaky:0.1")()
    assert module.negative_slope == pytest.approx(0.1)
    assert resolve("elu:0.5")().alpha == pytest.approx(0.5)


def test_prelu_is_learnable():
    module = resolve("prelu")()
    assert [p.shape for p in module.parameters()] == [torch.Size([1])]


def test_unknown_name_suggests_a_close_match():
    with pytest.raises(UsageError, match=r"unknown activation 'rleu' \(did you mean 'relu'\?\)"):
        resolve("rleu")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty activation name"),
        ("relu:0.1", "takes no parameter"),
        ("leaky:abc", "must be a number"),
        ("leaky:nan", "must be finite"),
        (":x", "write package.module:attribute"),
        ("no_such_module_xyz:Act", "cannot import 'no_such_module_xyz'"),
        ("math:nothing_here", "has no attribute 'nothing_here'"),
        ("math:pi", "is not an activation"),
        ("torch:Tensor", "is not an activation"),
    ],
)
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(UsageError, match=message):
        resolve(spec)


def test_duplicates_are_refused_after_folding():
    with pytest.raises(UsageError, match="listed twice"):
        resolve_all(["relu", "ReLU"])
    with pytest.raises(UsageError, match="listed twice"):
        resolve_all(["leaky", "leaky_relu"])
    assert [a.label for a in resolve_all(["leaky", "leaky:0.2"])] == ["leaky", "leaky:0.2"]


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    (tmp_path / "my_acts.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class Square(nn.Module):
                def forward(self, x):
                    return x * x

            def cube(x):
                return x ** 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_acts"
    sys.modules.pop("my_acts", None)


def test_custom_module_class_and_function(custom_module):
    x = torch.tensor([-2.0, 3.0])
    square = resolve(f"{custom_module}:Square")
    assert square.label == "my_acts:Square"
    torch.testing.assert_close(square()(x), torch.tensor([4.0, 9.0]))
    torch.testing.assert_close(resolve(f"{custom_module}:cube")()(x), torch.tensor([-8.0, 27.0]))


def test_registry_rows_are_complete():
    for info in REGISTRY:
        assert info.formula and info.output_range and info.note, info.name
