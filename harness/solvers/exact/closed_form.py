"""`closed-form`: the quadratic exact algorithm (Hu et al. (arXiv:2406.03136) App. E (arXiv v2);
docs/theory.md §3.3, generalised in §3.2), no autograd.

Per data point i (docs/theory.md §3.2):
    S = beta Q K^T,  Q = X_q W_q, K = X_k W_k, V = X_v W_v
    f = softmax_rows(S)                                   (row-max subtracted)
    c = (f V - Y) / N                                     (= R_i, the residual)
    q = c V^T                                             (the CORRECTED orientation, docs/theory.md §7.1)
    p = f . q - diag(rowsum(f . q)) f                     (rows p_j = (diag f_j - f_j f_j^T) q_j)
    G_Wq = beta X_q^T p K,  G_Wk = beta X_k^T p^T Q,  G_Wv = X_v^T f^T c
    dL/dA_m = (alpha/r) B_m^T G_Wm,  dL/dB_m = (alpha/r) G_Wm A_m^T
Two L x L buffers at a time (f and p); O(L^2 d) time. Causal instances: the masked scores are -inf
before the softmax, so f and p vanish there and every formula above holds unchanged.

Its naive twins are in `harness.solvers.exact.naive` (p row by row; the printed orientation of q).
"""

from __future__ import annotations

import numpy as np
import torch

from harness.instance import Instance
from harness.lora import adapter_gradients, effective_weights
from harness.measure.opcount import OpCounter
from harness.solvers._common import to_numpy
from harness.solvers.base import SLACK_BYTES, Result, Solver, input_bytes


def softmax_rows(S: torch.Tensor) -> torch.Tensor:
    """f = D^-1 exp(S), stabilised by the row max (docs/theory.md §1 softmax convention); in place on S."""
    S -= S.amax(dim=-1, keepdim=True)
    S.exp_()
    S /= S.sum(dim=-1, keepdim=True)
    return S


def p_matrix(f: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """p = f . q - diag(rowsum(f . q)) f (Hu et al. (arXiv:2406.03136) Def. 3.6; docs/theory.md §3.1; p =
    p1 - p2, p2 = diag(r) f); overwrites q."""
    q.mul_(f)
    r = q.sum(dim=-1, keepdim=True)
    q.addcmul_(f, r, value=-1.0)  # q -= r * f without an L x L temporary
    return q


def closed_form_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted: tuple[str, ...],
    q_fn=None,
    ops: OpCounter | None = None,
    causal: bool = False,
) -> tuple[dict, float]:
    """All adapter gradients of the general loss by the formulas of docs/theory.md §3.2. `q_fn(c, V)`
    overrides how q is formed (default: the corrected q = c V^T); used to demonstrate the printed
    orientation."""
    ops = ops or OpCounter()
    W = effective_weights(t, alpha, r)
    Xq, Xk, Xv, Y = t["X_q"], t["X_k"], t["X_v"], t["Y"]
    N, a, d = Xq.shape
    b = Xk.shape[1]
    ops.mm(d, r, d, len(adapted))
    G = {m: torch.zeros(d, d, dtype=Xq.dtype, device=Xq.device) for m in adapted}
    hidden = ~torch.ones(a, b, dtype=torch.bool, device=Xq.device).tril() if causal else None
    loss = 0.0
    for i in range(N):
        Q, K, V = Xq[i] @ W["q"], Xk[i] @ W["k"], Xv[i] @ W["v"]
        ops.mm(a, d, d), ops.mm(b, d, d, 2)
        S = (Q @ K.T).mul_(beta)
        if causal:
            S.masked_fill_(hidden, -torch.inf)
        f = softmax_rows(S)  # in place: one L x L buffer
        ops.mm(a, d, b), ops.ew(a * b, 5)
        out = f @ V
        ops.mm(a, b, d)
        c = (out - Y[i]) / N
        loss += float((out - Y[i]).square().sum()) / (2 * N)
        ops.ew(a * d, 4)
        if "v" in G:
            G["v"] += Xv[i].T @ (f.T @ c)
            ops.mm(b, a, d), ops.mm(d, b, d)
        if "q" in G or "k" in G:
            q = q_fn(c, V) if q_fn is not None else c @ V.T
            ops.mm(a, d, b)
            p = p_matrix(f, q)
            ops.ew(a * b, 4)
            if "q" in G:
                G["q"] += beta * (Xq[i].T @ (p @ K))
                ops.mm(a, b, d), ops.mm(d, a, d)
            if "k" in G:
                G["k"] += beta * (Xk[i].T @ (p.T @ Q))
                ops.mm(b, a, d), ops.mm(d, b, d)
        del f
    ops.mm(r, d, d, 2 * len(adapted))
    return adapter_gradients(t, G, alpha, r), loss


class ClosedFormSolver(Solver):
    name = "closed-form"
    exact = True
    cost = "O(N L^2 d) time, O(L^2) memory"
    description = "quadratic closed form with the p-matrix (docs/theory.md §3.2-§3.3), no autograd"
    options = {}

    def memory_estimate(self, inst: Instance, itemsize: int, **options) -> int:
        """3 (Lq x Lk) buffers: f and q, and the previous data point's p while the next f and q are
        built (measured 2.05 L^2 at N = 1, 3.15 at N = 2), + 10 (L x d) + the inputs."""
        L2, Ld = inst.Lq * inst.Lk, (inst.Lq + inst.Lk) * inst.d
        return (3 * L2 + 10 * Ld) * itemsize + input_bytes(inst, itemsize) + SLACK_BYTES

    def _solve(self, inst: Instance, dtype, device, **opts) -> Result:
        t = inst.as_torch(dtype=dtype, device=device)
        ops = OpCounter()
        with torch.no_grad():
            grads, loss = closed_form_gradients(
                t, inst.alpha, inst.beta, inst.r, inst.adapted, ops=ops, causal=inst.causal
            )
        out = to_numpy(grads)
        return Result(out, loss, self.name, ops=int(ops))

    def forward(self, inst: Instance, *, dtype=None, device=None, **options) -> np.ndarray:
        from harness.solvers.base import resolve_device, resolve_dtype

        t = inst.as_torch(dtype=resolve_dtype(dtype), device=resolve_device(device))
        W = effective_weights(t, inst.alpha, inst.r)
        outs = []
        with torch.no_grad():
            for i in range(inst.N):
                Q, K, V = t["X_q"][i] @ W["q"], t["X_k"][i] @ W["k"], t["X_v"][i] @ W["v"]
                S = (Q @ K.T).mul_(inst.beta)
                if inst.causal:
                    S.masked_fill_(~inst.mask(S.device), -torch.inf)
                outs.append(softmax_rows(S) @ V)
        return torch.stack(outs).cpu().double().numpy()
