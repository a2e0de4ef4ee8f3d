"""Adam and SGD updates for a fixed list of tensors, computed exactly as torch.optim does.

torch.optim's classes import the whole compiler stack (about 1.5 s) on first use; these take
the same steps through the same kernels (fused Adam where the device has it) without that.
"""

from __future__ import annotations

import torch

from actbench.config import RunConfig


def _copies(saved: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Fresh copies of saved state tensors, each checked against and moved to its parameter."""
    if len(saved) != len(params) or any(
        s.shape != p.shape for s, p in zip(saved, params, strict=True)
    ):
        raise ValueError("saved optimiser state does not fit the parameters")
    return [
        s.to(device=p.device, dtype=p.dtype).clone() for s, p in zip(saved, params, strict=True)
    ]


class Adam:
    """Adam (Kingma and Ba, 2015) with torch.optim.Adam's defaults: no weight decay, no AMSGrad."""

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        # one step counter, shared: the tensors are always updated together
        step = torch.zeros((), dtype=torch.float32, device=params[0].device if params else None)
        self.steps = [step] * len(params)
        self.fused = hasattr(torch, "_fused_adam_")

    def buffers(self) -> dict[str, list[torch.Tensor]]:
        """The per-tensor state, each list laid out like the parameters."""
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    @property
    def step_count(self) -> int:
        return int(self.steps[0].item()) if self.steps else 0

    def load(self, buffers: dict[str, list[torch.Tensor]], step_count: int) -> None:
        """Continue from saved state (the inverse of `buffers` and `step_count`)."""
        self.exp_avg = _copies(buffers["exp_avg"], self.params)
        self.exp_avg_sq = _copies(buffers["exp_avg_sq"], self.params)
        if self.steps:
            self.steps[0].fill_(step_count)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        if self.steps:
            self.steps[0].add_(1)
        if self.fused:
            try:
                self._fused(grads)
                return
            except (RuntimeError, NotImplementedError):  # no fused kernel on this device
                self.fused = False
        self._foreach(grads)

    def _fused(self, grads: list[torch.Tensor]) -> None:
        beta1, beta2 = self.betas
        torch._fused_adam_(
            self.params, grads, self.exp_avg, self.exp_avg_sq, [], self.steps,
            lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps,
            amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
        )  # fmt: skip

    def _foreach(self, grads: list[torch.Tensor]) -> None:
        beta1, beta2 = self.betas
        step = self.steps[0].item()
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - beta2)
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias2**0.5)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.exp_avg, denom, -self.lr / bias1)


class SGD:
    """Stochastic gradient descent with optional momentum, as torch.optim.SGD computes it."""

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float = 0.0) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self.buffers_: list[torch.Tensor] | None = None

    def buffers(self) -> dict[str, list[torch.Tensor]]:
        """The momentum buffers (none before the first step or without momentum)."""
        return {"momentum_buffer": self.buffers_} if self.buffers_ is not None else {}

    step_count = 0  # SGD's update does not depend on the step

    def load(self, buffers: dict[str, list[torch.Tensor]], step_count: int) -> None:
        saved = buffers.get("momentum_buffer")
        if saved is not None:
            self.buffers_ = _copies(saved, self.params)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        if self.momentum:
            if self.buffers_ is None:
                self.buffers_ = [g.clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers_, self.momentum)
                torch._foreach_add_(self.buffers_, grads)
            grads = self.buffers_
        torch._foreach_add_(self.params, grads, alpha=-self.lr)


def make_optimizer(params: list[torch.Tensor], config: RunConfig) -> Adam | SGD:
    if config.optimizer == "sgd":
        return SGD(params, config.lr, config.momentum)
    return Adam(params, config.lr)
