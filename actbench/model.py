"""The feedforward network: in -> H -> ... -> H -> classes, `depth` hidden layers of width H.

The classic network is depth 2, 784 -> H -> H -> 10: three linear layers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn

from actbench.init import make_linear


def parameter_count(inputs: int, hidden: int, depth: int, classes: int, biases: bool = True) -> int:
    """The number of parameters of `MLP(inputs, hidden, classes, depth)`: every linear
    layer's weights (inputs x outputs), and with `biases` its biases (outputs)."""
    sizes = [inputs, *[hidden] * depth, classes]
    return sum((a + biases) * b for a, b in itertools.pairwise(sizes))


class MLP(nn.Module):
    """Linear, activation, ..., linear, activation, linear; no activation after the last layer.

    Layer i (1 to depth + 1) is `fc{i}`, the activation after it `act{i}` (1 to depth), so a
    depth-2 network has the state-dict names it always had. The linear layers are made first,
    in order, each started by `init` (see `actbench.init`), then the activations, so an
    activation that draws random numbers cannot shift the layers' weights. Raises ValueError
    for a depth below 1 or an unknown scheme.
    """

    def __init__(
        self,
        make_activation: Callable[[], nn.Module],
        hidden: int = 128,
        in_features: int = 784,
        classes: int = 10,
        depth: int = 2,
        init: str = "torch",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        widths = [in_features, *[hidden] * depth, classes]
        for i in range(depth + 1):
            setattr(self, f"fc{i + 1}", make_linear(widths[i], widths[i + 1], init))
        for i in range(depth):
            setattr(self, f"act{i + 1}", make_activation())

    def linears(self) -> list[nn.Linear]:
        """The depth + 1 linear layers, first to last."""
        return [getattr(self, f"fc{i + 1}") for i in range(self.depth + 1)]

    def activations(self) -> list[nn.Module]:
        """The depth activation modules, first to last."""
        return [getattr(self, f"act{i + 1}") for i in range(self.depth)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) for x of shape (B, in_features) or (B, ...) flattening to it."""
        *hidden, last = self.linears()
        x = x.flatten(1)
        for fc, act in zip(hidden, self.activations(), strict=True):
            x = act(fc(x))
        return last(x)
