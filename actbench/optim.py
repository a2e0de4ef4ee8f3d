"""Adam and SGD updates for a fixed list of tensors, computed exactly as torch.optim does.

torch.optim's classes import the whole compiler stack (about 1.5 s) on first use; these take
the same steps through the same kernels (fused Adam where the device has it) without that.
"""

from __future__ import annotations

import torch

from actbench.config import RunConfig


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
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]
        self.fused = hasattr(torch, "_fused_adam_")

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        torch._foreach_add_(self.steps, 1)
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
        self.buffers: list[torch.Tensor] | None = None

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        if self.momentum:
            if self.buffers is None:
                self.buffers = [g.clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers, self.momentum)
                torch._foreach_add_(self.buffers, grads)
            grads = self.buffers
        torch._foreach_add_(self.params, grads, alpha=-self.lr)


def make_optimizer(params: list[torch.Tensor], config: RunConfig) -> Adam | SGD:
    if config.optimizer == "sgd":
        return SGD(params, config.lr, config.momentum)
    return Adam(params, config.lr)
