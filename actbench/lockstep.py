"""K networks of one shape stacked into one module, so they train side by side on one batch.

All K models see the same mini-batch. Each layer's products are one batched product with one
matrix per model; each model's weights, activations, loss and optimiser state are its own
contiguous block of the stacked tensors, and every elementwise operation and sum runs on each
model's block separately. So every model gets bit for bit the numbers it would get trained
alone, whatever other models share its group (tests/test_identity.py checks it).

`train_step` writes the backward pass out by hand (the layers are linear, the loss is
softmax cross-entropy), so a step costs a few large kernels per layer instead of a graph of
small ones; one loop over the layers serves every depth. Built-in activations run torch's own
forward and backward kernels; only the others (learned, coupled, your own) go through
autograd. Every intermediate of a step is written into buffers made once per batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from actbench.model import MLP

aten = torch.ops.aten

# Kernels that write into a given tensor `out`, for common activations without learned
# parameters: the forward pass, and the gradient with respect to the input z from the output's
# gradient g, the input z and the output h. They are the kernels torch's own modules and
# autograd run; a model whose activation is listed here skips autograd.
Forward = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Backward = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]
Call = Callable[[], Any]  # a kernel bound to its tensors
ParamGrads = Callable[[], list[torch.Tensor]]  # an autograd backward pass (see `_activate`)
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
    nn.Softmax: lambda m, z, out: aten._softmax.out(z, m.dim, False, out=out),
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
    # (its out= kernel leaves a strided `out` unwritten: copied instead)
    nn.Softmax: lambda m, g, z, h, out: out.copy_(
        aten._softmax_backward_data(g, h, m.dim, z.dtype)
    ),
}


def _kernels_for(acts: list[nn.Module]) -> tuple[list[Forward], list[Backward]] | None:
    """torch's forward and backward kernels for each activation, if all are built in."""
    if not all(_built_in(act) for act in acts):
        return None
    return [FORWARDS[type(act)] for act in acts], [BACKWARDS[type(act)] for act in acts]


def _built_in(act: nn.Module) -> bool:
    """Whether torch has out= kernels for `act` (see FORWARDS): it then skips autograd.

    A softmax needs its dimension given (None picks one by the input's shape, as torch did
    once, with a warning): actbench's `softmax` is over a layer's units, dim=-1."""
    if isinstance(act, nn.Softmax) and act.dim is None:
        return False
    return type(act) in BACKWARDS


ALIGN_BYTES = (
    64  # where each model's block starts, as a tensor of its own would (torch's CPU allocator)
)


def blocks(k: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised (k, *shape) tensor whose k blocks each start on an ALIGN_BYTES boundary.

    Each block is contiguous and aligned as a tensor of that shape allocated alone would be.
    This matters for the bit-identity of the models: on the CPU, a matrix product's rounding
    can depend on where its operands start in memory.
    """
    numel = math.prod(shape)
    unit = max(1, ALIGN_BYTES // like.element_size())
    padded = -(-numel // unit) * unit
    flat = torch.empty(k, padded, dtype=like.dtype, device=like.device)
    return flat.narrow(1, 0, numel).view(k, *shape)


def _blocked(t: torch.Tensor) -> torch.Tensor:
    """A copy of the stacked tensor t (k, ...) laid out in aligned blocks (see `blocks`)."""
    out = blocks(t.shape[0], tuple(t.shape[1:]), t)
    return out.copy_(t)


@dataclass(frozen=True)
class _LayerViews:
    """One hidden layer's per-model views into the step's buffers, each (B, H) and contiguous."""

    z: list[torch.Tensor]  # the activation's input
    h: list[torch.Tensor]  # its output
    grad_h: list[torch.Tensor]  # the loss's gradient at h (empty in a test pass)
    grad_z: list[torch.Tensor]  # and at z


class _StepBuffers:
    """Everything a step on `batch` samples writes, made once with its views.

    A step then allocates nothing and reuses the same memory, which stays in cache. A test
    pass (`train=False`) writes only the forward pass's buffers; the gradients' are not made.
    Every buffer is stacked (K, ...) so that each model's part is one contiguous block laid
    out as it would be for that model alone. Lists run over the layers: index i is hidden
    layer i + 1 (z, h and their gradients) or linear layer i + 1 (weights, biases).
    """

    def __init__(self, net: LockstepMLP, batch: int, like: torch.Tensor, train: bool) -> None:
        k, hidden, classes, depth = net.k, net.hidden, net.classes, net.depth

        def empty(*size: int) -> torch.Tensor:  # (K, ...), each model's block aligned
            return blocks(size[0], size[1:], like)

        # The weights as the products read them. The optimiser updates the weights in place, so
        # these views stay current; moving the network makes new buffers (see `_apply`).
        stacked = net.stacked()
        self.w = [w.detach() for w in stacked[0::2]]  # hidden (K, in, out); the last (K, out, in)
        self.b = [b.detach().unsqueeze(1) for b in stacked[1::2]]  # (K, 1, out)
        self.w_out_t = self.w[-1].transpose(1, 2)
        self.z, self.h = [], []  # each layer's pair made together, as memory goes
        for _ in range(depth):
            self.z.append(empty(k, batch, hidden))
            self.h.append(empty(k, batch, hidden))
        self.logits = empty(k, batch, classes)
        self.log_probs = empty(k, batch, classes)
        self.per_logits, self.per_log_probs = list(self.logits), list(self.log_probs)
        if train:
            self.grad_z, self.grad_h = [], []
            for _ in range(depth):
                self.grad_z.append(empty(k, batch, hidden))
                self.grad_h.append(empty(k, batch, hidden))
            self.minus_one = torch.full((batch, 1), -1.0, dtype=like.dtype, device=like.device)
            self.grads = [blocks(k, tuple(w.shape[1:]), w) for w in stacked]
            self.grad_w = self.grads[0::2]
            self.grad_views = [[g[m] for g in self.grads] for m in range(k)]
            self.flat_grads = [g for views in self.grad_views for g in views]
            # views the step multiplies with or writes into, made once too
            self.h_t = [h.transpose(1, 2) for h in self.h]
            self.w_t = [w.transpose(1, 2) for w in self.w[:depth]]  # hidden layers' W^T
            self.log_probs_t = self.log_probs.transpose(1, 2)
            views = zip(self.z, self.h, self.grad_h, self.grad_z, strict=True)
            self.layers = tuple(_LayerViews(*map(list, four)) for four in views)
            # each model's bias gradients are sums over its own block: (gradient, into), last
            # layer first
            self.bias_sums = [(list(self.log_probs), list(self.grads[-1]))] + [
                (list(self.grad_z[i]), list(self.grads[2 * i + 1])) for i in reversed(range(depth))
            ]
        else:
            self.layers = tuple(
                _LayerViews(list(z), list(h), [], []) for z, h in zip(self.z, self.h, strict=True)
            )
        # Each layer's activation calls bound to these buffers, for the models whose activation
        # torch has kernels for (the others go through autograd): a step runs them as they are.
        self.forward_calls = [
            net._bind(layer, views, backward=False) for layer, views in enumerate(self.layers)
        ]
        self.backward_calls = [
            net._bind(layer, views, backward=True) if train else []
            for layer, views in enumerate(self.layers)
        ]


class LockstepMLP(nn.Module):
    """K copies of the MLP architecture, each with its own weights and activation modules.

    Every model's numbers are exactly those it would have alone, whatever other models share
    the group and in whatever order: the matrix products are batched products, one matrix per
    model, and every other operation (activations, softmax, sums, the optimiser's update)
    runs on each model's own contiguous block, so no model's arithmetic depends on the
    group's size or on where its block sits.

    The models must share their shape (input size, width, depth, classes). Linear layer i
    (1 to depth + 1) is stacked as `w{i}` and `b{i}`, hidden layer i's activation modules
    are `acts{i}`.
    """

    def __init__(self, models: list[MLP]) -> None:
        super().__init__()
        if not models:
            raise ValueError("need at least one model")
        self.k = len(models)
        first = models[0].linears()
        self.depth = len(first) - 1
        self.in_features = first[0].in_features
        self.hidden = first[0].out_features
        self.classes = first[-1].out_features
        shape = [tuple(fc.weight.shape) for fc in first]
        if any([tuple(fc.weight.shape) for fc in m.linears()] != shape for m in models):
            raise ValueError("models trained in lockstep must have the same layers")

        def stack(tensors: list[torch.Tensor]) -> nn.Parameter:
            return nn.Parameter(_blocked(torch.stack([t.detach() for t in tensors])))

        # The hidden layers' weights are stored (K, in, out) so each is x @ W. The last layer is
        # stored (K, out, in), as nn.Linear has it: products with only 10 output columns are
        # two to three times slower than the same work with 10 rows.
        for i in range(self.depth + 1):
            last = i == self.depth
            weights = [m.linears()[i].weight for m in models]
            setattr(self, f"w{i + 1}", stack(weights if last else [w.t() for w in weights]))
            setattr(self, f"b{i + 1}", stack([m.linears()[i].bias for m in models]))
        for i in range(self.depth):
            setattr(self, f"acts{i + 1}", nn.ModuleList([m.activations()[i] for m in models]))
        # The step reads these plain lists (not the module's own attributes, which are slow
        # to look up): each layer's activation modules, and the models whose activation
        # there needs autograd (the others run torch's kernels, `_bind`).
        self._layers = [list(getattr(self, f"acts{i + 1}")) for i in range(self.depth)]
        self._autograd = [
            [k for k, act in enumerate(acts) if not _built_in(act)] for acts in self._layers
        ]

    def stacked(self) -> list[nn.Parameter]:
        """The stacked layer tensors w1, b1, ..., w{depth+1}, b{depth+1}, each (K, ...)."""
        return [
            getattr(self, f"{kind}{i + 1}") for i in range(self.depth + 1) for kind in ("w", "b")
        ]

    def act_counts(self) -> list[list[int]]:
        """How many learned tensors each model's activation modules hold: [layer][model]."""
        return [[len(list(act.parameters())) for act in acts] for acts in self._layers]

    def per_model(self, tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """A list laid out like `weights()` (weights, gradients, optimiser moments) cut per model.

        Model k's list holds its 2 (depth + 1) layer tensors (w1, b1, ..., as stored), then
        its activations' tensors, first layer to last.
        """
        counts = self.act_counts()
        layer_tensors = 2 * (self.depth + 1)
        out, start = [], 0
        for k in range(self.k):
            end = start + layer_tensors + sum(per_layer[k] for per_layer in counts)
            out.append(list(tensors[start:end]))
            start = end
        if start != len(tensors):
            raise ValueError(f"expected {start} tensors, got {len(tensors)}")
        return out

    def split_models(self, tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """`per_model`'s lists as copies, each layer laid out (in, out): the checkpoint layout.

        `join_models` turns them back into one list like `weights()`. Checkpoints hold optimiser
        state in this layout.
        """
        last = 2 * self.depth  # the last layer's weight, stored (out, in)
        per_model = []
        for own in self.per_model(tensors):
            own = list(own)
            own[last] = own[last].t()
            per_model.append([t.detach().clone(memory_format=torch.contiguous_format) for t in own])
        return per_model

    def join_models(self, per_model: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """The inverse of `split_models` for this network's models: one list like `weights()`."""
        if len(per_model) != self.k:
            raise ValueError(f"expected {self.k} models, got {len(per_model)}")
        device = self.w1.device
        last = 2 * self.depth
        joined = []
        for own in per_model:
            own = list(own)
            own[last] = own[last].t()
            joined += [t.to(device).contiguous() for t in own]
        return joined

    def weights(self) -> list[torch.Tensor]:
        """Every trained tensor, model by model, in the order `train_step` returns gradients.

        Model k's layer tensors are views of its block of the stacked weights (updating them
        updates the network), followed by its activations' own parameters, layer by layer.
        """
        stacked = [p.data for p in self.stacked()]
        out = []
        for k in range(self.k):
            out += [t[k] for t in stacked]
            for acts in self._layers:
                out += [p.data for p in acts[k].parameters()]
        return out

    @torch.no_grad()
    def hidden_layers(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every hidden layer's output, each (K, B, H), first to last, for x of shape (B, in)."""
        buf = self._step_buffers(x.shape[0], x, train=False)
        self._logits(x, buf, train=False)
        return tuple(h.clone() for h in buf.h)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, classes) of every model for one shared batch x of shape (B, in)."""
        buf = self._step_buffers(x.shape[0], x, train=False)
        self._logits(x, buf, train=False)
        return buf.logits.clone()

    @staticmethod
    def _run(calls: list[Call]) -> list[Any]:
        """Every call's result, in order."""
        return [call() for call in calls]

    def _bind(self, layer: int, views: _LayerViews, backward: bool) -> list[Call]:
        """Layer `layer`'s activation kernels, forward or backward, bound to `views`: one call
        for each model whose activation torch has kernels for (the others need autograd)."""
        calls = []
        for k, act in enumerate(self._layers[layer]):
            if not _built_in(act):
                continue
            if backward:
                kernel = BACKWARDS[type(act)]
                calls.append(
                    partial(kernel, act, views.grad_h[k], views.z[k], views.h[k], views.grad_z[k])
                )
            else:
                calls.append(partial(FORWARDS[type(act)], act, views.z[k], views.h[k]))
        return calls

    def _activate(self, layer: int, buf: _StepBuffers, train: bool) -> ParamGrads | None:
        """Write every model's activation of hidden layer `layer` (0 first) from z into h.

        Built-in activations run torch's own kernels, bound to the buffers (nothing is copied
        or allocated); their backward pass is `buf.backward_calls`. The others (learned,
        coupled, your own) go through autograd, model by model, whatever shares the group.
        When training with any of those, their backward pass is returned (None otherwise): it
        writes their gradient at z (from the one at h) into the buffers and returns the
        gradients of every model's activation parameters, one list per model (empty for the
        built-in ones, which learn nothing).
        """
        self._run(buf.forward_calls[layer])
        others = self._autograd[layer]
        if not others:
            return None
        acts, views = self._layers[layer], buf.layers[layer]
        z, h, grad_h, grad_z = views.z, views.h, views.grad_h, views.grad_z
        if not train:
            for k in others:
                h[k].copy_(acts[k](z[k]))
            return None
        inputs = {k: z[k].detach().requires_grad_() for k in others}
        with torch.enable_grad():
            outputs = {k: acts[k](inputs[k]) for k in others}
        for k in others:
            h[k].copy_(outputs[k])  # gradient recording is off here: h stays a plain buffer
        params = {k: list(acts[k].parameters()) for k in others}

        def grads_of(k: int) -> list[torch.Tensor]:
            wanted = [inputs[k], *params[k]]
            if not outputs[k].requires_grad:  # an activation that ignores its input
                return [torch.zeros_like(t) for t in wanted]
            grads = torch.autograd.grad(outputs[k], wanted, grad_h[k], allow_unused=True)
            pairs = zip(grads, wanted, strict=True)
            return [torch.zeros_like(t) if g is None else g for g, t in pairs]

        def autograd_backward() -> list[list[torch.Tensor]]:
            own: list[list[torch.Tensor]] = [[] for _ in acts]
            for k in others:
                grads = grads_of(k)
                grad_z[k].copy_(grads[0])
                own[k] = grads[1:]
            return own

        return autograd_backward

    def _activation_backward(
        self, layer: int, buf: _StepBuffers, backward: ParamGrads | None
    ) -> list[list[torch.Tensor]] | None:
        """The backward pass of `_activate`: each model's activation-parameter gradients.

        None for a layer of built-in activations only (torch's kernels; they learn nothing).
        """
        self._run(buf.backward_calls[layer])
        return None if backward is None else backward()

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
        result = super()._apply(fn, recurse)
        for weight in self.stacked():
            weight.data = _blocked(weight.data)  # a converted copy is packed: align it again
        return result

    def _logits(self, x: torch.Tensor, buf: _StepBuffers, train: bool) -> list[ParamGrads | None]:
        """Every model's logits for the batch x, written into `buf.logits`.

        Layer by layer, each layer's input multiplied by each model's weights in one batched
        product (the shared batch x is expanded, not copied), then the activation. Returns
        what `_activate` returns for each hidden layer, first to last.
        """
        inputs = [x.expand(self.k, *x.shape), *buf.h]
        backward = []
        for layer in range(self.depth):
            torch.baddbmm(buf.b[layer], inputs[layer], buf.w[layer], out=buf.z[layer])
            backward.append(self._activate(layer, buf, train))
        torch.baddbmm(buf.b[-1], inputs[-1], buf.w_out_t, out=buf.logits)
        return backward

    @staticmethod
    def _score(
        buf: _StepBuffers, target: torch.Tensor, scores: tuple[torch.Tensor, torch.Tensor] | None
    ) -> None:
        """Each model's log-softmax into `buf.log_probs`, and the per-sample `scores` from it.

        `target` is (B, 1); `scores`, if given, are two (K, B) tensors.
        """
        for k, (logits, log_probs) in enumerate(
            zip(buf.per_logits, buf.per_log_probs, strict=True)
        ):
            torch.log_softmax(logits, dim=-1, out=log_probs)
            if scores is not None:
                torch.gather(log_probs, 1, target, out=scores[0][k].unsqueeze(-1))
                torch.argmax(logits, -1, out=scores[1][k])

    @torch.no_grad()
    def test_scores(
        self, x: torch.Tensor, y: torch.Tensor, scores: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        """A test pass on the batch (x, y): `scores` as `train_step` fills them, and no step."""
        buf = self._step_buffers(x.shape[0], x, train=False)
        self._logits(x, buf, train=False)
        self._score(buf, y.view(-1, 1), scores)

    @torch.no_grad()
    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        scores: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Gradients of `weights()` for every model's mean cross-entropy on the batch (x, y).

        x is (B, in), y (B,) class indices. `scores`, if given, are two (K, B) tensors that
        receive, per model and sample, the log-probability of the true label (float) and the
        predicted class (int64): the epoch's loss and accuracy are summed from them. The
        gradients are returned model by model, as `weights()` lists the tensors, in buffers
        that the next step on as many samples overwrites: use them (or copy them) before that.
        """
        batch = x.shape[0]
        buf = self._step_buffers(batch, x, train=True)
        backward = self._logits(x, buf, train=True)

        # Softmax cross-entropy and its gradient, (softmax - onehot) / B, per model.
        target = y.view(batch, 1)
        self._score(buf, target, scores)
        for grad in buf.per_log_probs:  # each becomes its model's gradient at the logits
            grad.exp_().scatter_add_(1, target, buf.minus_one).div_(batch)

        # Back through the layers, last to first: each layer's weight gradient is its input's
        # transpose times the gradient at its output, and the gradient at its input is that
        # gradient times its weights (none for the first layer's input, the data).
        inputs_t = [x.t().expand(self.k, *x.t().shape), *buf.h_t]
        torch.bmm(buf.log_probs_t, buf.h[-1], out=buf.grad_w[-1])  # stored (out, in)
        torch.bmm(buf.log_probs, buf.w[-1], out=buf.grad_h[-1])
        grad_acts: list[list[list[torch.Tensor]] | None] = [None] * self.depth
        for layer in reversed(range(self.depth)):
            grad_acts[layer] = self._activation_backward(layer, buf, backward[layer])
            torch.bmm(inputs_t[layer], buf.grad_z[layer], out=buf.grad_w[layer])
            if layer:
                torch.bmm(buf.grad_z[layer], buf.w_t[layer], out=buf.grad_h[layer - 1])
        for blocks, into in buf.bias_sums:
            for block, out in zip(blocks, into, strict=True):
                torch.sum(block, 0, out=out)
        learned = [own for own in grad_acts if own is not None]
        if not learned:
            return buf.flat_grads.copy()
        grads = []
        for k in range(self.k):
            grads += buf.grad_views[k]
            for own in learned:
                grads += own[k]
        return grads

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as an `MLP` state dict (e.g. to load into a stand-alone MLP)."""
        state = {}
        for i in range(self.depth + 1):
            weight = getattr(self, f"w{i + 1}")[k]
            state[f"fc{i + 1}.weight"] = weight if i == self.depth else weight.t()
            state[f"fc{i + 1}.bias"] = getattr(self, f"b{i + 1}")[k]
        for i, acts in enumerate(self._layers):
            for name, tensor in acts[k].state_dict().items():
                state[f"act{i + 1}.{name}"] = tensor
        return {name: tensor.detach().clone() for name, tensor in state.items()}
