"""`poly-chained`: the LoRA paper's own low-rank chain (Hu et al. (arXiv:2406.03136) Lemmas 3.3-3.7,
Thm 3.1, and its K view; V through the low-rank f~; docs/theory.md §4.5), with the CORRECTED conventions of
docs/theory.md §7.1-§7.2.

Per data point, with the degree-g monomial features of `harness.solvers.poly` (M(x)_a = x^a,
w_a = 1/a!, x_q = s_q Q, x_k = s_k K, s_q s_k = beta):

    Lemma 3.3  f~ = U1 V1^T,    U1 = diag(1/D~) M(x_q),  V1 = M(x_k) diag(w),  D~ = M(x_q) (V1^T 1)
                                                                       (k1 = C(d+g, g))
    Lemma 3.4  c~ = (U1 (V1^T V) - Y)/N
    Lemma 3.5  q~ = c~ V^T = U2 V2^T,  U2 = [U1/N, -Y/N],  V2 = [V (V^T V1), V]          (k2 = k1 + d)
    Lemma 3.6  p~1 = f~ . q~ = U3 V3^T,  U3 = U1 (row-Kron) U2,  V3 = V1 (row-Kron) V2     (k3 = k1 k2)
    Lemma 3.7  r~_j = (U1)_j (V1^T V2) (U2)_j^T,  p~2 = diag(r~) f~:  U4 = diag(r~) U1, V4 = V1   (k4 = k1)
    Thm 3.1    G_Wq = beta X_q^T (U3 (V3^T K) - U4 (V4^T K))
    K view     G_Wk = beta X_k^T (V3 (U3^T Q) - V4 (U4^T Q))          (p~^T; the K view, variable W_K^T)
    V view     G_Wv = X_v^T V1 (U1^T c~)                                (f~^T c~, f~ never formed)

then dA = (alpha/r) B^T G, dB = (alpha/r) G A^T. `printed_p2=True` builds the orientation the paper
prints, p~2 = f~ diag(r~) (U4 = U1, V4 = diag(r~) V1; only defined when Lq = Lk), which is WRONG
(docs/theory.md §7.2) and kept so a test suite can show it. Cost O(L k3 d) = O(L k1^2 d): the chain is
the paper's construction, far slower than `poly` (same polynomial, same gradients up to rounding).
U3 and V3 are built block by block (memory O(B k3 + k3 d)); no L x L matrix is formed.

`harness.solvers.poly.naive.dense_chained_reference` forms f~, q~, p~1, p~2 densely from the same definitions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.lora import adapter_gradients, effective_weights
from harness.solvers._common import blocks
from harness.solvers.poly.features import TorchPlan, features, split_beta
from harness.solvers.poly.solver import PolySolver

BLOCK_ENTRIES = 1 << 21
MAX_K3 = 1 << 22


def row_kron(U1: torch.Tensor, U2: torch.Tensor) -> torch.Tensor:
    """Row-wise Kronecker product (AS24 (arXiv:2402.04497) Fact A.2; docs/theory.md §1):
    (U1 (/) U2)_{i,(l2-1)k1+l1} = U1_{i,l1} U2_{i,l2},
    so (U1 V1^T) . (U2 V2^T) = (U1 (/) U2)(V1 (/) V2)^T."""
    n, k1 = U1.shape[-2], U1.shape[-1]
    return (U2[..., :, :, None] * U1[..., :, None, :]).reshape(*U1.shape[:-2], n, U2.shape[-1] * k1)


def chained_factors(Q, K, V, Y, beta: float, g: int, N: int, printed_p2: bool = False) -> dict:
    """U1, V1, U2, V2, U4, V4 and r~ for one data point (Lemmas 3.3-3.7, corrected unless printed_p2)."""
    sq, sk = split_beta(beta)
    plan = TorchPlan(Q.shape[-1], g, Q.dtype, Q.device)
    Mq = features(sq * Q, plan).T  # (Lq, k1)
    V1 = features(sk * K, plan).T * plan.w.T  # (Lk, k1)
    D = Mq @ V1.sum(0)  # Lemma 3.3: row sums of A~
    U1 = Mq / D[:, None]
    c = (U1 @ (V1.T @ V) - Y) / N  # Lemma 3.4
    U2 = torch.cat([U1 / N, -Y / N], dim=1)  # Lemma 3.5
    V2 = torch.cat([V @ (V.T @ V1), V], dim=1)
    rr = ((U1 @ (V1.T @ V2)) * U2).sum(1)  # Lemma 3.7 (I)
    if printed_p2:
        if Q.shape[0] != K.shape[0]:
            raise HarnessError("the printed p2 = f diag(r) is only defined when Lq == Lk")
        U4, V4 = U1, rr[:, None] * V1  # as printed (WRONG, docs/theory.md §7.2)
    else:
        U4, V4 = rr[:, None] * U1, V1  # corrected: p2 = diag(r) f
    return {
        "U1": U1,
        "V1": V1,
        "U2": U2,
        "V2": V2,
        "U4": U4,
        "V4": V4,
        "r": rr,
        "c": c,
        "min_rowsum": float(D.min()),
    }


def chained_gradients(
    t: dict,
    alpha: float,
    beta: float,
    r: int,
    adapted: tuple[str, ...],
    g: int,
    printed_p2: bool = False,
    block: int | None = None,
) -> tuple[dict, float, dict]:
    """All adapter gradients by the paper's chain (module docstring); `t` = Instance.as_torch(...)."""
    W = effective_weights(t, alpha, r)
    N, _, d = t["X_q"].shape
    dtype, device = t["X_q"].dtype, t["X_q"].device
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    loss, min_rowsum = 0.0, math.inf
    k1 = theory.feature_rank(d, g)
    k3 = k1 * (k1 + d)
    if k3 > MAX_K3 and ("q" in G or "k" in G):
        raise HarnessError(
            f"poly-chained refuses: rank k3 = k1 (k1 + d) = {k3} > {MAX_K3} "
            f"(k1 = C(d+g, g) = {k1}, g={g}, d={d}); use the solver 'poly'"
        )
    B = block or max(1, BLOCK_ENTRIES // k3)
    for i in range(N):
        Xq, Xk, Xv, Y = t["X_q"][i], t["X_k"][i], t["X_v"][i], t["Y"][i]
        Q, K, V = Xq @ W["q"], Xk @ W["k"], Xv @ W["v"]
        F = chained_factors(Q, K, V, Y, beta, g, N, printed_p2)
        U1, V1, U2, V2, U4, V4, c = (F[k] for k in ("U1", "V1", "U2", "V2", "U4", "V4", "c"))
        min_rowsum = min(min_rowsum, F["min_rowsum"])
        loss += float((N * c).square().sum()) / (2 * N)
        if "v" in G:
            G["v"] += Xv.T @ (V1 @ (U1.T @ c))
        if "q" in G:
            V3K = sum(row_kron(V1[s:e], V2[s:e]).T @ K[s:e] for s, e in blocks(K.shape[0], B))
            P1K = torch.cat([row_kron(U1[s:e], U2[s:e]) @ V3K for s, e in blocks(Q.shape[0], B)])
            G["q"] += beta * (Xq.T @ (P1K - U4 @ (V4.T @ K)))
        if "k" in G:
            U3Q = sum(row_kron(U1[s:e], U2[s:e]).T @ Q[s:e] for s, e in blocks(Q.shape[0], B))
            P1Q = torch.cat([row_kron(V1[s:e], V2[s:e]) @ U3Q for s, e in blocks(K.shape[0], B)])
            G["k"] += beta * (Xk.T @ (P1Q - V4 @ (U4.T @ Q)))
    return (
        adapter_gradients(t, G, alpha, r),
        loss,
        {"min_rowsum": min_rowsum, "k1": k1, "k2": k1 + d, "k3": k3, "k4": k1, "block": B},
    )


class PolyChainedSolver(PolySolver):
    """Same options, certificate and refusals as `poly`; gradients by the paper's chain."""

    name = "poly-chained"
    cost = "O(N L k1^2 d), k1 = C(d+g, g) (the paper's chain; k3 = k1 (k1 + d))"
    description = "LoRA paper Lemmas 3.3-3.7 / Thm 3.1 chain (corrected q, p2), same certificate as poly"

    def _gradients(self, inst: Instance, t: dict, g: int):
        if inst.causal:
            from harness.solvers.poly.chained_causal import causal_chained_gradients

            return causal_chained_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g)
        return chained_gradients(t, inst.alpha, inst.beta, inst.r, inst.adapted, g)

    def _ops(self, inst: Instance, cert: dict) -> int:
        cert["ops_poly"] = cert["ops"]
        if inst.causal:
            from harness.solvers.poly.chained_causal import causal_chained_op_count

            return causal_chained_op_count(inst, cert["degree"])
        return chained_op_count(inst, cert["degree"])

    def forward(self, inst: Instance, **kw) -> np.ndarray:
        raise HarnessError("solver 'poly-chained' does not compute the forward pass; use 'poly'")


def chained_op_count(inst: Instance, g: int) -> int:
    """Flops of `chained_gradients` (OpCounter convention): O(N L k1 k2 d) for the p1 products."""
    from harness.measure.opcount import OpCounter

    N, Lq, Lk, d, r = inst.N, inst.Lq, inst.Lk, inst.d, inst.r
    k1 = theory.feature_rank(d, g)
    k2, k3 = k1 + d, k1 * (k1 + d)
    ops = OpCounter()
    ops.mm(d, r, d, len(inst.adapted))
    ops.mm(Lq, d, d, N), ops.mm(Lk, d, d, 2 * N)
    ops.ew(N * (Lq + Lk) * k1, 2), ops.mm(Lq, k1, 1, N), ops.ew(N * Lq * k1, 1)
    ops.mm(k1, Lk, d, N), ops.mm(Lq, k1, d, N), ops.mm(d, Lk, k1, N), ops.mm(Lk, d, k1, N)
    ops.mm(k1, Lk, k2, N), ops.mm(Lq, k1, k2, N), ops.ew(N * Lq * k2, 2)
    for m in inst.adapted:
        if m == "v":
            ops.mm(k1, Lq, d, N), ops.mm(Lk, k1, d, N), ops.mm(d, Lk, d, N)
        else:
            ops.ew(N * (Lq + Lk) * k3, 1), ops.mm(k3, Lk if m == "q" else Lq, d, N)
            ops.mm(Lq if m == "q" else Lk, k3, d, N), ops.mm(k1, Lk, d, N), ops.mm(Lq, k1, d, N)
            ops.mm(d, Lq, d, N)
    ops.mm(r, d, d, 2 * len(inst.adapted))
    return int(ops)
