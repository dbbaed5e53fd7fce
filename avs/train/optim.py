"""RMSprop, the official LAFF recipe's optimizer, without its per-step allocations.

torch's RMSprop computes ``square_avg.sqrt()`` into a fresh tensor for every parameter at every step: for the paper's
LAFF that is 49 M new floats a step, allocated, page-faulted and freed. :class:`RMSprop` runs the very same
operations in the same order (so its parameters are equal to torch's bit for bit, tested) with the square root
written into one reused buffer. Anything but the plain algorithm (momentum, centred, weight decay, maximize,
complex or sparse parameters) goes to torch's own step.
"""

from __future__ import annotations

import torch


class RMSprop(torch.optim.RMSprop):
    """``torch.optim.RMSprop`` with the plain step done in place; the same state dict, so checkpoints written
    with either load in the other."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self._scratch: torch.Tensor | None = None

    def _plain(self, group: dict) -> bool:
        return not (
            group["momentum"] or group["centered"] or group["weight_decay"] or group["maximize"]
            or group.get("differentiable") or group.get("capturable")
        )  # fmt: skip

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        if self._scratch is None or self._scratch.numel() < p.numel() or self._scratch.device != p.device:
            self._scratch = torch.empty(p.numel(), dtype=p.dtype, device=p.device)
        return self._scratch[: p.numel()].view_as(p)

    @torch.no_grad()
    def step(self, closure=None):
        if any(not self._plain(g) for g in self.param_groups) or any(
            p.grad is not None and (p.grad.is_sparse or p.is_complex() or p.dtype != torch.float32)
            for g in self.param_groups
            for p in g["params"]
        ):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # as torch initialises it
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                square_avg, grad = state["square_avg"], p.grad
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                avg = torch.sqrt(square_avg, out=self._buffer(p))
                avg.add_(eps)
                p.addcdiv_(grad, avg, value=-lr)
        return loss
