"""Our Adam and SGD take exactly the steps torch.optim takes."""

from __future__ import annotations

import pytest
import torch

from actbench.optim import SGD, Adam


def trajectories(ours_factory, reference_factory, steps=25):
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=generator), torch.randn(7, generator=generator)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(steps)]
    ours = [p.clone() for p in start]
    ref = [p.clone().requires_grad_() for p in start]
    optimizer = ours_factory(ours)
    reference = reference_factory(ref)
    for step_grads in grads:
        optimizer.step([g.clone() for g in step_grads])
        for p, g in zip(ref, step_grads, strict=True):
            p.grad = g.clone()
        reference.step()
    return ours, [p.detach() for p in ref]


@pytest.mark.parametrize("fused", [True, False])
def test_adam_matches_torch(fused):
    def make(params):
        optimizer = Adam(params, lr=0.01)
        optimizer.fused = fused
        return optimizer

    ours, ref = trajectories(make, lambda p: torch.optim.Adam(p, lr=0.01))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch(momentum):
    ours, ref = trajectories(
        lambda p: SGD(p, lr=0.05, momentum=momentum),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=momentum),
    )
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_first_adam_step_by_hand():
    # With bias correction the first step moves every weight by lr * sign(grad) (up to eps).
    param = torch.zeros(3)
    Adam([param], lr=0.1).step([torch.tensor([2.0, -0.5, 1e-3])])
    torch.testing.assert_close(param, torch.tensor([-0.1, 0.1, -0.1]), rtol=1e-4, atol=1e-6)
