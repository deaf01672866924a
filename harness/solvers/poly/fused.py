"""`poly`'s gradients: all LoRA adapter gradients of the degree-g polynomial kernel, O(N L k d) time,
no L x L matrix (features: harness.solvers.poly.features).

The plug-in formulas of docs/theory.md §3.2 with f replaced by the row-normalised approximate kernel
f~ = diag(A~ 1)^-1 A~ (the same gradient the paper's chained construction, `poly-chained`, computes;
docs/theory.md §4.4-§4.5):

    c~ = (f~ V - Y)/N,  r~_j = <c~_j, O~_j>,  p~ = A~ . Z  with  Z = diag(1/D~)(c~ V^T - r~ 1^T)
    G_Wq = beta X_q^T p~ K,  G_Wk = beta X_k^T p~^T Q,  G_Wv = X_v^T f~^T c~

Z = Zq Zk^T has rank d+1 (Zq = [c~/D~, -r~/D~], Zk = [V, 1]). The products p~ K and p~^T Q are
gradients of the surrogate s(Q, K) = sum_jm Z_jm P_{g+1}(beta q_j . k_m) with Z held fixed, because
d/dx P_{g+1}(x) = P_g(x): so we build features of degree g+1 (their first C(d+g, g) columns are the
degree-g features) and back-propagate the (L x k+) feature gradient Zq (Phi+_k^T Zk)^T through the
monomial recurrence by hand (`feature_backward`). Everything is blocked over rows: memory O(B k + k d).

`harness.solvers.poly.naive.dense_poly_gradients` is the obviously-correct O(L^2) twin.
"""

from __future__ import annotations

import math

import torch

from harness import theory
from harness.lora import adapter_gradients, effective_weights
from harness.solvers._common import blocks
from harness.solvers.poly.features import TorchPlan, feature_backward, features, split_beta

BLOCK_ENTRIES = 1 << 20  # entries of one (N, block, k+) feature block


def poly_gradients(
    t: dict, alpha: float, beta: float, r: int, adapted: tuple[str, ...], g: int, block: int | None = None
) -> tuple[dict, float, dict]:
    """All adapter gradients with the degree-g polynomial kernel, O(N L k d) (see module docstring).
    `t` is Instance.as_torch(...). Returns (grads, approximate loss, info)."""
    W = effective_weights(t, alpha, r)
    Xq, Xk, Xv, Y = t["X_q"], t["X_k"], t["X_v"], t["Y"]
    N, Lq, d = Xq.shape
    Lk = Xk.shape[1]
    dtype, device = Xq.dtype, Xq.device
    Q, K, V = Xq @ W["q"], Xk @ W["k"], Xv @ W["v"]
    sq, sk = split_beta(beta)
    plan = TorchPlan(d, g + 1, dtype, device)
    k, kp = theory.feature_rank(d, g), plan.k
    B = block or max(1, BLOCK_ENTRIES // (N * kp))
    ones_k = torch.ones(N, Lk, 1, dtype=dtype, device=device)
    Zk = torch.cat([V, ones_k], dim=-1)  # (N, Lk, d+1)
    G = {m: torch.zeros(d, d, dtype=dtype, device=device) for m in adapted}
    need_q, need_k, need_v = "q" in G, "k" in G, "v" in G
    # pass 1 (keys): Mk = Phi+_k^T [V, 1]
    Mk = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)
    for s, e in blocks(Lk, B):
        Mk += features(sk * K[:, s:e], plan) @ Zk[:, s:e]
    Mk *= plan.w  # diag(w) M_k^T [V, 1]
    # pass 2 (queries): output, residual, Zq, query gradient, Nq = Phi+_q^T Zq
    Nq = torch.zeros(N, kp, d + 1, dtype=dtype, device=device)
    loss = 0.0
    min_rowsum = math.inf
    for s, e in blocks(Lq, B):
        xq = sq * Q[:, s:e]
        phq = features(xq, plan)  # (N, k+, b)
        num = phq[:, :k].transpose(-1, -2) @ Mk[:, :k]  # (N, b, d+1): [A~ V, A~ 1]
        D = num[..., d:]
        min_rowsum = min(min_rowsum, float(D.min()))
        O = num[..., :d] / D
        diff = O - Y[:, s:e]
        loss += float(diff.square().sum()) / (2 * N)
        c = diff / N
        rr = (c * O).sum(-1, keepdim=True)
        Zq = torch.cat([c, -rr], dim=-1) / D  # (N, b, d+1)
        if need_k or need_v:
            Nq += phq @ Zq
        if need_q:
            dQ = sq * feature_backward(Mk @ Zq.transpose(-1, -2), phq, xq, plan)
            G["q"] += torch.einsum("nja,njb->ab", Xq[:, s:e], dQ)
    Nq *= plan.w  # diag(w) M_q^T Zq
    # pass 3 (keys): key and value gradients
    if need_k or need_v:
        for s, e in blocks(Lk, B):
            xk = sk * K[:, s:e]
            phk = features(xk, plan)
            if need_k:
                dK = sk * feature_backward(Nq @ Zk[:, s:e].transpose(-1, -2), phk, xk, plan)
                G["k"] += torch.einsum("nja,njb->ab", Xk[:, s:e], dK)
            if need_v:
                dV = phk[:, :k].transpose(-1, -2) @ Nq[:, :k, :d]
                G["v"] += torch.einsum("nja,njb->ab", Xv[:, s:e], dV)
    return (
        adapter_gradients(t, G, alpha, r),
        loss,
        {"min_rowsum": min_rowsum, "block": B, "k": k, "k_plus": kp},
    )
