"""K networks of one shape stacked into one module, so they train side by side on one batch.

All K models see the same mini-batch, so the first layer is one matrix product over the K
models' weights laid side by side; the next two layers are batched products. Each model's
weights are its own slice of the stacked tensors, its loss is its own term of a sum, and Adam
and SGD update elementwise, so every model gets exactly the gradients and optimiser state it
would get if it were trained alone.
"""

from __future__ import annotations

import torch
from torch import nn

from actbench.model import MLP


class LockstepMLP(nn.Module):
    """K copies of the MLP architecture, each with its own weights and activation modules."""

    def __init__(self, models: list[MLP]) -> None:
        super().__init__()
        if not models:
            raise ValueError("need at least one model")
        self.k = len(models)
        self.in_features = models[0].fc1.in_features
        self.hidden = models[0].fc1.out_features
        self.classes = models[0].fc3.out_features

        def stack(tensors: list[torch.Tensor], dim: int = 0) -> nn.Parameter:
            return nn.Parameter(torch.stack([t.detach() for t in tensors], dim=dim).contiguous())

        # Weights are stored (in, out) so each layer is x @ W; layer 1 is (in, K, H) so that
        # its view (in, K*H) multiplies the shared batch once for all models.
        self.w1 = stack([m.fc1.weight.t() for m in models], dim=1)
        self.b1 = stack([m.fc1.bias for m in models])
        self.w2 = stack([m.fc2.weight.t() for m in models])
        self.b2 = stack([m.fc2.bias for m in models])
        self.w3 = stack([m.fc3.weight.t() for m in models])
        self.b3 = stack([m.fc3.bias for m in models])
        self.acts1 = nn.ModuleList([m.act1 for m in models])
        self.acts2 = nn.ModuleList([m.act2 for m in models])

    @staticmethod
    def _activate(acts: nn.ModuleList, h: torch.Tensor, dim: int) -> torch.Tensor:
        """Apply model k's activation to its slice along `dim`; the result is (K, B, H)."""
        return torch.stack([act(h.select(dim, k)) for k, act in enumerate(acts)])

    def hidden_layers(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both hidden layers' outputs, each (K, B, H), for a batch x of shape (B, in)."""
        batch = x.shape[0]
        z1 = torch.addmm(self.b1.view(-1), x, self.w1.view(self.in_features, -1))
        h1 = self._activate(self.acts1, z1.view(batch, self.k, self.hidden), dim=1)
        h2 = self._activate(self.acts2, torch.baddbmm(self.b2.unsqueeze(1), h1, self.w2), dim=0)
        return h1, h2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, classes) of every model for one shared batch x of shape (B, in)."""
        _, h2 = self.hidden_layers(x)
        return torch.baddbmm(self.b3.unsqueeze(1), h2, self.w3)

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as an `MLP` state dict (e.g. to load into a stand-alone MLP)."""
        state = {
            "fc1.weight": self.w1[:, k, :].t(),
            "fc1.bias": self.b1[k],
            "fc2.weight": self.w2[k].t(),
            "fc2.bias": self.b2[k],
            "fc3.weight": self.w3[k].t(),
            "fc3.bias": self.b3[k],
        }
        for layer, acts in (("act1", self.acts1), ("act2", self.acts2)):
            for name, tensor in acts[k].state_dict().items():
                state[f"{layer}.{name}"] = tensor
        return {name: tensor.detach().clone() for name, tensor in state.items()}
