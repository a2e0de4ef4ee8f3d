"""K networks of one shape stacked into one module, so they train side by side on one batch.

All K models see the same mini-batch, so the first layer is one matrix product over the K
models' weights laid side by side; the next two layers are batched products. Each model's
weights are its own slice of the stacked tensors, its loss is its own term of a sum, and Adam
and SGD update elementwise, so every model gets exactly the gradients and optimiser state it
would get if it were trained alone.

`train_step` writes the backward pass out by hand (the layers are linear, the loss is
softmax cross-entropy), so a step costs a dozen large kernels instead of a graph of small
ones; only the activations, which may be anything, go through autograd.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from actbench.model import MLP

GradFn = Callable[[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]

aten = torch.ops.aten

# Kernels that write into a given tensor `out`, for common activations without learned
# parameters: the forward pass, and the gradient with respect to the input z from the output's
# gradient g, the input z and the output h. They are the kernels torch's own modules and
# autograd run; a layer whose activations are all listed here skips autograd.
Forward = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Backward = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]
_SELU = (1.6732632423543772, 1.0507009873554805)  # alpha and scale, as torch.selu has them

FORWARDS: dict[type, Forward] = {
    nn.ReLU: lambda m, z, out: torch.clamp_min(z, 0, out=out),  # relu's own kernel
    nn.LeakyReLU: lambda m, z, out: aten.leaky_relu.out(z, m.negative_slope, out=out),
    nn.Sigmoid: lambda m, z, out: torch.sigmoid(z, out=out),
    nn.Tanh: lambda m, z, out: torch.tanh(z, out=out),
    nn.ELU: lambda m, z, out: aten.elu.out(z, m.alpha, 1.0, 1.0, out=out),
    nn.SELU: lambda m, z, out: aten.elu.out(z, *_SELU, 1.0, out=out),
    nn.GELU: lambda m, z, out: aten.gelu.out(z, approximate=m.approximate, out=out),
    nn.SiLU: lambda m, z, out: aten.silu.out(z, out=out),
    nn.Mish: lambda m, z, out: aten.mish.out(z, out=out),
    nn.Softplus: lambda m, z, out: aten.softplus.out(z, m.beta, m.threshold, out=out),
    nn.Identity: lambda m, z, out: out.copy_(z),
}
BACKWARDS: dict[type, Backward] = {
    nn.ReLU: lambda m, g, z, h, out: aten.threshold_backward.grad_input(g, h, 0, grad_input=out),
    nn.LeakyReLU: lambda m, g, z, h, out: aten.leaky_relu_backward.grad_input(
        g, z, m.negative_slope, False, grad_input=out
    ),
    nn.Sigmoid: lambda m, g, z, h, out: aten.sigmoid_backward.grad_input(g, h, grad_input=out),
    nn.Tanh: lambda m, g, z, h, out: aten.tanh_backward.grad_input(g, h, grad_input=out),
    nn.ELU: lambda m, g, z, h, out: aten.elu_backward.grad_input(
        g, m.alpha, 1.0, 1.0, False, z, grad_input=out
    ),
    nn.SELU: lambda m, g, z, h, out: aten.elu_backward.grad_input(
        g, *_SELU, 1.0, False, z, grad_input=out
    ),
    nn.GELU: lambda m, g, z, h, out: aten.gelu_backward.grad_input(
        g, z, approximate=m.approximate, grad_input=out
    ),
    nn.SiLU: lambda m, g, z, h, out: aten.silu_backward.grad_input(g, z, grad_input=out),
    nn.Mish: lambda m, g, z, h, out: out.copy_(aten.mish_backward(g, z)),  # no out= kernel
    nn.Softplus: lambda m, g, z, h, out: aten.softplus_backward.grad_input(
        g, z, m.beta, m.threshold, grad_input=out
    ),
    nn.Identity: lambda m, g, z, h, out: out.copy_(g),
}


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
        self.act_params1 = [p for act in self.acts1 for p in act.parameters()]
        self.act_params2 = [p for act in self.acts2 for p in act.parameters()]
        self.timing = False  # when on, each model's activation time adds up in act_seconds
        self.act_seconds = [0.0] * self.k
        self._turn = -1  # which model's activation runs first in the next `_each`

    def act_counts(self) -> tuple[list[int], list[int]]:
        """How many learned tensors each model's two activation modules hold."""
        return (
            [len(list(act.parameters())) for act in self.acts1],
            [len(list(act.parameters())) for act in self.acts2],
        )

    def split_models(self, tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """A list laid out like `weights()` (weights, gradients, optimiser moments) cut per model.

        Model k's list holds its layer-1 to layer-3 weights and biases, then its activations'
        tensors: the layout `join_models` stacks back.
        """
        w1, b1, w2, b2, w3, b3, *rest = tensors
        counts1, counts2 = self.act_counts()
        acts1, acts2 = rest[: sum(counts1)], rest[sum(counts1) :]
        per_model = []
        for k in range(self.k):
            own1 = acts1[sum(counts1[:k]) : sum(counts1[: k + 1])]
            own2 = acts2[sum(counts2[:k]) : sum(counts2[: k + 1])]
            layers = [w1[:, k], b1[k], w2[k], b2[k], w3[k], b3[k]]
            per_model.append([t.detach().clone() for t in layers + own1 + own2])
        return per_model

    def join_models(self, per_model: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """The inverse of `split_models` for this network's models: one list like `weights()`."""
        if len(per_model) != self.k:
            raise ValueError(f"expected {self.k} models, got {len(per_model)}")
        layers = [torch.stack([m[i] for m in per_model], dim=1 if i == 0 else 0) for i in range(6)]
        counts1, _ = self.act_counts()
        acts1 = [t for k, m in enumerate(per_model) for t in m[6 : 6 + counts1[k]]]
        acts2 = [t for k, m in enumerate(per_model) for t in m[6 + counts1[k] :]]
        device = self.w1.device
        return [t.to(device).contiguous() for t in layers + acts1 + acts2]

    def weights(self) -> list[torch.Tensor]:
        """Every trained tensor, in the order `train_step` returns their gradients."""
        stacked = [self.w1, self.b1, self.w2, self.b2, self.w3, self.b3]
        return [p.data for p in stacked + self.act_params1 + self.act_params2]

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

    def _each(self, count: int, fn: Callable[[int], Any]) -> list[Any]:
        """[fn(0), ..., fn(count - 1)], each call's time added to model k's when timing is on.

        The calls start at a different model each time: the first elementwise kernel after a
        matrix product runs slower, and rotating spreads that cost evenly over the models
        (the results do not depend on the order).
        """
        results: list[Any] = [None] * count
        self._turn = (self._turn + 1) % count
        for j in range(count):
            k = (self._turn + j) % count
            if self.timing:
                started = time.perf_counter()
                results[k] = fn(k)
                self.act_seconds[k] += time.perf_counter() - started
            else:
                results[k] = fn(k)
        return results

    def _activate_with_grad(
        self, acts: nn.ModuleList, z: torch.Tensor, dim: int, scratch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, GradFn]:
        """Activations of z (output (K, B, H)) and a function from their gradient to z's."""
        if all(type(act) in BACKWARDS for act in acts):
            return self._activate_known(acts, z, dim, scratch)
        slices = [z.select(dim, k).detach().requires_grad_() for k in range(len(acts))]
        with torch.enable_grad():
            outputs = self._each(len(acts), lambda k: acts[k](slices[k]))
        params = [list(act.parameters()) for act in acts]

        def grads_of(k: int, grad_h: torch.Tensor) -> list[torch.Tensor]:
            inputs = [slices[k], *params[k]]
            if not outputs[k].requires_grad:  # an activation that ignores its input
                return [torch.zeros_like(t) for t in inputs]
            grads = torch.autograd.grad(outputs[k], inputs, grad_h[k], allow_unused=True)
            pairs = zip(grads, inputs, strict=True)
            return [torch.zeros_like(t) if g is None else g for g, t in pairs]

        def backward(grad_h: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            grads = self._each(len(acts), lambda k: grads_of(k, grad_h))
            grad_z = torch.stack([g[0] for g in grads], dim=dim)
            return grad_z, [t for g in grads for t in g[1:]]

        return torch.stack([h.detach() for h in outputs]), backward

    def _activate_known(
        self, acts: nn.ModuleList, z: torch.Tensor, dim: int, scratch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, GradFn]:
        # Each model's kernels read its own slice of z and write their results straight into
        # the step's buffers: no copies, no stacking.
        slices = [z.select(dim, k) for k in range(len(acts))]
        out, grad_z = scratch["out"], scratch["grad"]
        self._each(len(acts), lambda k: FORWARDS[type(acts[k])](acts[k], slices[k], out[k]))

        def backward(grad_h: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            self._each(
                len(acts),
                lambda k: BACKWARDS[type(acts[k])](
                    acts[k], grad_h[k], slices[k], out[k], grad_z.select(dim, k)
                ),
            )
            return grad_z, []

        return out, backward

    def _scratch(self, batch: int, like: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Buffers a training step on `batch` samples writes into, made once per batch size."""
        cache = self.__dict__.setdefault("_scratch_cache", {})
        key = (batch, like.device, like.dtype)
        if key not in cache:
            shape = (self.k, batch, self.hidden)

            def empty(*size: int) -> torch.Tensor:
                return torch.empty(size, dtype=like.dtype, device=like.device)

            cache[key] = {
                # layer 1's input gradient is laid out like its output, (B, K, H)
                "layer1": {"out": empty(*shape), "grad": empty(batch, self.k, self.hidden)},
                "layer2": {"out": empty(*shape), "grad": empty(*shape)},
                "loss": {"minus_ones": torch.full((self.k, batch, 1), -1.0, dtype=like.dtype,
                                                  device=like.device)},
            }  # fmt: skip
        return cache[key]

    @torch.no_grad()
    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        scores: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Gradients of `weights()` for every model's mean cross-entropy on the batch (x, y).

        `scores`, if given, are two (K, B) tensors that receive, per model and sample, the
        log-probability of the true label (float) and the predicted class (int64): the epoch's
        loss and accuracy are summed from them.
        """
        k, batch, hidden = self.k, x.shape[0], self.hidden
        scratch = self._scratch(batch, x)
        z1 = torch.addmm(self.b1.view(-1), x, self.w1.view(self.in_features, -1))
        h1, back1 = self._activate_with_grad(
            self.acts1, z1.view(batch, k, hidden), 1, scratch["layer1"]
        )
        z2 = torch.baddbmm(self.b2.unsqueeze(1), h1, self.w2)
        h2, back2 = self._activate_with_grad(self.acts2, z2, 0, scratch["layer2"])
        logits = torch.baddbmm(self.b3.unsqueeze(1), h2, self.w3)

        # Softmax cross-entropy and its gradient, (softmax - onehot) / B, per model.
        log_probs = torch.log_softmax(logits, dim=-1)
        target = y.view(1, batch, 1).expand(k, batch, 1)
        if scores is not None:
            torch.gather(log_probs, 2, target, out=scores[0].unsqueeze(-1))
            torch.argmax(logits, -1, out=scores[1])
        grad = log_probs.exp_()
        grad.scatter_add_(2, target, scratch["loss"]["minus_ones"])
        grad.div_(batch)

        grad_w3 = torch.bmm(h2.transpose(1, 2), grad)
        grad_b3 = grad.sum(1)
        grad_z2, grad_act2 = back2(torch.bmm(grad, self.w3.transpose(1, 2)))
        grad_w2 = torch.bmm(h1.transpose(1, 2), grad_z2)
        grad_b2 = grad_z2.sum(1)
        grad_z1, grad_act1 = back1(torch.bmm(grad_z2, self.w2.transpose(1, 2)))  # (B, K, H)
        grad_w1 = torch.mm(x.t(), grad_z1.reshape(batch, k * hidden)).view_as(self.w1)
        grad_b1 = grad_z1.sum(0)
        return [grad_w1, grad_b1, grad_w2, grad_b2, grad_w3, grad_b3, *grad_act1, *grad_act2]

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
