"""`poly-chained` on causal instances (docs/theory.md §4.5, §4.7): the paper's chain with every product
that carries the mask computed as a masked low-rank product, chunkwise
(`harness.solvers.causal_products`):

    Lemmas 3.3-3.4  D~, c~ by prefix sums with U1 = diag(1/D~) M(x_q), V1 = M(x_k) diag(w)
    Lemma 3.5       q~ = c~ V^T with U2 = c~, V2 = V (k2 = d): the printed U2 = [U1/N, -Y/N],
                    V2 = [V (V^T V1), V] relies on the global sum V1^T V, which the mask makes row-dependent
    Lemma 3.6       p~1 = (U3 V3^T) . M, U3 = U1 (/) U2, V3 = V1 (/) V2 (k3 = k1 d)
    Lemma 3.7       r~_j = <c~_j, O~_j>, p~2 = diag(r~) f~ (U4 = diag(r~) U1, V4 = V1)
    gradients       G_Wq by prefix sums, G_Wk and G_Wv by suffix sums (the transposed products)

Batched over N; O(N L k1 d^2). Its twin is `harness.solvers.poly.naive.dense_poly_gradients(causal=True)`.
"""

from __future__ import annotations

import torch

from harness import theory
from harness.errors import HarnessError
from harness.instance import Instance
from harness.lora import adapter_gradients, effective_weights
from harness.measure.opcount import OpCounter
from harness.solvers.causal_products import CHUNK, causal_product, causal_product_t
from harness.solvers.poly.features import TorchPlan, features, split_beta

MAX_CAUSAL_ENTRIES = 1 << 25


def causal_chained_gradients(
    t: dict, alpha: float, beta: float, r: int, adapted: tuple[str, ...], g: int
) -> tuple[dict, float, dict]:
    """The chain on causal instances (module docstring), batched over N; O(N L k1 d^2)."""
    W = effective_weights(t, alpha, r)
    Xq, Xk, Xv, Y = t["X_q"], t["X_k"], t["X_v"], t["Y"]
    N, Lq, d = Xq.shape
    Q, K, V = Xq @ W["q"], Xk @ W["k"], Xv @ W["v"]
    sq, sk = split_beta(beta)
    plan = TorchPlan(d, g, Q.dtype, Q.device)
    k1 = plan.k
    if N * max(Lq, K.shape[1]) * k1 * d > MAX_CAUSAL_ENTRIES and ("q" in adapted or "k" in adapted):
        raise HarnessError(
            f"poly-chained refuses: causal chain needs N L k1 d = "
            f"{N * max(Lq, K.shape[1]) * k1 * d} > {MAX_CAUSAL_ENTRIES} entries "
            f"(k1 = C(d+g, g) = {k1}); use the solver 'poly'"
        )
    Mq = features(sq * Q, plan).transpose(-1, -2)  # (N, Lq, k1)
    V1 = features(sk * K, plan).transpose(-1, -2) * plan.w.T  # (N, Lk, k1)
    ones = torch.ones_like(V[..., :1])
    num = causal_product(Mq, V1, torch.cat([V, ones], -1))  # Lemma 3.3-3.4, prefix sums
    D = num[..., d:]
    U1 = Mq / D
    O = num[..., :d] / D
    c = (O - Y) / N
    loss = float((N * c).square().sum()) / (2 * N)
    rr = (c * O).sum(-1, keepdim=True)  # Lemma 3.7: r~_j = <c~_j, O~_j>
    U3 = (c[..., :, :, None] * U1[..., :, None, :]).reshape(N, Lq, -1)  # U1 (/) U2, U2 = c~
    V3 = (V[..., :, :, None] * V1[..., :, None, :]).reshape(N, V1.shape[1], -1)  # V1 (/) V2, V2 = V
    U4 = rr * U1
    G = {m: torch.zeros(d, d, dtype=Q.dtype, device=Q.device) for m in adapted}
    if "q" in G:
        PK = causal_product(U3, V3, K) - causal_product(U4, V1, K)
        G["q"] += beta * torch.einsum("nja,njb->ab", Xq, PK)
    if "k" in G:
        PQ = causal_product_t(U3, V3, Q) - causal_product_t(U4, V1, Q)
        G["k"] += beta * torch.einsum("nja,njb->ab", Xk, PQ)
    if "v" in G:
        G["v"] += torch.einsum("nja,njb->ab", Xv, causal_product_t(U1, V1, c))
    info = {"min_rowsum": float(D.min()), "k1": k1, "k2": d, "k3": k1 * d, "k4": k1}
    return adapter_gradients(t, G, alpha, r), loss, info


def causal_chained_op_count(inst: Instance, g: int, chunk: int = CHUNK) -> int:
    """Flops of `causal_chained_gradients`: masked low-rank products of rank k (chunk B) cost
    ~ 2 L (k c + B (k + c)) each (harness.solvers.causal_products); k3 = k1 d for p~1."""
    N, Lq, Lk, d, r = inst.N, inst.Lq, inst.Lk, inst.d, inst.r
    k1 = theory.feature_rank(d, g)
    B = min(chunk, Lq)
    P = -(-Lq // B) * B
    ops = OpCounter()

    def prod(k: int, c: int) -> None:
        ops.mm(P, k, c, 2 * N), ops.mm(P, k, B, N), ops.mm(P, B, c, N), ops.ew(N * P * k * c, 2)

    ops.mm(d, r, d, len(inst.adapted))
    ops.mm(Lq, d, d, N), ops.mm(Lk, d, d, 2 * N)
    ops.ew(N * (Lq + Lk) * k1, 2)
    prod(k1, d + 1)
    ops.ew(N * Lq * (k1 + 4 * d), 1)
    for m in inst.adapted:
        if m == "v":
            prod(k1, d)
        else:
            ops.ew(N * (Lq + Lk) * k1 * d, 1)
            prod(k1 * d, d), prod(k1, d)
        ops.mm(d, Lq, d, N)
    ops.mm(r, d, d, 2 * len(inst.adapted))
    return int(ops)
