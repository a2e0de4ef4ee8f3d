"""The previous lockstep step, kept only so the benchmarks can time it beside the current one.

Before models were made bit-identical in any company, the K models' weights were stacked so
that layer 1 was one wide product (B, in) x (in, K*H) and every elementwise operation, sum and
Adam update ran over all models' tensors at once. That is faster by a few per cent, but a
model's rounding then depended on its neighbours. `benchmarks/speed.py --previous` and
`benchmarks/step.py --previous` run it side by side with actbench's step; actbench never
imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from actbench.lockstep import Call, ParamGrads, _kernels_for
from actbench.model import MLP


@dataclass(frozen=True)
class _LayerViews:
    """One hidden layer's per-model views into the step's buffers, each (B, H)."""

    z: list[torch.Tensor]  # the activation's input
    h: list[torch.Tensor]  # its output
    grad_h: list[torch.Tensor]  # the loss's gradient at h (empty in a test pass)
    grad_z: list[torch.Tensor]  # and at z


class _StepBuffers:
    """Everything a step on `batch` samples writes, made once with its views.

    A step then allocates nothing and reuses the same memory, which stays in cache. A test
    pass (`train=False`) writes only the forward pass's buffers; the gradients' are not made.
    """

    def __init__(self, net: LockstepMLP, batch: int, like: torch.Tensor, train: bool) -> None:
        k, hidden = net.k, net.hidden

        def empty(*size: int) -> torch.Tensor:
            return torch.empty(size, dtype=like.dtype, device=like.device)

        def per_model(t: torch.Tensor) -> list[torch.Tensor]:
            return list(t.view(batch, k, hidden).unbind(1) if t.dim() == 2 else t.unbind(0))

        # The weights as the products read them. The optimiser updates the weights in place, so
        # these views stay current; moving the network makes new buffers (see `_apply`).
        self.w1 = net.w1.detach().view(net.in_features, k * hidden)
        self.b1 = net.b1.detach().view(k * hidden)
        self.w2, self.b2 = net.w2.detach(), net.b2.detach().unsqueeze(1)
        self.w3, self.b3 = net.w3.detach(), net.b3.detach().unsqueeze(1)
        self.w3_t = self.w3.transpose(1, 2)
        # layer 1 is one product for all models, so its input and gradient are (B, K*H);
        # the others are batched per model, (K, B, H)
        self.z1, self.h1 = empty(batch, k * hidden), empty(k, batch, hidden)
        self.z2, self.h2 = empty(k, batch, hidden), empty(k, batch, hidden)
        self.logits = empty(k, batch, net.classes)
        self.log_probs = empty(k, batch, net.classes)
        if train:
            self.grad_z1, self.grad_h1 = empty(batch, k * hidden), empty(k, batch, hidden)
            self.grad_z2, self.grad_h2 = empty(k, batch, hidden), empty(k, batch, hidden)
            self.minus_ones = torch.full((k, batch, 1), -1.0, dtype=like.dtype, device=like.device)
            weights = (net.w1, net.b1, net.w2, net.b2, net.w3, net.b3)
            self.grads = [torch.empty_like(w) for w in weights]
            # views the step multiplies with or writes into, made once too
            self.h1_t = self.h1.transpose(1, 2)
            self.w2_t = self.w2.transpose(1, 2)
            self.log_probs_t = self.log_probs.transpose(1, 2)
            self.grad_w1_flat = self.grads[0].view(net.in_features, k * hidden)
            self.grad_b1_flat = self.grads[1].view(k * hidden)
            self.layers = (
                _LayerViews(*map(per_model, (self.z1, self.h1, self.grad_h1, self.grad_z1))),
                _LayerViews(*map(per_model, (self.z2, self.h2, self.grad_h2, self.grad_z2))),
            )
        else:
            self.layers = (
                _LayerViews(per_model(self.z1), per_model(self.h1), [], []),
                _LayerViews(per_model(self.z2), per_model(self.h2), [], []),
            )
        # Each layer's activation calls bound to these buffers, where torch has kernels for all
        # of its activations (None where any goes through autograd): a step runs them as they are.
        self.forward_calls = [
            net._bind(layer, views, backward=False) for layer, views in enumerate(self.layers)
        ]
        self.backward_calls = [
            net._bind(layer, views, backward=True) if train else None
            for layer, views in enumerate(self.layers)
        ]


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

        # The hidden layers' weights are stored (in, out) so each is x @ W; layer 1 is
        # (in, K, H) so that its view (in, K*H) multiplies the shared batch once for all models.
        # Layer 3 is stored (out, in), as nn.Linear has it: products with only 10 output
        # columns are two to three times slower than the same work with 10 rows.
        self.w1 = stack([m.fc1.weight.t() for m in models], dim=1)
        self.b1 = stack([m.fc1.bias for m in models])
        self.w2 = stack([m.fc2.weight.t() for m in models])
        self.b2 = stack([m.fc2.bias for m in models])
        self.w3 = stack([m.fc3.weight for m in models])
        self.b3 = stack([m.fc3.bias for m in models])
        self.acts1 = nn.ModuleList([m.act1 for m in models])
        self.acts2 = nn.ModuleList([m.act2 for m in models])
        self.act_params1 = [p for act in self.acts1 for p in act.parameters()]
        self.act_params2 = [p for act in self.acts2 for p in act.parameters()]
        self.timing = False  # when on, each model's activation time adds up in act_seconds
        self.act_seconds = [0.0] * self.k
        # The step reads these plain lists (not the module's own attributes, which are slow
        # to look up): each layer's activation modules, and torch's kernels for them where
        # every one is built in (None where any needs autograd).
        self._layers = [list(self.acts1), list(self.acts2)]
        self._kernels = [_kernels_for(acts) for acts in self._layers]
        self._turn = [-1]  # which model's activation runs first in the next `_each`

    def act_counts(self) -> tuple[list[int], list[int]]:
        """How many learned tensors each model's two activation modules hold."""
        return (
            [len(list(act.parameters())) for act in self.acts1],
            [len(list(act.parameters())) for act in self.acts2],
        )

    def split_models(self, tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """A list laid out like `weights()` (weights, gradients, optimiser moments) cut per model.

        Model k's list holds its layer-1 to layer-3 weights (each laid out (in, out)) and biases,
        then its activations' tensors: the layout `join_models` stacks back. Checkpoints hold
        optimiser state in this layout.
        """
        w1, b1, w2, b2, w3, b3, *rest = tensors
        counts1, counts2 = self.act_counts()
        acts1, acts2 = rest[: sum(counts1)], rest[sum(counts1) :]
        per_model = []
        for k in range(self.k):
            own1 = acts1[sum(counts1[:k]) : sum(counts1[: k + 1])]
            own2 = acts2[sum(counts2[:k]) : sum(counts2[: k + 1])]
            layers = [w1[:, k], b1[k], w2[k], b2[k], w3[k].t(), b3[k]]
            per_model.append(
                [
                    t.detach().clone(memory_format=torch.contiguous_format)
                    for t in layers + own1 + own2
                ]
            )
        return per_model

    def join_models(self, per_model: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """The inverse of `split_models` for this network's models: one list like `weights()`."""
        if len(per_model) != self.k:
            raise ValueError(f"expected {self.k} models, got {len(per_model)}")
        layers = [torch.stack([m[i] for m in per_model], dim=1 if i == 0 else 0) for i in range(6)]
        layers[4] = layers[4].transpose(1, 2)  # layer 3 is stored (out, in)
        counts1, _ = self.act_counts()
        acts1 = [t for k, m in enumerate(per_model) for t in m[6 : 6 + counts1[k]]]
        acts2 = [t for k, m in enumerate(per_model) for t in m[6 + counts1[k] :]]
        device = self.w1.device
        return [t.to(device).contiguous() for t in layers + acts1 + acts2]

    def per_model(self, tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """The six layer tensors of `tensors` (laid out like `weights()`) as views per model."""
        w1, b1, w2, b2, w3, b3 = tensors[:6]
        return [[w1[:, k], b1[k], w2[k], b2[k], w3[k], b3[k]] for k in range(self.k)]

    def weights(self) -> list[torch.Tensor]:
        """Every trained tensor, in the order `train_step` returns their gradients."""
        stacked = [self.w1, self.b1, self.w2, self.b2, self.w3, self.b3]
        return [p.data for p in stacked + self.act_params1 + self.act_params2]

    @torch.no_grad()
    def hidden_layers(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both hidden layers' outputs, each (K, B, H), for a batch x of shape (B, in)."""
        buf = self._step_buffers(x.shape[0], x, train=False)
        self._logits(x, buf, train=False)
        return buf.h1.clone(), buf.h2.clone()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, classes) of every model for one shared batch x of shape (B, in)."""
        buf = self._step_buffers(x.shape[0], x, train=False)
        self._logits(x, buf, train=False)
        return buf.logits.clone()

    def _run(self, calls: list[Call]) -> list[Any]:
        """Every call's result, in order; each call's time added to model k's when timing is on.

        The calls start at a different model each time: the first elementwise kernel after a
        matrix product runs slower, and rotating spreads that cost evenly over the models
        (the results do not depend on the order).
        """
        count = len(calls)
        results: list[Any] = [None] * count
        first = self._turn[0] = (self._turn[0] + 1) % count
        order = (*range(first, count), *range(first))
        if self.timing:
            clock, seconds = time.perf_counter, self.act_seconds
            for k in order:
                started = clock()
                results[k] = calls[k]()
                seconds[k] += clock() - started
        else:
            for k in order:
                results[k] = calls[k]()
        return results

    def _each(self, count: int, fn: Callable[[int], Any]) -> list[Any]:
        """[fn(0), ..., fn(count - 1)], run and timed as `_run` runs calls."""
        return self._run([partial(fn, k) for k in range(count)])

    def _bind(self, layer: int, views: _LayerViews, backward: bool) -> list[Call] | None:
        """Layer `layer`'s activation kernels, forward or backward, bound to `views`.

        None where any of the layer's activations has no such kernel (it needs autograd).
        """
        kernels = self._kernels[layer]
        if kernels is None:
            return None
        acts = self._layers[layer]
        if backward:
            return [
                partial(kernel, act, views.grad_h[k], views.z[k], views.h[k], views.grad_z[k])
                for k, (act, kernel) in enumerate(zip(acts, kernels[1], strict=True))
            ]
        return [
            partial(kernel, act, views.z[k], views.h[k])
            for k, (act, kernel) in enumerate(zip(acts, kernels[0], strict=True))
        ]

    def _activate(self, layer: int, buf: _StepBuffers, train: bool) -> ParamGrads | None:
        """Write every model's activation of layer `layer` (0 or 1) from z into h.

        Built-in activations run torch's own kernels, bound to the buffers (nothing is copied
        or allocated) and return None: their backward pass is `buf.backward_calls`. Any other
        (learned, coupled, your own) goes through autograd; when training, its backward pass is
        returned: it writes the gradient at z (from the one at h) into the buffers and returns
        the gradients of the activations' own parameters.
        """
        calls = buf.forward_calls[layer]
        if calls is not None:
            self._run(calls)
            return None
        acts, views = self._layers[layer], buf.layers[layer]
        count = len(acts)
        z, h, grad_h, grad_z = views.z, views.h, views.grad_h, views.grad_z
        if not train:
            self._each(count, lambda k: h[k].copy_(acts[k](z[k])))
            return None
        inputs = [z[k].detach().requires_grad_() for k in range(count)]
        with torch.enable_grad():
            outputs = self._each(count, lambda k: acts[k](inputs[k]))
        for k in range(count):
            h[k].copy_(outputs[k])  # gradient recording is off here: h stays a plain buffer
        params = [list(act.parameters()) for act in acts]

        def grads_of(k: int) -> list[torch.Tensor]:
            wanted = [inputs[k], *params[k]]
            if not outputs[k].requires_grad:  # an activation that ignores its input
                return [torch.zeros_like(t) for t in wanted]
            grads = torch.autograd.grad(outputs[k], wanted, grad_h[k], allow_unused=True)
            pairs = zip(grads, wanted, strict=True)
            return [torch.zeros_like(t) if g is None else g for g, t in pairs]

        def autograd_backward() -> list[torch.Tensor]:
            grads = self._each(count, grads_of)
            for k in range(count):
                grad_z[k].copy_(grads[k][0])
            return [t for g in grads for t in g[1:]]

        return autograd_backward

    def _activation_backward(
        self, layer: int, buf: _StepBuffers, backward: ParamGrads | None
    ) -> list[Any]:
        """The backward pass of `_activate`: the gradients of the activations' own parameters."""
        if backward is None:
            self._run(buf.backward_calls[layer])
            return []
        return backward()

    def _step_buffers(self, batch: int, like: torch.Tensor, train: bool) -> _StepBuffers:
        """The buffers of a step (or test pass) on `batch` samples: made once, then reused.

        A run needs four sets: its batch, the shorter last batch, the unit-health probe's step
        and the test passes (of the test set and the probe, at the default test batch size).
        Another replaces the one made longest ago, so memory stays bounded.
        """
        cache = self.__dict__.setdefault("_buffer_cache", {})
        key = (batch, like.device, like.dtype, train)
        if key not in cache:
            while len(cache) >= 4:
                del cache[next(iter(cache))]
            cache[key] = _StepBuffers(self, batch, like, train)
        return cache[key]

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Any:
        # moving or converting the weights replaces them: buffers made for the old ones go
        self.__dict__.pop("_buffer_cache", None)
        return super()._apply(fn, recurse)

    def _logits(
        self, x: torch.Tensor, buf: _StepBuffers, train: bool
    ) -> tuple[ParamGrads | None, ParamGrads | None]:
        """Every model's logits for the batch x, written into `buf.logits`.

        Returns what `_activate` returns for each hidden layer.
        """
        torch.addmm(buf.b1, x, buf.w1, out=buf.z1)
        back1 = self._activate(0, buf, train)
        torch.baddbmm(buf.b2, buf.h1, buf.w2, out=buf.z2)
        back2 = self._activate(1, buf, train)
        torch.baddbmm(buf.b3, buf.h2, buf.w3_t, out=buf.logits)
        return back1, back2

    @staticmethod
    def _score(
        buf: _StepBuffers, target: torch.Tensor, scores: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Log-softmax of the logits into `buf.log_probs`, and the per-sample `scores` from it."""
        log_probs = torch.log_softmax(buf.logits, dim=-1, out=buf.log_probs)
        torch.gather(log_probs, 2, target, out=scores[0].unsqueeze(-1))
        torch.argmax(buf.logits, -1, out=scores[1])
        return log_probs

    @torch.no_grad()
    def test_scores(
        self, x: torch.Tensor, y: torch.Tensor, scores: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        """A test pass on the batch (x, y): `scores` as `train_step` fills them, and no step."""
        buf = self._step_buffers(x.shape[0], x, train=False)
        self._logits(x, buf, train=False)
        self._score(buf, y.view(1, -1, 1).expand(self.k, -1, 1), scores)

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
        loss and accuracy are summed from them. The layers' gradients are returned in buffers
        that the next step on as many samples overwrites: use them (or copy them) before that.
        """
        k, batch = self.k, x.shape[0]
        buf = self._step_buffers(batch, x, train=True)
        back1, back2 = self._logits(x, buf, train=True)

        # Softmax cross-entropy and its gradient, (softmax - onehot) / B, per model.
        target = y.view(1, batch, 1).expand(k, batch, 1)
        if scores is not None:
            log_probs = self._score(buf, target, scores)
        else:
            log_probs = torch.log_softmax(buf.logits, dim=-1, out=buf.log_probs)
        grad = log_probs.exp_()
        grad.scatter_add_(2, target, buf.minus_ones)
        grad.div_(batch)

        _, _, grad_w2, grad_b2, grad_w3, grad_b3 = buf.grads
        torch.bmm(buf.log_probs_t, buf.h2, out=grad_w3)  # grad^T h2: grad is log_probs now
        torch.sum(grad, 1, out=grad_b3)
        torch.bmm(grad, buf.w3, out=buf.grad_h2)
        grad_act2 = self._activation_backward(1, buf, back2)
        torch.bmm(buf.h1_t, buf.grad_z2, out=grad_w2)
        torch.sum(buf.grad_z2, 1, out=grad_b2)
        torch.bmm(buf.grad_z2, buf.w2_t, out=buf.grad_h1)
        grad_act1 = self._activation_backward(0, buf, back1)
        torch.mm(x.t(), buf.grad_z1, out=buf.grad_w1_flat)
        torch.sum(buf.grad_z1, 0, out=buf.grad_b1_flat)
        return [*buf.grads, *grad_act1, *grad_act2]

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as an `MLP` state dict (e.g. to load into a stand-alone MLP)."""
        state = {
            "fc1.weight": self.w1[:, k, :].t(),
            "fc1.bias": self.b1[k],
            "fc2.weight": self.w2[k].t(),
            "fc2.bias": self.b2[k],
            "fc3.weight": self.w3[k],
            "fc3.bias": self.b3[k],
        }
        for layer, acts in (("act1", self.acts1), ("act2", self.acts2)):
            for name, tensor in acts[k].state_dict().items():
                state[f"{layer}.{name}"] = tensor
        return {name: tensor.detach().clone() for name, tensor in state.items()}
