"""`autograd`: torch autograd on the loss (Hu et al. (arXiv:2406.03136) loss (1.2); docs/theory.md §2.1);
the reference solver.

It differentiates `harness.losses.lora_loss` and shares no gradient code with the other solvers.
"""

from __future__ import annotations

import torch

from harness.instance import Instance
from harness.losses import lora_loss
from harness.measure.opcount import OpCounter
from harness.solvers.base import SLACK_BYTES, Result, Solver, input_bytes


def _ops(inst: Instance) -> int:
    """Forward + backward of the dense loss: ~3x the forward matmul work (FlashAttention convention)."""
    c = OpCounter()
    a, b, d, N = inst.Lq, inst.Lk, inst.d, inst.N
    c.mm(a, d, d, N), c.mm(b, d, d, 2 * N)  # projections
    c.mm(a, d, b, N), c.ew(N * a * b, 5), c.mm(a, b, d, N)  # scores, softmax, P V
    return 3 * int(c)


class AutogradSolver(Solver):
    name = "autograd"
    exact = True
    cost = "O(N L^2 d) time, O(N L^2) memory"
    description = "torch autograd of the loss in float64 (the reference)"
    options = {}

    def memory_estimate(self, inst: Instance, itemsize: int, **options) -> int:
        """4 N Lq Lk (the scores, the softmax saved for backward and their gradients; measured
        3.1 N L^2) + 10 N (L x d) + the inputs."""
        N, L2, Ld = inst.N, inst.Lq * inst.Lk, (inst.Lq + inst.Lk) * inst.d
        return (4 * N * L2 + 10 * N * Ld) * itemsize + input_bytes(inst, itemsize) + SLACK_BYTES

    def _solve(self, inst: Instance, dtype, device, **opts) -> Result:
        t = inst.as_torch(dtype=dtype, device=device)
        leaves = []
        for m in inst.adapted:
            for p in ("A", "B"):
                t[f"{p}_{m}"] = t[f"{p}_{m}"].clone().requires_grad_(True)
                leaves.append(f"{p}_{m}")
        loss = lora_loss(t, inst.alpha, inst.beta, inst.r, inst.causal)
        grads = {}
        if leaves:
            gs = torch.autograd.grad(loss, [t[k] for k in leaves], allow_unused=True)
            for k, g in zip(leaves, gs):
                g = torch.zeros_like(t[k]) if g is None else g
                grads["d" + k] = g.detach().cpu().double().numpy()
        return Result(grads, float(loss.detach()), self.name, ops=_ops(inst))

    def forward(self, inst: Instance, *, dtype=None, device=None, **options):
        from harness.losses import attention_output
        from harness.solvers.base import resolve_device, resolve_dtype

        t = inst.as_torch(dtype=resolve_dtype(dtype), device=resolve_device(device))
        return attention_output(t, inst.alpha, inst.beta, inst.r, inst.causal).cpu().double().numpy()
