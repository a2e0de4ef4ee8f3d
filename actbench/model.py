"""The classic feedforward network: three linear layers, 784 -> H -> H -> 10."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class MLP(nn.Module):
    """Linear, activation, linear, activation, linear; no activation after the last layer."""

    def __init__(
        self,
        make_activation: Callable[[], nn.Module],
        hidden: int = 128,
        in_features: int = 784,
        classes: int = 10,
    ) -> None:
        super().__init__()
        # Linear layers first, so an activation that draws random numbers cannot shift their init.
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)
        self.act1 = make_activation()
        self.act2 = make_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.fc1(x.flatten(1)))
        x = self.act2(self.fc2(x))
        return self.fc3(x)
